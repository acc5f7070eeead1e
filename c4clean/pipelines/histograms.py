"""Histograms of page length (characters) and lines per page, before and after cleaning.

Counted like every other count (counter namespace `reasons.NS_HISTOGRAMS`, names
`<measure>-<when>:<bin>`): "before" is every page read from the WET files (counted in the per-file
stage, so `--resume` keeps it), "after" every page written to the shards. Bins are powers of two (a
bin `b` holds values in [b, 2b); 0 alone), so counts from any number of workers just add up.
`plot` draws them into one PNG beside `report.md`.
"""

from __future__ import annotations

from c4clean import formats
from c4clean.cleaning import reasons

MEASURES = {"chars": "page length (characters)", "lines": "lines per page"}
WHEN = ("before", "after")  # as read from WET / as written to the shards
PNG = formats.HISTOGRAMS_PNG


def bin_of(value: int) -> int:
    return 0 if value <= 0 else 1 << (value.bit_length() - 1)


def counter_names(text: str, when: str) -> list[str]:
    """The counters one page increments (one bin per measure)."""
    lines = text.count("\n") + 1 if text else 0
    return [f"chars-{when}:{bin_of(len(text))}", f"lines-{when}:{bin_of(lines)}"]


def from_counters(counters: dict) -> dict[str, dict[str, dict[int, int]]]:
    """{measure: {when: {bin: pages}}} from the counters of a run (`stats.json`'s `counters`)."""
    out: dict[str, dict[str, dict[int, int]]] = {m: {w: {} for w in WHEN} for m in MEASURES}
    for name, value in counters.get(reasons.NS_HISTOGRAMS, {}).items():
        key, _, bin_ = name.rpartition(":")
        measure, _, when = key.partition("-")
        if measure in out and when in WHEN:
            out[measure][when][int(bin_)] = out[measure][when].get(int(bin_), 0) + value
    return out


def _label(lower: int) -> str:
    return "0" if lower == 0 else f"{lower:,}-{2 * lower - 1:,}" if lower > 1 else "1"


def table(histograms: dict) -> list[tuple[str, list[list]]]:
    """[(title, rows [bin, pages before, pages after])] per measure, for text reports."""
    out = []
    for measure, title in MEASURES.items():
        h = histograms[measure]
        bins = sorted(set(h["before"]) | set(h["after"]))
        rows = [[_label(b), h["before"].get(b, 0), h["after"].get(b, 0)] for b in bins]
        out.append((title, rows))
    return out


_FIGURE = "matplotlib.figure"  # what `plot` imports


def load_plotting_in_background() -> None:
    """Imports what `plot` needs (~0.5 s) on a thread, while a run's work goes on, rather than after
    it (the driver of a run with local workers mostly waits for them)."""
    import importlib
    import threading

    threading.Thread(target=importlib.import_module, args=(_FIGURE,), daemon=True).start()


def plot(histograms: dict) -> bytes:
    """One PNG, a panel per measure, before and after cleaning side by side (same bytes for the
    same counts: no timestamps in the metadata)."""
    import io

    # A bare Figure renders with Agg by itself: no pyplot (its import, ~0.5 s, sets up GUI backends
    # and a global figure registry that a run has no use for).
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    fig = Figure(figsize=(12, 4))
    axes = fig.subplots(1, len(MEASURES))
    for ax, (measure, title) in zip(axes, MEASURES.items()):
        h = histograms[measure]
        bins = sorted(set(h["before"]) | set(h["after"]))
        x = list(range(len(bins)))
        for offset, when in ((-0.2, "before"), (0.2, "after")):
            heights = [h[when].get(b, 0) for b in bins]
            ax.bar([i + offset for i in x], heights, width=0.4, label=f"{when} cleaning")
        ax.set_xticks(x, [_label(b) for b in bins], rotation=60, ha="right", fontsize=7)
        ax.set_title(title)
        ax.set_ylabel("pages")
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))  # 500, 12k, 1.5M: short at any size
        ax.legend()
    # Fixed margins that fit the longest labels (rotated bin ranges up to 2^21, short counts): measuring
    # every label to fit them (`tight_layout`) took half of the drawing's time.
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.27, top=0.92, wspace=0.15)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()
