import gzip
import http.server
import os
import threading
from pathlib import Path

import pytest

from c4clean.pipelines import download
from c4clean.pipelines.download import DownloadError, download_wet_file, wet_paths_for_dump

DUMP = "2019-18"
SEGMENT = "crawl-data/CC-MAIN-2019-18/segments/1555578517558.8/wet"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files` (URL path -> bytes). `server.truncate_once[path] = n` makes the next
    response announce the full length, send n bytes and close the connection; `server.fail_with`
    gives a status code for the next requests of a path."""

    def do_GET(self):  # noqa: N802 - http.server naming
        srv = self.server
        with srv.lock:
            srv.requests.append(self.path)
            body = srv.files.get(self.path)
            cut = srv.truncate_once.pop(self.path, None)
            status = srv.fail_with.get(self.path, [None]).pop(0) if srv.fail_with.get(self.path) else None
        if status is not None:
            self.send_error(status)
            return
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(sample_wet):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.lock = threading.Lock()
    srv.requests, srv.truncate_once, srv.fail_with = [], {}, {}
    wet_files = sorted(sample_wet.glob("*.wet.gz"))
    srv.files = {f"/{SEGMENT}/{f.name}": f.read_bytes() for f in wet_files}
    listing = "".join(f"{SEGMENT}/{f.name}\n" for f in wet_files)
    srv.files[f"/crawl-data/CC-MAIN-{DUMP}/wet.paths.gz"] = gzip.compress(listing.encode())
    srv.base_url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def wet_urls(server):
    return sorted(server.base_url + p for p in server.files if p.endswith(".warc.wet.gz"))


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.endswith(".part")]


def test_wet_paths_for_dump_lists_urls_and_max_files(server, sample_wet):
    urls = wet_paths_for_dump(DUMP, server.base_url + "/")  # a trailing slash is fine
    names = sorted(f.name for f in sample_wet.glob("*.wet.gz"))
    assert urls == [f"{server.base_url}/{SEGMENT}/{n}" for n in names]
    assert wet_paths_for_dump("CC-MAIN-" + DUMP, server.base_url, max_files=1) == urls[:1]
    with pytest.raises(ValueError):
        wet_paths_for_dump("2019/18", server.base_url)


def test_download_then_cache_hit(server, sample_wet, tmp_path):
    url = wet_urls(server)[0]
    path = download_wet_file(url, str(tmp_path), backoff=0.01)
    assert Path(path) == tmp_path.joinpath(*url.split("/", 3)[3].split("/"))
    assert Path(path).read_bytes() == (sample_wet / Path(url).name).read_bytes()
    n_requests = len(server.requests)
    assert download_wet_file(url, str(tmp_path), backoff=0.01) == path
    assert len(server.requests) == n_requests  # not contacted again
    assert no_temp_files(tmp_path)


def test_truncated_transfer_is_retried(server, sample_wet, tmp_path):
    url = wet_urls(server)[1]
    server.truncate_once[url[len(server.base_url) :]] = 50_000
    path = download_wet_file(url, str(tmp_path), backoff=0.01)
    assert Path(path).read_bytes() == (sample_wet / Path(url).name).read_bytes()
    assert server.requests.count(url[len(server.base_url) :]) == 2
    assert no_temp_files(tmp_path)


def test_server_errors_are_retried_with_backoff(server, tmp_path):
    url = wet_urls(server)[0]
    server.fail_with[url[len(server.base_url) :]] = [503, 500]
    path = download_wet_file(url, str(tmp_path), backoff=0.01)
    assert os.path.getsize(path) == len(server.files[url[len(server.base_url) :]])
    assert server.requests.count(url[len(server.base_url) :]) == 3


def test_404_fails_at_once_with_clear_error(server, tmp_path):
    url = f"{server.base_url}/{SEGMENT}/missing.warc.wet.gz"
    with pytest.raises(DownloadError) as info:
        download_wet_file(url, str(tmp_path), retries=5, backoff=0.01)
    assert info.value.url == url and info.value.attempts == 1 and "404" in str(info.value)
    assert server.requests.count(url[len(server.base_url) :]) == 1  # no retry storm
    assert not Path(download.cache_path(url, str(tmp_path))).exists()
    assert no_temp_files(tmp_path)


def test_corrupt_file_on_server_fails_after_retries_and_leaves_nothing(server, tmp_path):
    # The server sends a complete response of a truncated gzip file: the length matches, the
    # gzip check does not. Each try fails; none of them may leave a file under the final name.
    url = wet_urls(server)[0]
    key = url[len(server.base_url) :]
    server.files[key] = server.files[key][:-100]
    with pytest.raises(DownloadError, match="gzip"):
        download_wet_file(url, str(tmp_path), retries=2, backoff=0.01)
    assert server.requests.count(key) == 3
    assert not Path(download.cache_path(url, str(tmp_path))).exists()
    assert no_temp_files(tmp_path)


def test_partial_file_in_cache_is_downloaded_again(server, sample_wet, tmp_path):
    url = wet_urls(server)[0]
    final = Path(download.cache_path(url, str(tmp_path)))
    final.parent.mkdir(parents=True)
    whole = (sample_wet / final.name).read_bytes()
    final.write_bytes(whole[: len(whole) // 2])  # left behind by some other tool
    assert download_wet_file(url, str(tmp_path), backoff=0.01) == str(final)
    assert final.read_bytes() == whole


def test_gzip_is_complete(tmp_path, sample_wet):
    multi = tmp_path / "multi.gz"
    multi.write_bytes(gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 1000))
    assert download.gzip_is_complete(str(multi))
    damaged = bytearray(multi.read_bytes())
    damaged[-3] ^= 0xFF  # ISIZE of the last member
    (tmp_path / "damaged.gz").write_bytes(bytes(damaged))
    assert not download.gzip_is_complete(str(tmp_path / "damaged.gz"))
    (tmp_path / "trailing.gz").write_bytes(multi.read_bytes() + b"junk")
    assert not download.gzip_is_complete(str(tmp_path / "trailing.gz"))
    (tmp_path / "empty.gz").write_bytes(b"")
    assert not download.gzip_is_complete(str(tmp_path / "empty.gz"))
    for f in sample_wet.glob("*.wet.gz"):
        assert download.gzip_is_complete(str(f))


def test_cache_path_rejects_escapes(tmp_path):
    with pytest.raises(ValueError):
        download.cache_path("http://h/a/../../etc/passwd", str(tmp_path))
