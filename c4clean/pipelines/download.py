"""Common Crawl by name: list a dump's WET files and download them into a local cache.

Standard library only (urllib), so it runs on any Beam worker. The base URL is configurable: the
official `https://data.commoncrawl.org`, a mirror, a local `http://127.0.0.1:port` server, or a
`file://` tree laid out like `crawl-data/...`.

Cache: `cache_dir/<URL path>` (the host is left out, so switching mirrors keeps the cache).
A download goes to a temporary name in the same directory and is renamed into place only when it
is whole: as many bytes as `Content-Length` announced and, for `.gz`, a complete gzip stream
(every member's CRC and length check out). So a file under its final name is always whole; a
cached file is still re-checked (gzip) before it is trusted, since something else may have put it
there. There is no HTTP range resume: a broken transfer restarts from byte 0.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import random
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from typing import Optional

import c4clean
from c4clean import atomic

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://data.commoncrawl.org"
USER_AGENT = f"c4clean/{c4clean.__version__} (+https://commoncrawl.org/terms-of-use)"
# Client errors that another try cannot fix; everything else (5xx, 429, timeouts, resets) is retried.
_PERMANENT_HTTP_ERRORS = {400, 401, 403, 404, 405, 410, 414, 451}
_CHUNK = 1 << 20
_DUMP_RE = re.compile(r"^(?:CC-MAIN-)?(\d{4}-\d{2})$")


class DownloadError(RuntimeError):
    """A file could not be downloaded whole (after `attempts` tries, or at once for a 404-like error)."""

    def __init__(self, url: str, attempts: int, reason: str):
        super().__init__(f"download failed after {attempts} attempt(s): {url}: {reason}")
        self.url = url
        self.attempts = attempts
        self.reason = reason


class _Incomplete(Exception):
    """A transfer that ended early or produced a broken file: worth another try."""


def gzip_is_complete(path: str) -> bool:
    """True when `path` is one or more whole gzip members and nothing else (CRC and size checked)."""
    try:
        with open(path, "rb") as f:
            d = zlib.decompressobj(wbits=31)
            started = False
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    return started and d.eof
                while chunk:
                    if d.eof:  # the next member starts in this chunk
                        d = zlib.decompressobj(wbits=31)
                    started = True
                    d.decompress(chunk)
                    chunk = d.unused_data
    except (OSError, zlib.error):
        return False


def _is_whole(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    if path.endswith(".gz"):
        return gzip_is_complete(path)
    return True


def cache_path(url: str, cache_dir: str) -> str:
    """Where `url` is cached: its URL path under `cache_dir` (no `..` escapes)."""
    parts = [p for p in urllib.parse.unquote(urllib.parse.urlparse(url).path).split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"cannot map URL to a cache path: {url}")
    return os.path.join(cache_dir, *parts)


def _fetch_once(url: str, final: str, timeout: float) -> None:
    """One attempt: stream `url` into a temporary sibling of `final`, renamed into place once whole."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with atomic.replacing(final, suffix=".part") as tmp:
        with open(tmp, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            received = 0
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except http.client.IncompleteRead as e:
                    raise _Incomplete(f"connection closed after {received + len(e.partial)} bytes") from e
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
        if expected is not None and received != int(expected):
            raise _Incomplete(f"received {received} of {expected} bytes")
        if final.endswith(".gz") and not gzip_is_complete(str(tmp)):
            raise _Incomplete("incomplete or corrupt gzip stream")


def _retryable(error: Exception) -> bool:
    if isinstance(error, urllib.error.HTTPError):
        return error.code not in _PERMANENT_HTTP_ERRORS
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, FileNotFoundError):
        return False  # a file:// base URL: the file does not exist
    return isinstance(error, (_Incomplete, urllib.error.URLError, http.client.HTTPException, OSError))


def download_wet_file(
    url: str,
    cache_dir: str,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    max_backoff: float = 60.0,
) -> str:
    """Downloads `url` into the cache (unless a whole copy is there) and returns the local path.

    Up to `retries` further tries after the first, waiting `backoff * 2**k` seconds (with jitter,
    at most `max_backoff`) before try k+1. A 404 (or another permanent client error) fails at once.
    Raises `DownloadError` when the file cannot be had whole; nothing is then left under its name.
    """
    final = cache_path(url, cache_dir)
    if _is_whole(final):
        log.debug("cache hit: %s", final)
        return final
    attempts = 0
    while True:
        attempts += 1
        try:
            _fetch_once(url, final, timeout)
        except Exception as e:  # noqa: BLE001 - sorted into retryable and permanent just below
            if not _retryable(e):
                raise DownloadError(url, attempts, str(e)) from e
            if attempts > retries:
                raise DownloadError(url, attempts, str(e)) from e
            delay = min(max_backoff, backoff * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)
            log.warning(
                "download of %s failed (%s); try %d of %d in %.1f s", url, e, attempts + 1, retries + 1, delay
            )
            time.sleep(delay)
            continue
        return final


def wet_paths_for_dump(
    dump: str = "2019-18",
    base_url: str = DEFAULT_BASE_URL,
    max_files: Optional[int] = None,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> list[str]:
    """The WET file URLs of a Common Crawl dump (`2019-18` or `CC-MAIN-2019-18`), in the order of
    its `wet.paths.gz`; the first `max_files` of them if given."""
    match = _DUMP_RE.match(dump.strip())
    if not match:
        raise ValueError(f"not a Common Crawl dump name (YYYY-WW): {dump!r}")
    if max_files is not None and max_files < 1:
        raise ValueError(f"max_files must be >= 1, got {max_files}")
    base = base_url.rstrip("/")
    listing_url = f"{base}/crawl-data/CC-MAIN-{match.group(1)}/wet.paths.gz"
    with tempfile.TemporaryDirectory(prefix="c4clean-wet-paths-") as tmp:
        local = download_wet_file(listing_url, tmp, retries=retries, backoff=backoff, timeout=timeout)
        with gzip.open(local, "rt", encoding="utf-8") as f:
            paths = [line.strip() for line in f if line.strip()]
    if max_files is not None:
        paths = paths[:max_files]
    return [f"{base}/{p.lstrip('/')}" for p in paths]


__all__ = [
    "DEFAULT_BASE_URL",
    "DownloadError",
    "cache_path",
    "download_wet_file",
    "gzip_is_complete",
    "wet_paths_for_dump",
]
