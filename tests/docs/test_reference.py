"""The reference pages cover the code: every public name, every command, every error, the schema.

The pages are generated when the site is built (mkdocstrings, mkdocs-click and
docs/hooks/generate.py); these tests check that they ask for everything there is.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import unet_edge
from unet_edge import errors
from unet_edge.cli import main
from unet_edge.cli.messages import HINTS

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs/hooks/generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _directives() -> dict[str, object]:
    """``::: dotted.path`` of the API pages, resolved to the objects they document."""
    text = "\n".join(p.read_text() for p in (REFERENCE / "api").glob("*.md"))
    found: dict[str, object] = {}
    for path in re.findall(r"^::: (unet_edge[\w.]*)$", text, re.MULTILINE):
        module, _, name = path.rpartition(".")
        try:
            found[path] = importlib.import_module(path)
        except ModuleNotFoundError:
            found[path] = getattr(importlib.import_module(module), name)
    return found


def test_every_public_name_is_in_the_api_reference() -> None:
    documented = set()
    for obj in _directives().values():
        if inspect.ismodule(obj):  # a whole module: every class and function it defines
            members = inspect.getmembers(obj)
            own = obj.__name__
            documented |= {id(v) for _, v in members if getattr(v, "__module__", "") == own}
        else:
            documented.add(id(obj))
    text = "\n".join(p.read_text() for p in (REFERENCE / "api").glob("*.md"))
    missing = [
        name
        for name in unet_edge.__all__
        if name != "__version__" and id(getattr(unet_edge, name)) not in documented
    ]
    assert not missing, f"not in docs/reference/api: {missing}"
    assert "unet_edge.__version__" in text


def test_every_command_has_a_generated_page() -> None:
    for name, command in main.commands.items():
        page = (REFERENCE / "cli" / f"{name}.md").read_text()
        module = re.search(r":module: ([\w.]+)", page)
        attr = re.search(r":command: (\w+)", page)
        assert "::: mkdocs-click" in page and module and attr, name
        assert getattr(importlib.import_module(module[1]), attr[1]) is command, name
    nav = (ROOT / "mkdocs.yml").read_text()
    assert all(f"reference/cli/{name}.md" in nav for name in main.commands)


def test_the_schema_page_has_every_key_of_a_real_description(gen: ModuleType) -> None:
    from unet_edge import metadata
    from unet_edge.runtime import default_model_path

    page = gen.metadata_schema()
    described = metadata.read(default_model_path()).to_dict()
    for key, value in described.items():
        assert f'"{key}"' in page, key
        if isinstance(value, dict) and key in ("architecture", "input", "geometry", "output"):
            assert all(f'"{k}"' in page for k in value), key
    assert f"version {metadata.SCHEMA_VERSION}" in page


def test_the_errors_page_lists_every_exception_and_hint(gen: ModuleType) -> None:
    table = gen.errors_table()
    classes = inspect.getmembers(errors, inspect.isclass)
    ours = [n for n, c in classes if issubclass(c, errors.UnetEdgeError)]
    assert len(ours) >= 10 and all(f"| `{n}` |" in table for n in ours)
    hints = gen.cli_hints()
    assert all(f"| `{k}` | {v} |" in hints for k, v in HINTS.items())
    assert "130" in gen.exit_codes() and "usage error" in gen.exit_codes()


def test_generated_parts_expand_and_unknown_ones_fail(gen: ModuleType) -> None:
    pages = list((ROOT / "docs").rglob("*.md"))
    mark = re.compile(r"^<!-- gen: ([a-z-]+) -->$", re.MULTILINE)
    asked = {m for p in pages for m in mark.findall(p.read_text())}
    assert asked <= set(gen.GENERATORS), asked - set(gen.GENERATORS)
    assert "<!-- gen:" not in gen.expand("<!-- gen: cli-commands -->")
    with pytest.raises(KeyError, match="no-such-part"):
        gen.expand("<!-- gen: no-such-part -->")


def test_the_architecture_page_is_architecture_md(gen: ModuleType) -> None:
    text = gen.architecture()
    body = (ROOT / "ARCHITECTURE.md").read_text()
    tail = body[body.index("\n## ") :]  # from the first section on: included as it is
    assert tail.replace("](README.md)", "](../index.md)") in text
    assert "](README.md)" not in text


def test_the_error_examples_are_real_one_line_errors(gen: ModuleType) -> None:
    rows = gen.error_examples().splitlines()[2:]
    assert len(rows) >= 5
    assert all("| `Error: " in r for r in rows), rows
    assert [r.split(" | ")[2] for r in rows].count("2") == 1  # the usage error
    assert "/tmp" not in "\n".join(rows)


def test_public_names_have_docstrings_stating_shapes_and_dtypes() -> None:
    undocumented = [
        n
        for n in unet_edge.__all__
        if n != "__version__" and not inspect.getdoc(getattr(unet_edge, n))
    ]
    assert not undocumented
    seg = unet_edge.Segmenter
    for method in ("predict", "segment", "label"):
        doc = inspect.getdoc(getattr(seg, method)) or ""
        assert "(H, W" in doc and re.search(r"uint8|uint32|float32", doc), method
    assert "Raises" in (inspect.getdoc(unet_edge.plan_files) or "")
