"""near_duplicates.jsonl, the audit trail of near-dedup: one row per removed page, and its summary.

Each line is {"jaccard": J, "kept_url": U, "url": V}: page V was removed because page U, which the
run kept, has exact shingle-set Jaccard J with it (rounded to 4 decimals). Lines are sorted by
(url, kept_url) and keys within a line, so a run writes the same bytes on any runner and worker
count. A cluster is one kept page and the pages it removed.
"""

from __future__ import annotations

import collections
import json
from typing import Iterable

from c4clean.formats import NEAR_DUP_AUDIT_FILE as AUDIT_FILE

JACCARD_DECIMALS = 4
# Jaccard bins of the summary (cluster sizes, kept page + removed pages, are binned by SIZE_LABELS).
JACCARD_BINS = (0.8, 0.85, 0.9, 0.95, 0.99, 1.0)


def audit_row(url: str, kept_url: str, jaccard: float) -> dict:
    return {"url": url, "kept_url": kept_url, "jaccard": round(jaccard, JACCARD_DECIMALS)}


def audit_lines(rows: Iterable[dict]) -> bytes:
    """The file's bytes: one JSON object per row, sorted by (url, kept_url)."""
    ordered = sorted(rows, key=lambda row: (row["url"], row["kept_url"]))
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in ordered).encode()


def read_rows(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def _size_label(pages: int) -> str:
    return str(pages) if pages < 5 else "5-9" if pages < 10 else "10-99" if pages < 100 else ">= 100"


SIZE_LABELS = ("2", "3", "4", "5-9", "10-99", ">= 100")


def _jaccard_label(value: float) -> str:
    """[low, high) bins of JACCARD_BINS; exactly 1.0 on its own; below the first edge together."""
    if value < JACCARD_BINS[0]:
        return f"< {JACCARD_BINS[0]:.2f}"
    for low, high in zip(JACCARD_BINS, JACCARD_BINS[1:]):
        if value < high:
            return f"{low:.2f}-{high:.2f}"
    return "1.00"


def summarize(rows: list[dict]) -> dict:
    """Clusters, the cluster-size histogram, the Jaccard histogram, the largest cluster and the
    lowest Jaccard between a removed page and its kept page."""
    sizes = collections.Counter(row["kept_url"] for row in rows)
    jaccards = [row["jaccard"] for row in rows]
    size_hist = collections.Counter(_size_label(n + 1) for n in sizes.values())
    jaccard_hist = collections.Counter(_jaccard_label(j) for j in jaccards)
    largest = max(sizes.items(), key=lambda item: (item[1], item[0]), default=None)
    return {
        "removed_pages": len(rows),
        "clusters": len(sizes),
        "largest_cluster": {"kept_url": largest[0], "pages": largest[1] + 1} if largest else None,
        "min_jaccard": min(jaccards, default=None),
        "cluster_sizes": {label: size_hist[label] for label in SIZE_LABELS if label in size_hist},
        "jaccard": dict(sorted(jaccard_hist.items())),
    }


def summary_text(summary: dict) -> str:
    """A few lines for `c4clean stats`."""
    lines = [
        f"near-duplicates ({AUDIT_FILE}): {summary['removed_pages']} pages removed "
        f"in {summary['clusters']} clusters"
    ]
    if summary["largest_cluster"]:
        largest = summary["largest_cluster"]
        lines.append(
            f"  largest cluster: {largest['pages']} pages (kept {largest['kept_url']}); "
            f"lowest Jaccard removed-to-kept: {summary['min_jaccard']}"
        )
        lines.append(
            "  cluster sizes: " + ", ".join(f"{k}: {v}" for k, v in summary["cluster_sizes"].items())
        )
        lines.append("  Jaccard: " + ", ".join(f"{k}: {v}" for k, v in summary["jaccard"].items()))
    return "\n".join(lines)
