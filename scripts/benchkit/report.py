"""The results: rows with their targets, the table, the JSON, and the medians of several runs."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from dataclasses import field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

from .common import log


@dataclass
class Row:
    """One figure of both servers (or of Pligt and a reference), with its target."""

    metric: str
    pligt: float | None
    nginx: float | None
    unit: str
    #: ("min" | "max", bound) on the ratio pligt/nginx, or on pligt itself with "abs-max".
    target: tuple[str, float] | None = None
    target_text: str = ""
    nginx_label: str = ""
    note: str = ""
    #: Set when combining runs: the median of the runs' own ratios, and those ratios.
    ratio_override: float | None = None
    run_ratios: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.ratio_override is not None:
            return self.ratio_override
        if self.pligt is None or self.nginx is None or self.nginx == 0:
            return None
        return self.pligt / self.nginx

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.pligt is None:
            return None
        kind, bound = self.target
        if kind == "abs-max":
            return self.pligt < bound
        if self.ratio is None:
            return None
        return self.ratio >= bound if kind == "min" else self.ratio <= bound


@dataclass
class Results:
    """The rows of one run (or of several combined), the machine they ran on, and notes."""

    quick: bool
    machine: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Add a row, and log its figures."""
        self.rows.append(row)
        log(f"{row.metric}: Pligt {fmt(row.pligt)} {row.unit}, {row.nginx_label or 'nginx'} {fmt(row.nginx)}")


def fmt(value: float | None) -> str:
    """A figure with as many decimals as its size deserves."""
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def _first_line(args: list[str]) -> str:
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine() -> dict[str, str]:
    """The machine, the load on it, and the versions of everything measured."""
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "load": load_average(),
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{psutil.virtual_memory().total / 1024**3:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gunicorn": version("gunicorn"),
        "flask": version("flask"),
        "werkzeug": version("werkzeug"),
        "nginx": _first_line(["nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
        "wget": _first_line(["wget", "--version"]),
        "curl": _first_line(["curl", "--version"]),
    }


def load_average() -> str:
    """The load averages over 1, 5 and 15 minutes."""
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# -- the table -------------------------------------------------------------------------------


def _heading(results: Results) -> list[str]:
    m = results.machine
    return [
        f"Pligt beside nginx ({'--quick' if results.quick else 'full run'}), loopback, {m['cores']} cores, "
        f"{m['cpu']}, {m['memory']}, Linux {m['kernel']}",
        f"Python {m['python']}, gunicorn {m['gunicorn']} (pligt serve defaults: 2 gthread workers × 32 threads), "
        f"Flask {m['flask']}, Werkzeug {m['werkzeug']}; {m['nginx']} (2 workers, sendfile, auth_basic apr1); "
        f"{m['wrk']}; {m['wget']}; catalog: {m.get('catalog', 'sqlite')}",
        f"load average (1, 5, 15 min) at the start: {m['load']}; at the end: {m.get('load_end', '?')} "
        "(other work on the machine shares the 2 cores with both servers and the clients)",
        "",
    ]


def _cells(r: Row) -> tuple[str, ...]:
    ref = fmt(r.nginx)
    if r.nginx_label and r.nginx is not None:
        ref = f"{r.nginx_label} {ref}"
    ratio = f"{r.ratio:.2f}×" if r.ratio is not None and r.target and r.target[0] != "abs-max" else ""
    if not ratio and r.ratio is not None and r.unit not in ("%", "MiB"):
        ratio = f"{r.ratio:.2f}×"
    result = {True: "pass", False: "FAIL", None: ""}[r.passed]
    return (r.metric, fmt(r.pligt), ref, ratio, r.target_text, result)


def report(results: Results) -> str:
    """The table of a run: the machine, then one line per row, then the notes."""
    lines = _heading(results)
    header = ("metric", "Pligt", "nginx / ref", "ratio", "target", "result")
    rows = [header, *(_cells(r) for r in results.rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"{r.metric}: {r.note}" for r in results.rows if r.note] + results.notes
    if notes:
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines)


# -- JSON, and the medians of several runs ---------------------------------------------------


def to_json(results: Results) -> dict[str, Any]:
    """The figures of a run (or of combined runs), with its table."""
    return {
        "quick": results.quick,
        "machine": results.machine,
        "rows": [
            {
                "metric": r.metric,
                "pligt": r.pligt,
                "nginx": r.nginx,
                "unit": r.unit,
                "ratio": r.ratio,
                "target": r.target,
                "target_text": r.target_text,
                "nginx_label": r.nginx_label,
                "passed": r.passed,
                "note": r.note,
                "run_ratios": r.run_ratios,
            }
            for r in results.rows
        ],
        "notes": results.notes,
        "table": report(results),
    }


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else None


def _combine_row(row: dict[str, Any], same: list[dict[str, Any]]) -> Row:
    """One metric's medians over the runs in ``same``; the ratio is the median of the runs' own."""
    combined = Row(
        row["metric"],
        _median(same, "pligt"),
        _median(same, "nginx"),
        row["unit"],
        (row["target"][0], row["target"][1]) if row["target"] else None,
        row["target_text"],
        nginx_label=row.get("nginx_label") or ("sha256sum" if "sha256sum" in row["target_text"] else ""),
    )
    absolute = row["unit"] in ("%", "MiB") or (row["target"] and row["target"][0] == "abs-max")
    ratios = [] if absolute else [r["ratio"] for r in same if r["ratio"] is not None]
    if ratios:
        combined.ratio_override = statistics.median(ratios)
        combined.run_ratios = ratios
        combined.note = f"ratio per run: {', '.join(f'{r:.2f}' for r in ratios)}"
    pligts = [r["pligt"] for r in same if r["pligt"] is not None]
    if not ratios and len(pligts) > 1:
        combined.note = f"Pligt per run: {', '.join(fmt(v) for v in pligts)}"
    return combined


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over several runs' JSON: Pligt's and nginx's figures, and the ratio of each run."""
    first = runs[0]
    rows = []
    for n, row in enumerate(first["rows"]):
        same = [run["rows"][n] for run in runs if len(run["rows"]) > n and run["rows"][n]["metric"] == row["metric"]]
        rows.append(_combine_row(row, same))
    results = Results(first["quick"], dict(first["machine"]), rows)
    results.machine["load"] = " / ".join(run["machine"]["load"] for run in runs)
    results.machine["load_end"] = " / ".join(run["machine"].get("load_end", "?") for run in runs)
    results.notes = [f"median of {len(runs)} runs; the ratio is the median of each run's own ratio"]
    for run in runs:
        results.notes.extend(run["notes"])
    return to_json(results)
