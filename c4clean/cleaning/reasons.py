"""Every reason code and counter namespace, defined once.

Names follow the TFDS c4 v3.1.0 Beam counters, so that `stats.json`, the Beam counters and
`c4clean explain` speak the same language as the reference. A stage is a counter namespace; a
reason is a counter name inside it. Codes that TFDS does not have (reader errors, near-dedup) follow
the same `kind:detail` shape.
"""

# --- counter namespaces (one per stage) -----------------------------------------------------------
NS_READ = "split-wet-file"
NS_TOO_LONG = "too-long-filter"
NS_REALNEWS = "realnews-domain-filter"
NS_URL_DEDUP = "duplicate-url-filter"
NS_WEBTEXT = "webtextlike-filter"
NS_PARAGRAPH = "paragraph-filter"
NS_CLEAN = "clean-page"
NS_DEDUP_LINES = "dedupe-lines"
NS_NEAR_DEDUP = "near-dedup"
NS_ENGLISH = "english-filter"
NS_BADWORDS = "badwords-filter"
NS_SPLIT = "split"
# c4clean's own per-stage accounting (`<stage>:in`, `:out`, `:bytes`, `:us`) for the run summary table.
NS_STAGES = "c4clean-stages"
# Page-length histograms (`pipelines/histograms.py`): `<measure>-<when>:<bin>` page counts.
NS_HISTOGRAMS = "c4clean-histograms"

# --- generic outcomes ------------------------------------------------------------------------------
PASSED = "passed"
FILTERED = "filtered"
LINE_PASSED = "line-passed"
SOFT_PASSED = "soft-passed"

# --- reading WET files (NS_READ): page validity, as TFDS _validate_features ---------------------------
NO_URL = "filtered:no_url"
NO_CONTENT = "filtered:no_content"
NO_TIMESTAMP = "filtered:no_timestamp"
# A whole input file failed in a way the reader could not report as a value (pipeline-level catch).
READ_FAILED = "error:read_failed"
# Reader codes of this kind mean data was lost (`--strict` fails on them); others are notes.
READ_ERROR_PREFIX = "error:"
# Reader codes of these kinds concern a record that is still read and kept (a page follows).
READ_KEPT_PREFIXES = ("warning:", "repaired:")
# A `--cc-dump` WET file could not be downloaded whole (after retries, or a 404).
DOWNLOAD_FAILED = "error:download_failed"
# Reader issues TFDS does not have (it crashes or mis-reads instead); `wet.ReadIssue.code`.
READ_UNREADABLE = "error:unreadable"  # missing file, unreadable object, I/O error mid-read
READ_EMPTY_FILE = "error:empty_file"  # no bytes, or only whitespace
READ_TRUNCATED_GZIP = "error:truncated_gzip"  # stream ends inside a gzip member's data
READ_CORRUPT_GZIP = "error:corrupt_gzip"  # bad gzip data; reading resumes at the next member
READ_TRUNCATED_RECORD = "error:truncated_record"  # a cut record: shorter than its Content-Length
READ_NOT_WET = "error:not_wet"  # (decompressed) data is another format, binary, or has no WARC/1.0 line
READ_GZIP_TRAILER_CUT = "warning:gzip_trailer_cut"  # data whole, CRC unchecked: the 8-byte trailer is cut
READ_BAD_UTF8 = "repaired:bad_utf8"  # record kept, invalid bytes decoded as U+FFFD
READ_BEFORE_FIRST_RECORD = "skipped:before_first_record"  # data before the first WARC/1.0 (or after damage)
READ_EXTRA_WARCINFO = "skipped:warcinfo"  # a warcinfo record after the first one
# a record followed by another one, kept (as TFDS keeps it) though shorter than its Content-Length
READ_LENGTH_MISMATCH = "warning:content_length_mismatch"

# --- RealNews domain list (NS_REALNEWS; TFDS calls this namespace "realnews-domain-filter") ----------
BAD_DOMAIN = "filtered:bad_domain"
BAD_SUBDOMAIN = "filtered:bad_subdomain"

# --- webtextlike URL list (NS_WEBTEXT): FILTERED / PASSED per page; a listed URL with no page is: ---
MISSING_PAGE = "missing-page"

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


# --- multilingual language id (NS_LANGUAGE; TFDS detect_languages): NO_PREDICTIONS, LOW_CONFIDENCE,
# IGNORED_LANGUAGE, PASSED plus passed_language(lang); pages it cannot place get UNKNOWN_LANGUAGE ----
NS_LANGUAGE = "language-filter"
UNKNOWN_LANGUAGE = "und"


def passed_language(lang: str) -> str:
    """Per-language counter that TFDS detect_languages emits beside PASSED."""
    return f"{PASSED}:{lang}"


# --- bad words (NS_BADWORDS): FILTERED / SOFT_PASSED / PASSED, also counted per list language --------
def badwords_namespace(lang: str) -> str:
    """TFDS's per-language bad-words namespace (`badwords-filter-<lang>`)."""
    return f"{NS_BADWORDS}-{lang}"


# --- near-duplicate removal (NS_NEAR_DEDUP) ----------------------------------------------------------
NEAR_DUPLICATE = "filtered:near_duplicate"
# Near-dedup work counters (not reasons): LSH candidate pairs, pairs found with exact Jaccard >= the
# threshold, clusters found, and graph nodes whose component label still changed in the last round.
NEAR_DEDUP_CANDIDATE_PAIRS = "candidate-pairs"
NEAR_DEDUP_VERIFIED_PAIRS = "verified-pairs"
NEAR_DEDUP_CLUSTERS = "clusters"
NEAR_DEDUP_UNCONVERGED = "unconverged-nodes"
