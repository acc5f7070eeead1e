"""`c4clean objectives`: what each pre-training objective makes of a text, word by word."""

from __future__ import annotations

import json

import click


@click.command("objectives")
@click.option("--text", required=True, help="The text to corrupt; each word is one token.")
@click.option("--objective", "names", multiple=True, help="Only this objective (repeatable). Default: all.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise.")
@click.option(
    "--json", "as_json", is_flag=True, help='One line per objective: {"objective", "inputs", "targets"}.'
)
def objectives(text, names, seed, as_json):
    """Inputs and targets of each objective at word level, like Table 3 of the T5 paper.

    Sentinels are shown as <X>, <Y>, <Z>, <S3>, ...; the mask token as <M>. Noise density 0.15 and
    mean span length 3, as the paper's baseline."""
    from c4clean.train import objectives as O

    for name in names:
        if name not in O.OBJECTIVES:
            raise click.BadParameter(f"unknown objective {name!r}; known: {', '.join(O.OBJECTIVES)}")
    try:
        views = [(name, *O.word_view(text, name, seed)) for name in names or O.OBJECTIVES]
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if as_json:
        for name, inputs, targets in views:
            click.echo(
                json.dumps({"objective": name, "inputs": " ".join(inputs), "targets": " ".join(targets)})
            )
        return
    width = max(len(name) for name, _, _ in views)
    click.echo(f"{'original':<{width}}  {' '.join(O.split_words(text))}")
    for name, inputs, targets in views:
        click.echo(f"{name:<{width}}  inputs:  {' '.join(inputs)}")
        click.echo(f"{'':<{width}}  targets: {' '.join(targets)}")
