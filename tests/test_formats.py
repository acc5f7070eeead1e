"""On-disk names and format versions: one shard name for text and token shards, one version check."""

import json

import pytest

from c4clean import formats


@pytest.mark.parametrize(
    "name, parsed",
    [
        ("train-00003-of-00008.arrow", ("train", 3, 8)),
        ("validation-00000-of-00001.arrow", ("validation", 0, 1)),
        ("en-00000-of-00002.arrow", ("en", 0, 2)),
        ("en-validation-00001-of-00002.arrow", ("en-validation", 1, 2)),
        ("zh-cn-00000-of-00001.parquet", ("zh-cn", 0, 1)),
        ("train-00000-of-00001.parquet", ("train", 0, 1)),
        ("und-validation-00000-of-00001.arrow", ("und-validation", 0, 1)),
        ("train-123456-of-200000.arrow", ("train", 123456, 200000)),  # past five digits
        ("/some/dir/train-00000-of-00001.arrow", ("train", 0, 1)),
    ],
)
def test_shard_names_parse_any_split_and_width(name, parsed):
    assert formats.parse_shard_name(name) == parsed


@pytest.mark.parametrize(
    "name",
    [
        "train-00000-of-00001.arrow.json",  # the sidecar
        "train-00000-of-00001.arrow.tmp-0123abcd",  # a temporary of write_bytes_fs
        ".train-00000-of-00001.arrow.x1y2.tmp",  # a temporary of atomic.replacing
        ".train-00000-of-00001.arrow",
        "train-of-00001.arrow",
        "-00000-of-00001.arrow",
        "train-00000-of-00001.feather",
        "manifest.json",
    ],
)
def test_other_files_are_not_shards(name):
    assert formats.parse_shard_name(name) is None


def test_shard_name_round_trips_and_keeps_todays_names():
    assert formats.shard_name("train", 3, 8) == "train-00003-of-00008.arrow"
    assert formats.shard_name("en-validation", 0, 1, "parquet") == "en-validation-00000-of-00001.parquet"
    for split, index, count in [("zh-cn", 7, 12), ("train", 100000, 100001)]:
        assert formats.parse_shard_name(formats.shard_name(split, index, count)) == (split, index, count)
    with pytest.raises(ValueError, match="feather"):
        formats.shard_name("train", 0, 1, "feather")


def test_list_shards_orders_filters_and_refuses_gaps(tmp_path):
    for name in [
        "train-00001-of-00002.arrow",
        "train-00000-of-00002.arrow",
        "zh-cn-00000-of-00001.arrow",
        "und-validation-00000-of-00001.parquet",
        "manifest.json",
        "train-00000-of-00002.arrow.json",
    ]:
        (tmp_path / name).write_bytes(b"")
    found = formats.list_shards(tmp_path)
    assert [(s.split, s.index, s.count, s.path.name) for s in found] == [
        ("train", 0, 2, "train-00000-of-00002.arrow"),
        ("train", 1, 2, "train-00001-of-00002.arrow"),
        ("und-validation", 0, 1, "und-validation-00000-of-00001.parquet"),
        ("zh-cn", 0, 1, "zh-cn-00000-of-00001.arrow"),
    ]
    assert [s.split for s in formats.list_shards(tmp_path, "zh-cn")] == ["zh-cn"]
    assert [s.path.name for s in formats.list_shards(tmp_path, fmt="parquet")] == [
        "und-validation-00000-of-00001.parquet"
    ]
    (tmp_path / "train-00001-of-00002.arrow").unlink()
    with pytest.raises(ValueError, match="'train'.*incomplete"):
        formats.list_shards(tmp_path)
    (tmp_path / "train-00000-of-00002.arrow").unlink()
    (tmp_path / "zh-cn-00000-of-00001.parquet").write_bytes(b"")  # one split in two formats
    with pytest.raises(ValueError, match="'zh-cn'.*inconsistent"):
        formats.list_shards(tmp_path)
    with pytest.raises(FileNotFoundError):
        formats.list_shards(tmp_path / "absent")


def test_shard_format_and_token_shard_name():
    assert formats.shard_format("out/en-00001-of-00002.parquet") == "parquet"
    assert formats.token_shard_name("out/en-00001-of-00002.parquet") == "en-00001-of-00002.arrow"
    assert formats.token_shard_name("train-123456-of-200000.arrow") == "train-123456-of-200000.arrow"
    with pytest.raises(ValueError, match="not a shard"):
        formats.shard_format("notes.txt")


def test_format_ids_follow_one_convention():
    every = [formats.TEXT_SHARDS, formats.WORK, formats.VOCAB, formats.TOKENS, formats.CHECKPOINT]
    every.append(formats.PLAN)
    assert formats.TEXT_SHARDS.id == "c4clean-shards/1"
    assert formats.CHECKPOINT.id == "c4clean-t5-checkpoint/1"
    assert len({f.name for f in every}) == len(every)
    assert all(f.id == f"{f.name}/{f.version}" and f.name.startswith("c4clean-") for f in every)


def test_check_names_found_and_expected_versions(tmp_path):
    tokens = formats.TOKENS
    assert tokens.check(tokens.stamp(), "m.json") == {"format_version": "c4clean-tokens/1"}
    with pytest.raises(
        formats.FormatError, match=r"m.json: format 'c4clean-tokens/2', expected 'c4clean-tokens/1'"
    ):
        tokens.check({"format_version": "c4clean-tokens/2"}, "m.json")
    with pytest.raises(formats.FormatError, match="format 'c4clean-shards/1', expected 'c4clean-tokens/1'"):
        tokens.check({"format_version": "c4clean-shards/1", "format": "parquet"}, "m.json")
    with pytest.raises(formats.FormatError, match="format None"):
        tokens.check({"something": "else"}, "m.json")


def test_documents_of_the_older_conventions_still_read():
    assert formats.format_of({"format_version": "c4clean-shards/1", "format": "arrow"}) == "c4clean-shards/1"
    assert formats.format_of({"format": "c4clean-t5-checkpoint/1"}) == "c4clean-t5-checkpoint/1"
    assert formats.format_of({"format": "parquet"}) is None  # a file format, not a version
    assert formats.format_of({"format": "c4clean-tokens", "version": 1}) == "c4clean-tokens/1"
    assert formats.format_of({"format": "c4clean-vocab", "version": 1}) == "c4clean-vocab/1"
    formats.PLAN.check({"version": 1, "kind": "size"}, "ablation.json")  # a plan's bare version
    with pytest.raises(formats.FormatError, match="c4clean-ablation-plan/2"):
        formats.PLAN.check({"version": 2, "kind": "size"}, "ablation.json")


def test_readers_refuse_another_version_with_a_clear_error(tmp_path):
    from c4clean.pipelines.manifest import load_output
    from c4clean.tokenize.encode import read_manifest

    (tmp_path / formats.MANIFEST).write_text(json.dumps({"format_version": "c4clean-shards/9"}))
    with pytest.raises(formats.FormatError, match="'c4clean-shards/9', expected 'c4clean-shards/1'"):
        load_output(str(tmp_path))
    with pytest.raises(formats.FormatError, match="'c4clean-shards/9', expected 'c4clean-tokens/1'"):
        read_manifest(tmp_path)


def test_stats_command_reports_a_foreign_output_in_one_line(tmp_path):
    from click.testing import CliRunner

    from c4clean.cli import main

    (tmp_path / formats.MANIFEST).write_text(json.dumps({"format_version": "c4clean-shards/0"}))
    result = CliRunner().invoke(main, ["stats", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "format 'c4clean-shards/0', expected 'c4clean-shards/1'" in result.output
