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


def test_replacing_a_file_written_by_a_library_and_interrupted(tmp_path):
    target = tmp_path / "shard.arrow"
    with atomic.replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".shard.arrow.")
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    with pytest.raises(KeyboardInterrupt):
        with atomic.replacing(target) as tmp:
            tmp.write_bytes(b"ha")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"whole" and os.listdir(tmp_path) == ["shard.arrow"]


def test_replacing_dir_swaps_a_whole_directory_and_clears_leftovers(tmp_path):
    final = tmp_path / "checkpoints" / "step-00000001"
    with atomic.replacing_dir(final) as tmp:
        (tmp / "a").write_text("1")
    with atomic.replacing_dir(final) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["b"]  # replaced, not merged
    with pytest.raises(RuntimeError):
        with atomic.replacing_dir(final) as tmp:
            (tmp / "c").write_text("half")
            raise RuntimeError("killed")
    assert sorted(p.name for p in final.iterdir()) == ["b"]
    (final.parent / ".tmp-step-00000002-99").mkdir()  # what a SIGKILLed writer leaves
    (final.parent / ".old-step-00000001-99").mkdir()
    atomic.remove_stale_dirs(final.parent)
    assert os.listdir(final.parent) == ["step-00000001"]


@pytest.mark.parametrize("through_beam", [False, True], ids=["local", "beam-filesystems"])
def test_write_bytes_fs_replaces_atomically(tmp_path, monkeypatch, through_beam):
    from apache_beam.io.filesystems import FileSystems

    from c4clean import storage

    if through_beam:  # the way of gs://, s3://..., taken here with a local path
        monkeypatch.setattr(storage, "is_local", lambda path: False)
    target = str(tmp_path / "stage" / "train-00000-of-00001.arrow")
    atomic.write_bytes_fs(target, b"one")
    atomic.write_bytes_fs(target, b"two")
    assert open(target, "rb").read() == b"two" and os.listdir(tmp_path / "stage") == [
        "train-00000-of-00001.arrow"
    ]

    def crash(*_):
        raise OSError("rename failed")

    if through_beam:
        monkeypatch.setattr(FileSystems, "rename", staticmethod(crash))
    else:
        monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic.write_bytes_fs(target, b"three")
    monkeypatch.undo()
    assert open(target, "rb").read() == b"two"  # the temporary is gone, the old file untouched
    assert os.listdir(tmp_path / "stage") == ["train-00000-of-00001.arrow"]
