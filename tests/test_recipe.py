"""The per-page recipe: one ordered list of steps per variant, used by explain and the per-file stage."""

import pytest

from c4clean.cleaning import reasons, recipe
from c4clean.cleaning.page import Page
from c4clean.cleaning.rules import clean_page, is_valid_length
from c4clean.cleaning.url import DomainFilter
from c4clean.pipelines.options import VARIANTS


@pytest.mark.parametrize(
    "variant, names",
    [
        ("en", ["length", "clean", "english", "badwords"]),
        ("en.noclean", ["length", "english"]),
        ("en.noblocklist", ["length", "clean", "english"]),
        ("realnewslike", ["length", "domains", "clean", "english", "badwords"]),
        ("multilingual", ["length", "paragraph", "language", "badwords"]),
    ],
)
def test_steps_of_each_variant_in_c4_order(variant, names):
    flags = VARIANTS[variant]
    domains = DomainFilter({"example.com": True}) if flags.realnews else None
    steps = recipe.page_steps(flags, domains)
    assert [s.name for s in steps] == names
    early = recipe.page_steps(flags, domains, where=(recipe.FILE, recipe.STAGED))
    assert [s.name for s in early] == [n for n in names if n not in ("english", "language", "badwords")]
    assert all(s.namespace for s in steps)


def test_steps_give_the_rules_verdicts_and_counts():
    steps = recipe.page_steps(VARIANTS["en"])
    good = "This is a sentence with enough words. Another sentence is right here. And a third one is here."
    bad = "too short\n" + "x" * 200_000
    for text in (good, "lorem ipsum dolor sit amet is here.\n" + good, bad):
        page = recipe.prepare(Page(url="http://www.example.com/a/", text=text))
        assert page.normalized_url == "example.com/a"
        length = recipe.step_named(steps, "length").apply(page)
        assert (length.keep, length.reason) == tuple(is_valid_length(page))
        assert length.counts == {length.reason: 1}
        if not length.keep:
            continue
        clean = recipe.step_named(steps, "clean").apply(page)
        expected = clean_page(page)
        assert (clean.page, clean.reason, dict(clean.counts)) == (
            expected.page,
            expected.reason,
            dict(expected.counts),
        )
        assert list(clean.dropped_lines) == expected.dropped_lines
    english = recipe.step_named(steps, "english")
    page = Page(url="u", text=good)
    assert english.apply(page) == english.apply_many([page])[0]
    assert english.namespace == reasons.NS_ENGLISH
