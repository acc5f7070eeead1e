"""Page-length histograms: bins, counters, the PNG."""

from c4clean.cleaning import reasons
from c4clean.pipelines import histograms


def test_power_of_two_bins():
    assert [histograms.bin_of(v) for v in (0, 1, 2, 3, 4, 7, 8, 1000)] == [0, 1, 2, 2, 4, 4, 8, 512]
    assert histograms.counter_names("", "before") == ["chars-before:0", "lines-before:0"]
    assert histograms.counter_names("ab\ncde\nf", "after") == ["chars-after:8", "lines-after:2"]


def test_counters_round_trip_and_table_has_thousands_separators():
    counters = {reasons.NS_HISTOGRAMS: {"chars-before:1024": 1500, "chars-after:1024": 2, "lines-after:4": 3}}
    h = histograms.from_counters(counters)
    assert h["chars"] == {"before": {1024: 1500}, "after": {1024: 2}}
    assert h["lines"] == {"before": {}, "after": {4: 3}}
    (chars_title, chars_rows), _ = histograms.table(h)
    assert chars_rows == [["1,024-2,047", 1500, 2]]


def test_png_is_deterministic():
    h = histograms.from_counters({reasons.NS_HISTOGRAMS: {"chars-before:64": 5, "lines-after:2": 1}})
    png = histograms.plot(h)
    assert png.startswith(b"\x89PNG") and png == histograms.plot(h)
