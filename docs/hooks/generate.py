"""mkdocs hook: pages generated from the code at build time, never hand-copied.

A page asks for a generated part with a line ``<!-- gen: NAME -->``; :data:`GENERATORS`
maps each NAME to a function of no arguments that returns Markdown. An unknown NAME
fails the build. The same functions are used by ``tests/docs`` to check what they say.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_MARK = re.compile(r"^<!-- gen: ([a-z-]+) -->$", re.MULTILINE)


def _fields_table(cls: type) -> str:
    """A Markdown table of a dataclass's fields: name, type and default."""
    rows = ["| field | type | default |", "| --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        default: object = f.default
        if default is dataclasses.MISSING:
            factory = f.default_factory
            default = factory() if factory is not dataclasses.MISSING else "(required)"
        if isinstance(default, enum.Enum):
            default = default.value
        rows.append(f"| `{f.name}` | `{f.type}` | `{default!r}` |")
    return "\n".join(rows)


def _enum_values(cls: type[enum.Enum]) -> str:
    return ", ".join(f"`{m.value}`" for m in cls)


def metadata_schema() -> str:
    """The ONNX metadata schema, from :mod:`unet_edge.metadata` and the dataclasses it uses."""
    from unet_edge import config, metadata
    from unet_edge.runtime import default_model_path

    doc = inspect.getdoc(metadata) or ""
    schema = doc.split("::", 1)[1] if "::" in doc else ""
    example = metadata.read(default_model_path()).to_dict()
    parts = [
        f"The description is JSON under the ONNX `metadata_props` key `{metadata.KEY}`, "
        f"schema `{metadata.SCHEMA}`, version {metadata.SCHEMA_VERSION}. The graph's input is "
        f"named `{metadata.INPUT_NAME}` and its output `{metadata.OUTPUT_NAME}` by default.",
        "## Layout (from `unet_edge/metadata.py`)",
        "```text\n" + inspect.cleandoc(schema) + "\n```",
        "## `architecture`: `UNetConfig`",
        inspect.getdoc(config.UNetConfig) or "",
        _fields_table(config.UNetConfig),
        f"`padding`: one of {_enum_values(config.Padding)}.",
        "## `input.normalization`: `Normalization`",
        inspect.getdoc(config.Normalization) or "",
        _fields_table(config.Normalization),
        f"`mode`: one of {_enum_values(config.NormMode)}.",
        "## `border` and `precision`",
        f"`border`: one of {_enum_values(config.BorderMode)}. "
        f"`precision`: one of {_enum_values(config.Precision)}.",
        "## Example: the shipped model's description",
        "Read from `unet_edge/data/default.onnx` when this page was built "
        "(`unet-edge info --json` prints the same).",
        "```json\n" + json.dumps(example, indent=2, sort_keys=True) + "\n```",
    ]
    return "\n\n".join(parts)


def _first_paragraph(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def errors_table() -> str:
    """Every exception in :mod:`unet_edge.errors`: its builtin base and when it is raised."""
    from unet_edge import errors

    rows = ["| exception | also a | raised when |", "| --- | --- | --- |"]
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if not issubclass(cls, errors.UnetEdgeError) or cls.__module__ != errors.__name__:
            continue
        skip = ("Exception", "BaseException", "object")
        bases = [b.__name__ for b in cls.__mro__[1:] if b.__module__ == "builtins"]
        also = ", ".join(f"`{b}`" for b in bases if b not in skip)
        rows.append(f"| `{name}` | {also or '-'} | {_first_paragraph(cls)} |")
    return "\n".join(rows)


def cli_hints() -> str:
    """The hint the command line adds per ``UnetEdgeError.option`` (``cli/messages.py``)."""
    from unet_edge.cli.messages import HINTS

    rows = ["| the error's `option` | what the command line adds |", "| --- | --- |"]
    rows += [f"| `{k}` | {v} |" for k, v in HINTS.items()]
    return "\n".join(rows)


def _example_inputs(folder: Path) -> None:
    """A small image, a damaged copy of it, a text file posing as a model, an existing result."""
    import cv2
    import numpy as np

    cv2.imwrite(str(folder / "cells.png"), np.tile(np.arange(64, dtype=np.uint8), (64, 1)))
    data = (folder / "cells.png").read_bytes()
    (folder / "damaged.png").write_bytes(data[: len(data) // 2])
    (folder / "model.onnx").write_text("not a model")
    (folder / "results").mkdir()
    (folder / "results" / "cells_mask.png").write_bytes(data)


def error_examples() -> str:
    """Real one-line messages and exit codes of ``unet-edge run``, produced at build time."""
    import os
    import tempfile

    from click.testing import CliRunner

    from unet_edge.cli import main

    cases = [
        ("a file that is not there", ["missing.png"]),
        ("a damaged image", ["damaged.png"]),
        ("an existing result", ["cells.png", "-o", "results"]),
        ("a file that is not a model", ["cells.png", "-m", "model.onnx"]),
        ("an unknown provider", ["cells.png", "-p", "tpu"]),
    ]
    rows = ["| what went wrong | command | exit | message |", "| --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        _example_inputs(Path(tmp))
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for what, args in cases:
                done = CliRunner().invoke(main, ["run", *args])
                lines = [ln for ln in done.output.splitlines() if ln.startswith("Error")]
                message = (lines[-1] if lines else done.output.strip()).replace(tmp, ".")
                message = message.replace("|", "\\|")
                command = " ".join(["unet-edge run", *args])
                rows.append(f"| {what} | `{command}` | {done.exit_code} | `{message}` |")
        finally:
            os.chdir(cwd)
    return "\n".join(rows)


def exit_codes() -> str:
    """Exit codes: the command group's rules and ``unet-edge run``'s own table."""
    from unet_edge import cli
    from unet_edge.cli import run

    doc = " ".join((inspect.getdoc(cli) or "").split())
    general = doc[doc.find("Library errors") :] if "Library errors" in doc else doc
    general = re.sub(r":\w+:`\.?", "`", general).replace("``", "`")
    general = general.replace(" added here", " added by the command line")
    table = run.EXIT_CODES.replace("\b\n", "", 1).strip()
    return f"{general}\n\n`unet-edge run -h` ends with:\n\n```text\n{table}\n```"


def cli_commands() -> str:
    """Every command of ``unet-edge``, with its short help and a link to its page."""
    from unet_edge.cli import main

    rows = ["| command | what it does |", "| --- | --- |"]
    for name in sorted(main.commands):
        cmd = main.commands[name]
        rows.append(f"| [`unet-edge {name}`]({name}.md) | {cmd.get_short_help_str(200)} |")
    return "\n".join(rows)


def tile_choices() -> str:
    """The tile the shipped model's cost model picks for a few image sizes, and what it costs."""
    from unet_edge import cost, metadata, tiling
    from unet_edge.runtime import DEFAULT_MEMORY_BUDGET, default_model_path

    arch = metadata.read(default_model_path()).architecture
    g = metadata.read(default_model_path()).geometry
    rows = [
        "| image | tile (input) | tiles | input px / output px | activation estimate |",
        "| --- | --- | --- | --- | --- |",
    ]
    for side in (64, 256, 512, 1000, 2048, 4096):
        th, tw = tiling.choose_tile(
            (side, side),
            g,
            tile_bytes=lambda h, w: cost.activation_bytes(arch, h, w),
            memory_budget=DEFAULT_MEMORY_BUDGET,
        )
        p = tiling.plan((side, side), g, (th, tw))
        ratio = p.computed_pixels() / side**2
        mib = cost.activation_bytes(arch, th, tw) / 2**20
        rows.append(
            f"| {side} x {side} | {th} x {tw} | {p.n_tiles} | {ratio:.2f} | {mib:.0f} MiB |"
        )
    return "\n".join(rows)


def architecture() -> str:
    """ARCHITECTURE.md, included as it is (its title dropped, its README link to the site)."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    text = re.sub(r"\A# [^\n]*\n", "", text)
    return text.replace("](README.md)", "](../index.md)")


GENERATORS: dict[str, Callable[[], str]] = {
    "metadata-schema": metadata_schema,
    "errors-table": errors_table,
    "cli-hints": cli_hints,
    "exit-codes": exit_codes,
    "error-examples": error_examples,
    "cli-commands": cli_commands,
    "architecture": architecture,
    "tile-choices": tile_choices,
}


def expand(markdown: str) -> str:
    """``markdown`` with every ``<!-- gen: NAME -->`` line replaced by its generated text."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in GENERATORS:
            raise KeyError(f"unknown generated part {name!r}; known: {sorted(GENERATORS)}")
        return GENERATORS[name]()

    return _MARK.sub(one, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """mkdocs event: expand the generated parts of every page."""
    return expand(markdown)


def _click_text(text: str) -> Iterator[str]:
    """Markdown lines of a click help text: a paragraph that click keeps as it is (``\\b``,
    examples, tables) becomes a text block; the others stay paragraphs."""
    for para in re.split(r"\n\s*\n", inspect.cleandoc(text)):
        lines = para.splitlines()
        if lines and lines[0].strip() == "\b":
            yield from ["```text", *lines[1:], "```", ""]
        elif lines and lines[0].rstrip().endswith(":") and len(lines) > 1:
            yield from [lines[0], "", "```text", *lines[1:], "```", ""]
        else:
            yield from [*lines, ""]


def on_config(config: Any, **kwargs: Any) -> Any:
    """mkdocs event: mkdocs-click renders click's ``\\b`` paragraphs and examples as text
    blocks (as ``-h`` prints them) and adds each command's epilog (exit codes) after its
    options; by default it joins those lines into one paragraph and drops the epilog."""
    from mkdocs_click import _docs

    make_options = _docs._make_options

    def description(ctx: Any, remove_ascii_art: bool = False) -> Iterator[str]:
        text = ctx.command.help or ctx.command.short_help
        if text:
            yield from _click_text(text)

    def options(ctx: Any, *args: Any, **kw: Any) -> Iterator[str]:
        yield from make_options(ctx, *args, **kw)
        if ctx.command.epilog:
            yield from _click_text(ctx.command.epilog)

    _docs._make_description = description
    _docs._make_options = options
    return config


# Docstrings use Sphinx roles (:class:`~x.Y`); the API pages render them as plain code.
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):<code>~?")


def on_page_content(html: str, **kwargs: Any) -> str:
    """mkdocs event: ``:class:`~x.Y``` in rendered docstrings becomes ``x.Y`` as code."""
    return _ROLE.sub("<code>", html)
