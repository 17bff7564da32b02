"""Pligt: a legal-deposit archive server, one import root.

- ``pligt.core``: storage, catalog, retention, content types, credentials, the proof, keeping and
  export, each in a room of its own; it knows nothing of Flask, HTTP paths or click.
- ``pligt.web``: the Flask app (factory, views per audience, one error mapping).
- ``pligt.cli``: the ``pligt`` command (click); it never imports Flask until ``pligt serve``.
- ``pligt.server``: gunicorn glue (the server, its worker class, warm-up, the address-free log).

Beside them, what web and CLI share without importing Flask: ``settings`` (one
settings object), ``instance`` (making and opening an instance), ``links`` (the
URLs handed out), ``mail`` and ``release`` (handing a credential over).
"""
