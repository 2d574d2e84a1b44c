"""``unet-edge models``: the models that ship inside the package, by name."""

from __future__ import annotations

import json
from collections.abc import Mapping

import click

from . import options as o


def rule_text(rule: Mapping[str, str]) -> str:
    """A model's ``output.labelling`` in words, in a fixed order: ``split watershed, min
    size 10px, border pixels given back`` ("" when it states nothing)."""
    words = [f"split {rule['split']}"] if "split" in rule else []
    words += [f"min size {rule['min_size']}"] if "min_size" in rule else []
    words += [f"{rule['border']} pixels given back"] if "border" in rule else []
    return ", ".join(words)


@click.command(short_help="List the shipped models (-m NAME): classes, pixel size, training data.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@o.verbosity_options
def models(as_json: bool, out: o.Reporter) -> None:
    """List the models inside the package, usable as `-m NAME` (and Segmenter(model=NAME)).

    For each: what it segments, its classes (* marks the object classes that
    --labels numbers), the pixel size it was trained at when known, its
    training data and its file.

    \b
    Example:
      unet-edge models
      unet-edge run nuclei.tif -m nuclei --labels
    """
    from ..models.shipped import DEFAULT, SHIPPED, describe

    found = [describe(name) for name in SHIPPED]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for d in found:
        objects = d["objects"]
        classes = ", ".join(
            f"{c}*" if c in objects else str(c)  # type: ignore[operator]
            for c in d["classes"]  # type: ignore[attr-defined]
        )
        default = " (default)" if d["name"] == DEFAULT else ""
        click.echo(f"{d['name']}{default}: {d['summary']}")
        click.echo(f"  classes:       {classes}")
        click.echo(f"  pixel size:    {d['pixel_size'] or 'not stated'}")
        rule = dict(d["labelling"] or {})  # type: ignore[call-overload]
        how = rule_text(rule)
        click.echo(f"  objects:       {how or 'connected regions'}")
        click.echo(f"  training data: {d['training_data'] or 'not stated'}")
        click.echo(f"  file:          {d['file']}")
