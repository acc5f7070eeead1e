"""Every reason code and counter namespace, defined once.

Names follow the TFDS c4 v3.1.0 Beam counters, so that `stats.json`, the Beam counters and
`c4clean explain` speak the same language as the reference. A stage is a counter namespace; a
reason is a counter name inside it. Codes that TFDS does not have (reader errors, near-dedup) follow
the same `kind:detail` shape.
"""

# --- counter namespaces (one per stage) -----------------------------------------------------------
NS_READ = "split-wet-file"
NS_TOO_LONG = "too-long-filter"
NS_REALNEWS = "realnews-filter"
NS_URL_DEDUP = "duplicate-url-filter"
NS_WEBTEXT = "webtextlike-filter"
NS_PARAGRAPH = "paragraph-filter"
NS_CLEAN = "clean-page"
NS_DEDUP_LINES = "dedupe-lines"
NS_NEAR_DEDUP = "near-dedup"
NS_ENGLISH = "english-filter"
NS_BADWORDS = "badwords-filter"
NS_SPLIT = "split"

# --- generic outcomes ------------------------------------------------------------------------------
PASSED = "passed"
FILTERED = "filtered"
LINE_PASSED = "line-passed"
SOFT_PASSED = "soft-passed"

# --- reading WET files (NS_READ): page validity, as TFDS _validate_features ---------------------------
NO_URL = "filtered:no_url"
NO_CONTENT = "filtered:no_content"
NO_TIMESTAMP = "filtered:no_timestamp"

# --- clean_page (NS_CLEAN), in rule order -----------------------------------------------------------
LINE_TOO_LONG_WORD = "line-filtered:too_long_word"
LINE_NO_ENDMARK = "line-filtered:no_endmark"
LINE_TOO_SHORT = "line-filtered:too_short"
PAGE_LOREM_IPSUM = "filtered:loremipsum"
LINE_JAVASCRIPT = "line-filtered:javascript"
PAGE_CURLY_BRACKET = "filtered:squigglybracket"
LINE_POLICY = "line-filtered:policy"
PAGE_TOO_FEW_SENTENCES = "filtered:too_few_sentences"

# --- line dedup (NS_DEDUP_LINES) ---------------------------------------------------------------------
LINE_GLOBAL_DUPLICATE = "line-filtered:global_duplicate"
LINE_LOCAL_DUPLICATE = "line-filtered:local_duplicate"
PAGE_EMPTY = "filtered:empty"
# PAGE_TOO_FEW_SENTENCES is reused here, as TFDS does.

# --- English language id (NS_ENGLISH) ----------------------------------------------------------------
LANGDETECT_EXCEPTION = "filtered:langdetect_exception"
NO_PREDICTIONS = "filtered:no_predictions"
LOW_CONFIDENCE = "filtered:low_confidence"
IGNORED_LANGUAGE = "filtered:ignored_language"


def ignored_language(lang: str) -> str:
    """Per-language counter that TFDS emits beside IGNORED_LANGUAGE."""
    return f"{IGNORED_LANGUAGE}-{lang}"


# --- near-duplicate removal (NS_NEAR_DEDUP) ----------------------------------------------------------
NEAR_DUPLICATE = "filtered:near_duplicate"
