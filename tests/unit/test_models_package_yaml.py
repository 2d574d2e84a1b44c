"""unet_edge.models.package_yaml: an rdf.yaml bounded before it is expanded, then plain data."""

from __future__ import annotations

import importlib.util
import time

import pytest

from unet_edge import ModelError
from unet_edge.models import package_yaml
from unet_edge.models.package_yaml import load_rdf

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ruyaml") is None,
    reason="ruyaml (the [bioimageio] extra's YAML reader) is not installed",
)


def test_plain_yaml_loads_with_a_few_aliases() -> None:
    text = "a: &x [1, 2.5, text]\nb: *x\nc: {d: null, e: true}\nf: !!str 5\n"
    assert load_rdf(text, "p.zip") == {
        "a": [1, 2.5, "text"],
        "b": [1, 2.5, "text"],
        "c": {"d": None, "e": True},
        "f": "5",
    }


def _laughs(levels: int, width: int) -> str:
    rows = [f"l0: &a0 [{', '.join(['lol'] * width)}]"]
    rows += [f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    ids=lambda v: str(v)[:24],
    argvalues=[
        (_laughs(9, 10), "billion laughs"),
        ("a: &x 1\nb: [" + ", ".join(["*x"] * 150) + "]\n", "more than 100 YAML aliases"),
        ("a: " + "[" * 40 + "]" * 40, "more than 32 levels deep"),
        ("a: !!python/object/apply:os.system [ls]\n", "YAML tag"),
        ("a: !custom 1\n", "YAML tag"),
        ("a: [1\n", "not valid YAML"),
        ("a: 1\na: 2\n", "duplicate key"),
        ("a: *undefined\n", "undefined alias"),
        ("- 1\n- 2\n", "not a mapping"),
        ("1: a\n", "not a mapping"),
        ("", "not a mapping"),
        ("a: 1\n---\nb: 2\n", "not valid YAML"),
    ],
)
def test_refusals_are_one_line(text: str, expected: str) -> None:
    """Each refusal: a one-line ModelError naming the package (parametrised ids: the reason)."""
    with pytest.raises(ModelError) as e:
        load_rdf(text, "p.zip")
    msg = str(e.value)
    assert msg.startswith("p.zip: ") and expected in msg and "\n" not in msg, msg


def test_many_values_without_aliases_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package_yaml, "MAX_VALUES", 1000)
    text = "a: [" + ", ".join(["1"] * 2000) + "]\n"
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="more than 1,000 values; refused"):
        load_rdf(text, "p.zip")
    assert time.perf_counter() - t0 < 1
