"""The `c4clean` command: a click group whose subcommands are imported only when used.

Lazy loading keeps `c4clean explain` free of Beam, `c4clean run` free of torch start-up time and
every `--help` fast: command modules import torch, Beam and transformers inside their functions.

Errors: a command that fails prints one line (`Error: ...`) and exits 1; `-v` adds the traceback.
Ctrl-C prints how to resume and exits 130 (128 + SIGINT), as shells do.
"""

from __future__ import annotations

import ast
import gc
import importlib
import importlib.util
import os
import re
import sys
import traceback

import click

from c4clean.cli_options import add_verbosity, set_log_level, verbosity, verbosity_options

# command name -> "module:attribute"; each area owns its commands next to its code.
COMMANDS = {
    "explain": "c4clean.explain:explain",
    "run": "c4clean.pipelines.cli:run",
    "stats": "c4clean.pipelines.cli:stats",
    "tokenize": "c4clean.tokenize.cli:tokenize",
    "ablate": "c4clean.ablate.cli:ablate",
    "train": "c4clean.train.cli:train",
    "export": "c4clean.train.cli:export",
    "objectives": "c4clean.train.objectives_cli:objectives",
}

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
INTERRUPTED = "interrupted; resume with --resume"

# Errors a user can cause (bad values, files, disks, permissions) are reported by their message alone;
# anything else is a bug, reported by its type too.
EXPECTED_ERRORS = (ValueError, OSError, RuntimeError)
_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")


def one_line(error: BaseException) -> str:
    """A one-line description of `error`: its message's first line, or, for the multi-line messages
    in which Beam wraps a worker's traceback, the last line that names an exception."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) > 1:
        for line in reversed(lines):
            if match := _ERROR_LINE.match(line):
                return match.group(2).strip()
    return lines[0].strip()


def _short_help(target: str, width: int) -> str:
    module, attr = target.split(":")
    spec = importlib.util.find_spec(module)
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            doc = ast.get_docstring(node) or ""
            return click.Command(attr, help=doc).get_short_help_str(max(45, width - 20))
    return ""


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return add_verbosity(getattr(importlib.import_module(module), attr))

    def format_commands(self, ctx, formatter):
        """The command list of `c4clean --help`, from the commands' docstrings read without importing
        their modules (which would import Beam, torch, ...)."""
        rows = [(name, _short_help(COMMANDS[name], formatter.width)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo(INTERRUPTED, err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # the reader went away (`c4clean explain FILE | head`): stop quietly, as `cat` does, and
            # point stdout at /dev/null so that flushing it at exit does not raise again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)
        except Exception as error:  # noqa: BLE001 - the one place errors become messages
            if verbosity() > 0:
                traceback.print_exc()
            message = one_line(error)
            if not isinstance(error, EXPECTED_ERRORS):
                message = f"internal error ({type(error).__name__}: {message}); -v shows the traceback"
            raise click.ClickException(message) from error


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    params=verbosity_options(),
)
@click.version_option(package_name="c4clean")
def main() -> None:
    """Common Crawl WET dumps to a clean C4-style corpus, and the span-corruption T5 trained on it.

    -v/-q go before or after the subcommand."""
    set_log_level(verbosity())


def entry() -> None:
    """The `c4clean` command as a process (the console script, `python -m c4clean.cli`)."""
    try:
        main()
    finally:
        # The process ends here. Its final garbage collections would walk the whole heap (Beam, the
        # models: ~1.5 s after a run) only to free memory that the OS frees anyway; frozen, they skip it.
        gc.freeze()


if __name__ == "__main__":
    entry()
