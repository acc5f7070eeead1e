"""Options every `c4clean` command shares: -v/-q, and renamed options whose old spelling still works.

Kept free of heavy imports: every `--help` imports this module and nothing else of weight.
"""

from __future__ import annotations

import logging

import click

_VERBOSITY = "c4clean.verbosity"  # key in the root context's meta: +1 per -v, -1 per -q
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def verbosity() -> int:
    """The -v count minus the -q count of the running command (0 outside a command)."""
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().meta.get(_VERBOSITY, 0) if ctx is not None else 0


def set_log_level(level: int) -> None:
    """-q errors only, default warnings, -v info, -vv debug."""
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger().setLevel(max(logging.DEBUG, min(logging.CRITICAL, logging.WARNING - 10 * level)))


def _count(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        root = ctx.find_root()
        root.meta[_VERBOSITY] = root.meta.get(_VERBOSITY, 0) + (value if param.name == "verbose" else -value)
        set_log_level(root.meta[_VERBOSITY])


def verbosity_options() -> list[click.Option]:
    return [
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_count,
            help="More output (-v info and tracebacks, -vv debug).",
        ),
        click.Option(["-q", "--quiet"], count=True, expose_value=False, callback=_count, help="Less output."),
    ]


def add_verbosity(command: click.Command) -> click.Command:
    """Accept -v/-q on `command` and on every subcommand of it (once each, however often called)."""
    if not any(p.name == "verbose" for p in command.params):
        command.params.extend(verbosity_options())
    for sub in getattr(command, "commands", {}).values():
        add_verbosity(sub)
    return command


class RenamedOption(click.Option):
    """An option whose old spellings (`old=(...)`, also given among its names) are still accepted for
    one release but no longer shown in --help."""

    def __init__(self, *args, old: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.old = tuple(old)

    def get_help_record(self, ctx):
        shown = self.opts
        self.opts = [o for o in shown if o not in self.old]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


def input_option(*names: str, old: tuple[str, ...] = (), **kwargs):
    """`--input` (plus old spellings and the Python parameter name in `names`)."""
    return click.option("--input", *old, *names, cls=RenamedOption, old=old, **kwargs)


def output_option(*names: str, old: tuple[str, ...] = (), **kwargs):
    """`--output` (plus old spellings and the Python parameter name in `names`)."""
    return click.option("--output", *old, *names, cls=RenamedOption, old=old, **kwargs)
