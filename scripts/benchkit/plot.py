"""The ratios of a run (or of combined runs) as horizontal bars, "better" always to the right."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from typing import NamedTuple

#: The plot's widest bar, as a multiple of nginx.
SHOWN_MAX = 3.0


class Bar(NamedTuple):
    metric: str
    value: float
    target: float
    passed: bool | None
    low: float
    high: float


def bars(data: dict[str, Any]) -> list[Bar]:
    """One bar per row with a target on the ratio, bottom to top in the table's order."""
    made = []
    for row in data["rows"]:
        target = row["target"]
        if row["ratio"] is None or target is None or target[0] == "abs-max":
            continue
        runs = row.get("run_ratios") or [row["ratio"]]
        # Times and latencies: nginx/Pligt, so that 1.0 is nginx and higher is better everywhere.
        if target[0] == "max":
            runs = [1 / r for r in runs]
            made.append(Bar(row["metric"], 1 / row["ratio"], 1 / target[1], row["passed"], min(runs), max(runs)))
        else:
            made.append(Bar(row["metric"], row["ratio"], target[1], row["passed"], min(runs), max(runs)))
    made.reverse()
    return made


def plot(data: dict[str, Any], path: Path) -> None:
    """Bars: Pligt's figure as a multiple of nginx's (or sha256sum's), "better" always to the right."""
    import matplotlib  # not a dependency of the project: only --plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = bars(data)
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(shown) + 1.8))
    ys = list(range(len(shown)))
    # Bars beyond SHOWN_MAX (the paged index against a whole autoindex) are cut, with their figure.
    ax.barh(ys, [min(b.value, SHOWN_MAX) for b in shown], color=["tab:green" if b.passed else "tab:red" for b in shown])
    for y, bar in zip(ys, shown, strict=True):
        if bar.high > bar.low:
            ax.plot([min(bar.low, SHOWN_MAX), min(bar.high, SHOWN_MAX)], [y, y], color="dimgrey", linewidth=1)
        ax.plot([bar.target, bar.target], [y - 0.4, y + 0.4], color="black", linewidth=2)
        cut = " (bar cut)" if max(bar.value, bar.high) > SHOWN_MAX else ""
        ax.text(min(max(bar.value, bar.high), SHOWN_MAX) + 0.02, y, f"{bar.value:.2f}×{cut}", va="center")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, min(SHOWN_MAX + 0.8, max(1.2, max(max(b.value, b.high) for b in shown) + 0.2)))
    ax.set_yticks(ys, [b.metric for b in shown])
    ax.set_xlabel(
        "Pligt as a multiple of nginx (of sha256sum for the upload); higher is better;\n"
        "times and latencies inverted (nginx's / Pligt's); 1.0 = as good as nginx"
    )
    runs = len(next((row.get("run_ratios") for row in data["rows"] if row.get("run_ratios")), [])) or 1
    ax.set_title(
        f"Pligt beside nginx, median of {runs} run(s) (grey line: range over the runs)\n"
        "black tick = issue 7's target; green = met, red = not met"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
