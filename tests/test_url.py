import gzip
import hashlib
import json
import socket

import pytest

from c4clean.cleaning import reasons, tfds_reference
from c4clean.cleaning.page import Page
from c4clean.cleaning.url import (
    TRAIN,
    VALIDATION,
    DomainFilter,
    UrlListFilter,
    normalize_url,
    select_newest_page,
    split_for_url,
    url_hash,
)


@pytest.fixture(scope="module")
def c4_utils():
    pytest.importorskip("tensorflow_datasets")
    return tfds_reference.load_c4_utils()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://www.example.com/a/b/", "example.com/a/b"),
        ("http://example.com", "example.com"),
        # every scheme occurrence goes, not only the leading one (re.sub)
        ("https://a.com/go?to=https://www.b.com/x", "a.com/go?to=b.com/x"),
        ("http://a.com/http://b.com/https://c.com", "a.com/b.com/c.com"),
        # cut from the first ?utm_ / ?ref / ?feed, even "?referrer" and "?feedback"
        ("https://a.com/p?utm_source=x&id=3", "a.com/p"),
        ("https://a.com/p?referrer=y", "a.com/p"),
        ("https://a.com/p/?feedback=1/", "a.com/p"),
        # other queries stay, and "&utm_" is not a cut point
        ("https://a.com/p?id=3&utm_source=x", "a.com/p?id=3&utm_source=x"),
        # case-sensitive; "www." only right after a scheme; other schemes stay
        ("HTTPS://WWW.A.COM/", "HTTPS://WWW.A.COM"),
        ("www.a.com/x", "www.a.com/x"),
        ("ftp://a.com/", "ftp://a.com"),
        # all trailing slashes
        ("https://a.com///", "a.com"),
    ],
)
def test_normalize_url(url, expected):
    assert normalize_url(url) == expected


def test_normalize_url_matches_reference_on_every_page(c4_utils, shared_data):
    urls = [p.url for p in tfds_reference.differential_corpus(shared_data)]
    assert len(urls) > 300
    urls += [u + suffix for u in urls[:50] for suffix in ("/", "?utm_x=1", "?ref=a/", "?a=http://www.b.c/")]
    for url in urls:
        assert normalize_url(url) == c4_utils.normalize_url(url), url


def test_url_hash_and_split_match_reference(c4_utils):
    # the reference's split predicates from c4.py, applied through its hashed-url filter
    is_validation = c4_utils.get_hashed_url_filter_fn(lambda x: x % 1000 == 0)
    urls = [f"example{i}.com/page/{i * 7}" for i in range(5000)]
    splits = [split_for_url(u) for u in urls]
    assert VALIDATION in splits and TRAIN in splits
    for url, split in zip(urls, splits):
        assert url_hash(url) == int(hashlib.md5(url.encode()).hexdigest(), 16)
        assert (split == VALIDATION) == is_validation(c4_utils.PageFeatures(normalized_url=url))


def _page(url, timestamp, text="t"):
    return Page(url=url, text=text, timestamp=timestamp, normalized_url=normalize_url(url))


def test_select_newest_page_takes_largest_timestamp_as_string():
    old = _page("http://a.com", "2019-04-18T01:00:00Z", "old")
    new = _page("https://a.com/", "2019-04-19T00:00:00Z", "new")
    # string comparison, not a date parse: "2019-4-9" > "2019-04-19"
    odd = _page("http://www.a.com", "2019-4-9", "odd")
    assert select_newest_page([old, new]).text == "new"
    assert select_newest_page(iter([new, old])).text == "new"
    assert select_newest_page([old, new, odd]).text == "odd"


def test_select_newest_page_ties_go_to_first_seen_and_partials_combine():
    a, b, c = (_page("http://a.com", "2019-01-01", t) for t in "abc")
    assert select_newest_page([a, b, c]).text == "a"
    assert select_newest_page([b, a]).text == "b"
    # Beam calls it on partial results, including merged empty accumulators
    assert select_newest_page([select_newest_page([]), select_newest_page([b, c]), None]).text == "b"
    assert select_newest_page([]) is None


def test_select_newest_page_agrees_with_reference(c4_utils, shared_data):
    pages = [tfds_reference.as_page(p) for p in tfds_reference.differential_corpus(shared_data)]
    # same normalized url, timestamps drawn from real pages (some equal)
    group = [
        p.replace(normalized_url="x.com", timestamp=pages[i % 7].timestamp) for i, p in enumerate(pages[:40])
    ]
    with tfds_reference.counters(c4_utils):
        expected = c4_utils.select_newest_page([tfds_reference.tfds_page(c4_utils, p) for p in group])
    assert tfds_reference.tfds_page(c4_utils, select_newest_page(group)) == expected


def test_select_newest_page_in_beam_combine_per_key():
    beam = pytest.importorskip("apache_beam")
    from apache_beam.testing.util import assert_that, equal_to

    pages = [
        _page("http://a.com", "2019-01-02", "a-new"),
        _page("http://a.com/", "2019-01-01", "a-old"),
        _page("https://www.a.com", "2018-12-31", "a-older"),
        _page("http://b.com?utm_source=z", "2019-03-01", "b-only"),
    ]
    with beam.Pipeline("DirectRunner") as p:
        out = (
            p
            | beam.Create(pages)
            | beam.Map(lambda page: (page.normalized_url, page))
            | beam.CombinePerKey(select_newest_page)
            | beam.Map(lambda kv: (kv[0], kv[1].text))
        )
        assert_that(out, equal_to([("a.com", "a-new"), ("b.com", "b-only")]))


# --- RealNews ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def realnews():
    return DomainFilter.realnews()


@pytest.mark.parametrize(
    "url, reason",
    [
        ("https://www.nytimes.com/2019/04/01/us/x.html", reasons.PASSED),
        ("https://www.example.com/news", reasons.BAD_DOMAIN),
        # newsweek.com allows only the "current" subdomain
        ("http://current.newsweek.com/a", reasons.PASSED),
        ("https://www.newsweek.com/a", reasons.BAD_SUBDOMAIN),
        # v3.1.0 checks the NORMALIZED url: "www." after the scheme is gone, so this passes
        # (on the raw url the subdomain would be "www.current" and fail)
        ("http://www.current.newsweek.com/a", reasons.PASSED),
    ],
)
def test_realnews_domain_filter(realnews, url, reason):
    decision = realnews(Page(url=url, text="x", normalized_url=normalize_url(url)))
    assert decision == (reason == reasons.PASSED, reason)


def test_realnews_filter_never_touches_the_network(realnews, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr("c4clean.cleaning.url._tld_extractor._value", None)
    assert realnews(Page(url="https://www.bbc.co.uk/news/x", text="x")).keep
    assert len(realnews.domains) == 5036


def test_realnews_filter_matches_reference(c4_utils, realnews, shared_data, monkeypatch):
    import tldextract

    monkeypatch.setattr(tldextract, "extract", tfds_reference.offline_tldextract())
    pages = [tfds_reference.as_page(p) for p in tfds_reference.differential_corpus(shared_data)]
    # plus urls on listed domains, with and without allowed subdomains
    for i, (domain, allowed) in enumerate(sorted(realnews.domains.items())[::25]):
        subs = allowed if isinstance(allowed, list) else ["www", "news"]
        for sub in ["", "www", "blog"] + subs[:2]:
            host = f"{sub}.{domain}" if sub else domain
            url = f"https://{host}/story/{i}?utm_source=x"
            pages.append(Page(url=url, text="x", normalized_url=normalize_url(url)))
    assert len(pages) > 1000
    decisions = []
    with tfds_reference.counters(c4_utils) as counts:
        for page in pages:
            decision = realnews(page)
            assert decision.keep == c4_utils.is_realnews_domain(
                tfds_reference.tfds_page(c4_utils, page), realnews.domains
            ), page.url
            decisions.append(decision)
    ours = {r: sum(d.reason == r for d in decisions) for r in {d.reason for d in decisions}}
    assert ours == {name: n for (_, name), n in counts.items()}
    assert set(ours) == {reasons.PASSED, reasons.BAD_DOMAIN, reasons.BAD_SUBDOMAIN}


def test_domain_filter_from_plain_text_file(tmp_path):
    path = tmp_path / "domains.txt"
    path.write_text("# my news sites\nexample.org\n\nnews.bbc.co.uk\nSport.BBC.co.uk\n", "utf-8")
    f = DomainFilter.from_file(path)
    assert f.domains == {"example.org": True, "bbc.co.uk": ["news", "sport"]}
    assert f(Page(url="https://blog.example.org/x", text="x")).keep
    assert f(Page(url="https://news.bbc.co.uk/x", text="x")).keep
    assert f(Page(url="https://www.bbc.co.uk/x", text="x")) == (False, reasons.BAD_SUBDOMAIN)
    assert f(Page(url="https://example.com/x", text="x")) == (False, reasons.BAD_DOMAIN)


def test_domain_filter_from_json_file_and_errors(tmp_path):
    good = tmp_path / "d.json"
    good.write_text(json.dumps({"newsweek.com": ["current"], "a.com": True}), "utf-8")
    f = DomainFilter.from_file(good)
    assert f(Page(url="http://current.newsweek.com/", text="x")).keep
    assert not f(Page(url="http://newsweek.com/", text="x")).keep
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a.com": "yes"}), "utf-8")
    with pytest.raises(ValueError, match="a.com"):
        DomainFilter.from_file(bad)
    not_domain = tmp_path / "bad.txt"
    not_domain.write_text("localhost\n", "utf-8")
    with pytest.raises(ValueError, match="bad.txt:1"):
        DomainFilter.from_file(not_domain)


# --- webtextlike URL lists -----------------------------------------------------------------------


def test_url_list_filter_normalizes_both_sides(tmp_path):
    plain = tmp_path / "urls.txt"
    plain.write_text("https://www.example.com/a/?utm_source=reddit\n\nhttp://b.org/x\r\n", "utf-8")
    packed = tmp_path / "more.txt.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as f:
        f.write("http://c.net/y/\n")
    f = UrlListFilter.from_file(plain, packed)
    assert len(f) == 3
    assert f(Page(url="http://example.com/a", text="t")) == (True, reasons.PASSED)
    assert f(Page(url="https://www.c.net/y", text="t")).keep
    assert f(Page(url="x", text="t", normalized_url="b.org/x")).keep
    assert f(Page(url="http://example.com/a/b", text="t")) == (False, reasons.FILTERED)
