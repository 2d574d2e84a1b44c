"""What the command line says about a library error (unet_edge/cli/messages.py): one line,
the flag that fixes it added here, never in the library's messages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import unet_edge
from unet_edge.cli import HINTS, error_line
from unet_edge.cli.messages import printable
from unet_edge.errors import InputError, OutputExistsError, ProviderError


def test_hints_name_flags_messages_do_not() -> None:
    e = OutputExistsError("a.png exists and overwriting was not asked for", option="overwrite")
    assert error_line(e) == (
        "Error: a.png exists and overwriting was not asked for; pass --overwrite to replace it"
    )
    p = ProviderError("provider 'cuda' cannot run here.", option="provider")
    assert error_line(p).endswith("here. That is --provider cpu, or --provider auto.")
    assert error_line(OutputExistsError("plain")) == "Error: plain"
    # the library modules whose messages were made neutral name no flag
    flag = re.compile(r"--(overwrite|provider|large|tile|output|calibrate|memory|model)\b")
    root = Path(unet_edge.__file__).parent
    wings = [p for w in ("io", "engines", "precision") for p in (root / w).glob("*.py")]
    for path in (*wings, root / "paths" / "files.py", root / "errors.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))
            and n.body
            and isinstance(n.body[0], ast.Expr)
        }
        strings = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
        ]
        for node in strings:
            assert not flag.search(node.value), (path.name, node.value)
    assert set(HINTS) >= {"overwrite", "output", "provider", "large"}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, µm and ß", "plain text, µm and ß"),
        ("red\x1b[31m", "red\\x1b[31m"),  # no colour, no cursor movement from a model file
        ("two\nlines\r", "two\\nlines\\r"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),  # a bidi override shown, not obeyed
    ],
)
def test_printable_escapes_what_a_terminal_would_obey(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_error_line_adds_the_hint_as_a_sentence_or_a_clause() -> None:
    e = ProviderError("provider 'cuda' cannot run here", option="provider")
    assert error_line(e) == (
        "Error: provider 'cuda' cannot run here; that is --provider cpu, or --provider auto"
    )
    unknown = OutputExistsError("x exists.", option="no-such-option")
    assert error_line(unknown) == "Error: x exists."
    said = InputError("name 'a\x1b[2Jb' is not a class", option="normalization")
    assert error_line(said) == (
        "Error: name 'a\\x1b[2Jb' is not a class; "
        "pass --normalization SPEC (e.g. percentile:1,99.8)"
    )
    assert all(not h.endswith(".") and not h[0].isupper() for h in HINTS.values())
