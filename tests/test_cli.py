"""One CLI style: --input/--output everywhere (old spellings hidden), -v/-q anywhere, light --help,
one-line errors, Ctrl-C -> 130."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from c4clean import cli

HEAVY = ("torch", "apache_beam", "transformers", "tensorflow", "sentencepiece")


def _all_commands(group=None, prefix=()):
    group = group or cli.main
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


def test_help_imports_no_heavy_library():
    """Every --help, the group's included, renders without torch, Beam, transformers or TF."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from c4clean import cli\n"
        "import tests.test_cli as t\n"
        "paths = [p for p, _ in t._all_commands()]\n"
        "for p in [(), *paths]:\n"
        "    r = CliRunner().invoke(cli.main, [*p, '--help'])\n"
        "    assert r.exit_code == 0, (p, r.output)\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(cli.__file__).parents[1],
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_group_help_imports_no_command_module():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom c4clean import cli\n"
        "r = CliRunner().invoke(cli.main, ['--help'])\n"
        "assert r.exit_code == 0 and 'tokenize' in r.output, r.output\n"
        "print(sorted({t.split(':')[0] for t in cli.COMMANDS.values()} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_input_output_everywhere_old_spellings_hidden():
    """Every option that names a folder to read or write is --input / --output; --data/--out are only
    hidden aliases."""
    for path, command in _all_commands():
        if isinstance(command, click.Group):
            continue
        help_text = CliRunner().invoke(cli.main, [*path, "--help"]).output
        assert "--data" not in help_text and "--out " not in help_text, path
        opts = {o for p in command.params for o in getattr(p, "opts", [])}
        assert "--output" in opts or path in {
            ("explain",),
            ("stats",),
            ("ablate", "report"),
            ("objectives",),
        }, path
        assert "--input" in opts or path in {("explain",), ("ablate", "run"), ("objectives",)}, path


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["train", "--data", "T", "--out", "R"], {"data": "T", "out": "R"}),
        (["train", "--input", "T", "--output", "R"], {"data": "T", "out": "R"}),
        (["ablate", "size", "--input", "T", "--output", "A", "--steps", "1"], {"data": "T", "out": "A"}),
        (["ablate", "size", "--data", "T", "--out", "A", "--steps", "1"], {"data": "T", "out": "A"}),
        (["ablate", "domain", "--input", "a=T", "--output", "A"], {"data": ("a=T",), "out": "A"}),
        (["ablate", "report", "--input", "A"], {"out": "A"}),
        (["ablate", "report", "--out", "A"], {"out": "A"}),
        (["ablate", "run", "--output", "A"], {"out": "A"}),
        (["export", "--input", "R", "--output", "H"], {"source": "R", "out": "H"}),
        (["export", "R", "--out", "H"], {"source_arg": "R", "out": "H"}),
    ],
)
def test_new_and_old_spellings_parse(argv, expect, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("T", "A", "R"):
        (tmp_path / name).mkdir()
    group, *rest = argv
    command = cli.main.get_command(click.Context(cli.main), group)
    if isinstance(command, click.Group):
        command, rest = command.get_command(click.Context(command), rest[0]), rest[1:]
    ctx = command.make_context(group, rest)
    got = {k: ctx.params[k] for k in expect}
    assert {k: str(v) if not isinstance(v, tuple) else v for k, v in got.items()} == expect


def _fake_command(monkeypatch, body):
    @click.command()
    def boom():
        body()

    module = types.ModuleType("c4clean_fake_boom")
    module.boom = boom
    monkeypatch.setitem(sys.modules, "c4clean_fake_boom", module)
    monkeypatch.setitem(cli.COMMANDS, "boom", "c4clean_fake_boom:boom")


def _raise(error):
    def body():
        raise error

    return body


@pytest.mark.parametrize(
    "error, line",
    [
        (ValueError("--batch-size must be >= 1"), "Error: --batch-size must be >= 1"),
        (PermissionError(13, "Permission denied", "/x"), "Error: [Errno 13] Permission denied: '/x'"),
        (
            RuntimeError(
                "Traceback (most recent call last):\n  File x\nValueError: bad ngram [while running]"
            ),
            "Error: bad ngram [while running]",
        ),
        (KeyError("k"), "Error: internal error (KeyError: 'k'); -v shows the traceback"),
    ],
)
def test_errors_are_one_line_and_traceback_only_with_v(monkeypatch, error, line):
    _fake_command(monkeypatch, _raise(error))
    result = CliRunner().invoke(cli.main, ["boom"])
    assert result.exit_code == 1
    assert result.output.strip() == line
    verbose = CliRunner().invoke(cli.main, ["boom", "-v"])
    assert verbose.exit_code == 1 and "Traceback" in verbose.output and line in verbose.output


def test_keyboard_interrupt_exits_130(monkeypatch):
    _fake_command(monkeypatch, _raise(KeyboardInterrupt()))
    result = CliRunner().invoke(cli.main, ["boom"])
    assert result.exit_code == 130
    assert result.output.strip() == "interrupted; resume with --resume"


def test_the_process_entry_keeps_the_exit_status_and_freezes_the_heap_for_exit(monkeypatch):
    # The interpreter's final collections skip frozen objects: a run's process ends ~1.5 s sooner.
    monkeypatch.setattr(sys, "argv", ["c4clean", "no-such-command"])
    frozen = gc.get_freeze_count()
    try:
        with pytest.raises(SystemExit) as exited:
            cli.entry()
        assert exited.value.code == 2  # click's usage error, passed through
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()


def test_reader_leaving_early_is_not_an_error(sample_wet):
    """`c4clean explain FILE | head -1`: the pipe closes early; nothing is printed on stderr."""
    wet = sorted(sample_wet.glob("*.wet.gz"))[0]
    explain = subprocess.Popen(
        [sys.executable, "-m", "c4clean.cli", "explain", str(wet)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = explain.stdout.readline()
    explain.stdout.close()  # the reader leaves after one line, as `head -1` does
    stderr = explain.stderr.read().decode()
    assert explain.wait(timeout=120) == 141
    assert json.loads(first)["stage"] == "split-wet-file"
    assert stderr == ""


def test_verbosity_before_or_after_subcommand(monkeypatch):
    seen = []
    _fake_command(monkeypatch, lambda: seen.append(cli.verbosity()))
    for argv, level in [
        (["boom"], 0),
        (["-v", "boom"], 1),
        (["boom", "-v"], 1),
        (["-v", "boom", "-vv"], 3),
        (["boom", "-q"], -1),
        (["--quiet", "boom"], -1),
    ]:
        seen.clear()
        result = CliRunner().invoke(cli.main, argv)
        assert result.exit_code == 0, result.output
        assert seen == [level], argv


def test_verbosity_after_nested_subcommand(tmp_path):
    result = CliRunner().invoke(cli.main, ["tokenize", "train-vocab", "--help", "-q"])
    assert result.exit_code == 0
    for argv in (["stats", str(tmp_path), "-v"], ["stats", "-q", "--input", str(tmp_path)]):
        result = CliRunner().invoke(cli.main, argv)
        assert "no such option" not in result.output
        assert result.exit_code == 1 and "no manifest.json" in result.output


def test_stats_reads_input_option(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({}))
    result = CliRunner().invoke(cli.main, ["stats", str(tmp_path), "--input", str(tmp_path)])
    assert result.exit_code == 2 and "once" in result.output


def test_model_override_with_bad_value_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(
        cli.main,
        ["train", "--input", str(tmp_path), "--output", str(tmp_path / "r"), "--model", "num_layers=x"],
    )
    assert result.exit_code == 2
    assert "num_layers takes a int" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, says",
    [
        (["--batch-size", "0"], "batch_size must be positive, got 0"),
        (["--batch-size", "-4"], "batch_size must be positive, got -4"),
        (["--save-every", "0"], "save_every must be positive"),
        (["--log-every", "0"], "log_every must be positive"),
        (["--input-length", "0"], "input_length must be at least 2"),
        (["--steps", "0"], "steps must be positive"),
        (["--model", "num_layers=x"], "num_layers takes a int"),
    ],
)
def test_impossible_training_settings_are_refused_in_one_line(args, says, tmp_path):
    result = CliRunner().invoke(
        cli.main, ["train", "--input", str(tmp_path), "--output", str(tmp_path / "r"), *args]
    )
    assert result.exit_code in (1, 2), result.output
    assert says in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


def test_train_vocab_on_a_run_with_no_pages(tmp_path):
    import pyarrow as pa

    from c4clean import formats

    empty = pa.Table.from_pylist([], schema=formats.text_schema())
    with pa.ipc.new_file(str(tmp_path / formats.shard_name("train", 0, 1)), empty.schema) as writer:
        writer.write_table(empty)
    result = CliRunner().invoke(
        cli.main, ["tokenize", "train-vocab", "--input", str(tmp_path), "--output", str(tmp_path / "v")]
    )
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: {tmp_path}: split 'train' holds no text (0 pages, or only empty ones): "
        "nothing to train a vocabulary on"
    )
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--input", "{m}", "--output", "{t}/o", "--workers", "1"],
        ["train", "--input", "{m}", "--output", "{t}/r"],
        ["tokenize", "train-vocab", "--input", "{m}", "--output", "{t}/v"],
        ["tokenize", "encode", "--input", "{m}", "--vocab", "{t}", "--output", "{t}/e"],
        ["export", "--input", "{m}", "--output", "{t}/h", "--weights-only"],
        ["stats", "--input", "{m}"],
        ["ablate", "size", "--input", "{m}", "--output", "{t}/a", "--steps", "1"],
    ],
)
def test_missing_input_is_one_line(argv, tmp_path):
    missing = str(tmp_path / "missing")
    result = CliRunner().invoke(cli.main, [a.format(m=missing, t=tmp_path) for a in argv])
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "missing" in errors[0], result.output
