"""Atomic writes: the final file is complete, readable by others, and no temporary is left behind."""

import os
import stat

import pytest

from c4clean import atomic


def test_write_json_is_stable_and_world_readable(tmp_path):
    target = tmp_path / "sub" / "m.json"
    atomic.write_json(target, {"b": 1, "a": [1, 2]})
    first = target.read_bytes()
    atomic.write_json(target, {"a": [1, 2], "b": 1})
    assert target.read_bytes() == first == b'{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    mode = stat.S_IMODE(os.stat(target).st_mode)
    assert mode == atomic.FILE_MODE and mode & stat.S_IRGRP  # mkstemp alone would give 0600
    assert os.listdir(target.parent) == ["m.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"
    atomic.write_text(target, "old")

    def crash(src, dst):
        assert open(src).read() == "new"  # the new content was complete in the temporary
        raise OSError("disk gone")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError):
        atomic.write_text(target, "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["x.txt"]
