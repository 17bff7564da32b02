// Upload with a progress bar per file: each file is sent as the raw body of
// one request, so it streams into storage. Without this script the form posts
// the files as multipart and the page shows the results.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest) { return; }
  var input = document.getElementById("files");
  var zone = document.getElementById("dropzone");
  var results = document.getElementById("upload-results");
  var token = form.querySelector("input[name=csrf_token]").value;

  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    input.files = event.dataTransfer.files;
  });

  function field(name) {
    var element = form.querySelector("[name=" + name + "]:checked") || form.querySelector("[name=" + name + "]");
    return element ? element.value : "";
  }

  function send(file, done) {
    var item = document.createElement("li");
    item.setAttribute("data-filename", file.name);
    var label = document.createElement("span");
    label.textContent = file.name + " ";
    var bar = document.createElement("progress");
    bar.max = file.size || 1;
    bar.value = 0;
    bar.setAttribute("aria-label", file.name);
    item.appendChild(label);
    item.appendChild(bar);
    results.appendChild(item);

    var query = new URLSearchParams({
      filename: file.name, title: field("title"), slug: field("slug"), visibility: field("visibility")
    });
    var request = new XMLHttpRequest();
    request.open("POST", form.getAttribute("data-raw-url") + "?" + query.toString());
    request.setRequestHeader("X-CSRFToken", token);
    request.setRequestHeader("Accept", "application/json");
    request.upload.onprogress = function (event) { if (event.lengthComputable) { bar.value = event.loaded; } };
    request.onload = function () {
      var body = {};
      try { body = JSON.parse(request.responseText); } catch (e) { body = {error: request.statusText}; }
      item.removeChild(bar);
      if (request.status === 200 && body.ok && body.unchanged) {
        item.className = "unchanged";
        label.textContent = body.message;
      } else if (request.status === 201 && body.ok) {
        item.className = "ok";
        label.textContent = form.getAttribute("data-msg-published") + " " + body.filename + " (" + body.content_type +
          "), " + form.getAttribute("data-msg-retained") + " " + body.retain_until;
        (body.warnings || []).forEach(function (w) {
          var small = document.createElement("small"); small.textContent = " " + w; item.appendChild(small);
        });
      } else {
        item.className = "error";
        label.textContent = form.getAttribute("data-msg-refused") + ": " + (body.error || body.description || request.statusText);
      }
      done();
    };
    request.onerror = function () {
      item.className = "error";
      label.textContent = form.getAttribute("data-msg-refused") + ": " + file.name;
      done();
    };
    request.send(file);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var files = Array.prototype.slice.call(input.files);
    var next = function () { if (files.length) { send(files.shift(), next); } };
    next();
  });
}());
