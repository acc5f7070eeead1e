"""The `c4clean` command: a click group whose subcommands are imported only when used.

Lazy loading keeps `c4clean explain` free of Beam and `c4clean run` free of torch start-up time.
"""

from __future__ import annotations

import importlib
import logging

import click

# command name -> "module:attribute"; each area owns its commands next to its code.
COMMANDS = {
    "explain": "c4clean.explain:explain",
    "run": "c4clean.pipelines.cli:run",
    "stats": "c4clean.pipelines.cli:stats",
    "tokenize": "c4clean.tokenize.cli:tokenize",
    "ablate": "c4clean.ablate.cli:ablate",
    "train": "c4clean.train.cli:train",
    "export": "c4clean.train.cli:export",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="c4clean")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Common Crawl WET dumps to a clean C4-style corpus, and the span-corruption T5 trained on it."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    main()
