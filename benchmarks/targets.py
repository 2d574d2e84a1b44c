"""This project's benchmark targets (issue 8), checked on a saved ``bench.json``.

    python benchmarks/targets.py benchmarks/results     # check, and add them to bench.{json,md}

The harness (:mod:`unet_edge.bench`, ``unet-edge bench``) measures and knows
no targets; ``benchmarks/run.py`` (``make bench``) runs it and then this.
Each target is read at the largest image size measured. A speed target also
shows the check of the masks it was measured on (pixels with another class
than the reference), since a fast wrong output is no result; a target whose
row is missing is "not measured", never "met".
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unet_edge.io import atomic_path

#: The line that starts this module's section in bench.md (a re-check replaces the section).
MARKER = "## Targets of this project"

Row = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A goal on one figure of the result: ``value(result, size)`` >= or <= ``goal``."""

    name: str
    goal: float
    higher: bool
    unit: str  # "x" (ratio) or "" (share, shown in %)
    backend: str | None  # the row the figure comes from (None: not a row figure)
    figure: Callable[[dict[str, Any], Row | None], float | None]


def _row(result: dict[str, Any], backend: str, size: int | None) -> Row | None:
    rows = result.get("rows", [])
    return next((r for r in rows if r["backend"] == backend and r["size"] == size), None)


def _key(key: str) -> Callable[[dict[str, Any], Row | None], float | None]:
    return lambda _result, row: None if row is None else row.get(key)


def _int8_unchanged(result: dict[str, Any], _row: Row | None) -> float | None:
    fid = result.get("fidelity_summary", {}).get("ort-int8")
    return None if fid is None else 1.0 - fid["class_diff_share"]


TARGETS = (
    Target(
        "ORT fp32 end-to-end speedup over PyTorch eager (same tiles)",
        1.5,
        True,
        "x",
        "ort-fp32",
        _key("speedup_vs_torch"),
    ),
    Target(
        "ORT fp32 model GFLOP/s share of measured fp32 peak",
        0.80,
        True,
        "",
        "ort-fp32",
        _key("peak_share"),
    ),
    Target(
        "non-model stages share of wall time (ORT fp32)",
        0.05,
        False,
        "",
        "ort-fp32",
        _key("non_model_share"),
    ),
    Target(
        "int8 end-to-end speedup over ORT fp32", 2.0, True, "x", "ort-int8", _key("speedup_vs_fp32")
    ),
    Target(
        "int8 pixels unchanged vs fp32 on the fidelity images",
        0.995,
        True,
        "",
        None,
        _int8_unchanged,
    ),
)


def check(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target against ``result`` (a loaded bench.json), at its largest image size."""
    size = max((r["size"] for r in result.get("rows", [])), default=None)
    out = []
    for t in TARGETS:
        row = _row(result, t.backend, size) if t.backend else None
        value = t.figure(result, row)
        met = None if value is None else (value >= t.goal if t.higher else value <= t.goal)
        masks = (row or {}).get("check", {}).get("class_diff_share")
        out.append(
            {
                "target": t.name,
                "value": value,
                "goal": t.goal,
                "higher": t.higher,
                "unit": t.unit,
                "met": met,
                "size": size,
                "class_diff_share": masks,
            }
        )
    return out


def _shown(v: float | None, unit: str) -> str:
    if v is None:
        return "–"
    return f"{v:.2f}x" if unit == "x" else f"{100 * v:.2f}%"


def markdown(checked: list[dict[str, Any]], reference: str = "ort-fp32") -> str:
    """The targets as a Markdown section (starting with :data:`MARKER`)."""
    size = checked[0]["size"] if checked else None
    lines = [
        f"{MARKER} (benchmarks/targets.py), at {size}x{size}",
        "",
        f"| target | measured | goal | met | its masks: class Δ vs {reference} |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in checked:
        goal = f"{t['goal']:.1f}x" if t["unit"] == "x" else f"{100 * t['goal']:.1f}%"
        op = ">=" if t["higher"] else "<="
        met = {True: "yes", False: "no", None: "not measured"}[t["met"]]
        cd = t["class_diff_share"]
        masks = "–" if cd is None else f"{100 * cd:.3f}%"
        lines.append(
            f"| {t['target']} | {_shown(t['value'], t['unit'])} | {op} {goal} | {met} | {masks} |"
        )
    return "\n".join(lines) + "\n"


def apply(out_dir: Path) -> list[dict[str, Any]]:
    """Check the saved result in ``out_dir``; add the targets to bench.json and bench.md.

    Both files are rewritten atomically; an earlier targets section is replaced.
    """
    result = json.loads((out_dir / "bench.json").read_text(encoding="utf-8"))
    checked = check(result)
    result["targets"] = checked
    md = (out_dir / "bench.md").read_text(encoding="utf-8").split(f"\n{MARKER}")[0]
    section = markdown(checked, result.get("reference", "ort-fp32"))
    with atomic_path(out_dir / "bench.md") as tmp:
        tmp.write_text(md.rstrip("\n") + "\n\n" + section, encoding="utf-8")
    with atomic_path(out_dir / "bench.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2, sort_keys=True), encoding="utf-8")
    return checked


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results")
    print(markdown(apply(folder)), end="")
