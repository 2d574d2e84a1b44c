"""The results as files: ``bench.json`` (every number), ``bench.md`` (the tables), ``bench.png``.

No targets live here: a project checks its own on the saved ``bench.json``
(this repository's are in ``benchmarks/``). The plot needs matplotlib,
imported only when drawing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .. import io
from .config import STAGES

__all__ = ["markdown", "plot", "write_results"]


def _f(v: Any, fmt: str = "", scale: float = 1.0, unit: str = "") -> str:
    """``v`` (times ``scale``) formatted with ``fmt`` and ``unit``; a dash for None."""
    return "–" if v is None else format(v if scale == 1.0 else scale * v, fmt) + unit


Column = tuple[str, Callable[[dict[str, Any]], str]]


def _col(head: str, key: str, fmt: str = "", scale: float = 1.0, unit: str = "") -> Column:
    """A table column showing ``row[key]`` (or ``row["check"][key]`` when the row has checks)."""

    def cell(row: dict[str, Any]) -> str:
        """The cell of ``row`` in this column."""
        src = row if key in row else row.get("check", {})
        return _f(src.get(key), fmt, scale, unit)

    return head, cell


#: Every column of the tables, by heading.
COLUMNS = {
    c[0]: c
    for c in (
        _col("backend", "backend"),
        _col("sweep", "sweep"),
        _col("image", "size", unit="²"),
        _col("tile", "tile"),
        _col("batch", "batch"),
        _col("tiles", "tiles"),
        _col("n", "repeats"),
        _col("wall s (p50)", "wall_s", ".3f"),
        _col("p99 s", "p99_s", ".3f"),
        _col("Mpx/s", "mpx_per_s", ".2f"),
        _col("vs torch", "speedup_vs_torch", ".2f", unit="x"),
        _col("vs ORT fp32", "speedup_vs_fp32", ".2f", unit="x"),
        _col("model GFLOP/s", "gflops", ".0f"),
        _col("% peak", "peak_share", ".0f", 100),
        _col("% FMA", "ceiling_share", ".0f", 100),
        _col("non-model %", "non_model_share", ".1f", 100),
        _col("process peak RSS MiB", "peak_rss_mib", ".0f"),
        _col("activation estimate MiB", "activation_estimate_mib", ".0f"),
        _col("RSS increase MiB", "peak_rss_increase_mib", ".0f"),
        _col("max abs Δp", "max_abs_prob_diff", ".2e"),
        _col("class Δ %", "class_diff_share", ".3f", 100),
        _col("label agreement %", "label_agreement", ".2f", 100),
        _col("adapted Rand error", "rand_error", ".4f"),
        _col("change", "rand_error_change", "+.4f"),
    )
}
#: The check of each timed output, shown beside its figures.
CHECKS = "max abs Δp | class Δ % | label agreement %"
ROW_COLUMNS = (
    "backend | image | tile | tiles | n | wall s (p50) | p99 s | Mpx/s | vs torch | vs ORT fp32 | "
    "model GFLOP/s | % peak | % FMA | non-model % | process peak RSS MiB | " + CHECKS
)
SWEEP_COLUMNS = (
    "sweep | tile | batch | tiles | wall s (p50) | Mpx/s | model GFLOP/s | "
    "activation estimate MiB | RSS increase MiB | " + CHECKS
)
FIDELITY_COLUMNS = "backend | " + CHECKS + " | adapted Rand error | change"


def _columns(heads: str, rows: Iterable[dict[str, Any]]) -> list[str]:
    """A table of ``rows`` with the columns named in ``heads`` ("a | b | c")."""
    columns = [COLUMNS[h] for h in heads.split(" | ")]
    return _table([h for h, _ in columns], [[cell(r) for _, cell in columns] for r in rows])


def _table(head: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    return lines + ["| " + " | ".join(r) + " |" for r in body]


def _core(peak: dict[str, Any]) -> str:
    """The OpenBLAS core of the SGEMM run the peak was taken from."""
    run = peak["runs"].get(peak.get("peak_from") or "", {})
    return str(run.get("openblas_core") or "unknown")


def _ceiling_text(ceiling: dict[str, Any]) -> str:
    """The FMA ceiling in words, or why it was not measured."""
    if "gflops" not in ceiling:
        return f"fp32 FMA ceiling not measured ({ceiling.get('error', 'no result')})"
    return (
        f"fp32 FMA ceiling {ceiling['gflops']:.0f} GFLOP/s ({ceiling['isa']}, "
        f"{ceiling['threads']} threads, C loop of 12 FMA chains per thread)"
    )


def _md_intro(result: dict[str, Any]) -> list[str]:
    """The title, and one paragraph on the model, machine, data, peaks and how rows are read."""
    peak, m, d, mach = result["peak"], result["model"], result["data"], result["machine"]
    a = m["architecture"]
    ceiling = _ceiling_text(result.get("ceiling", {}))
    labels = f", {d['labelled']} with labels" if d["labelled"] else ", no labels"
    return [
        "# unet-edge benchmark",
        "",
        f"Model `{Path(m['path']).name}` ({m['name']}, U-Net depth {a['depth']}, base width "
        f"{a['base_width']}, {m['precision']}); CPU {mach['cpu']} "
        f"({mach.get('cpu_flags', 'flags unknown')}), {mach['cores']} cores; "
        f"onnxruntime {mach['onnxruntime']}. Data: {d['source']} ({d['images']} image(s)"
        f"{labels}). fp32 peak: numpy SGEMM {peak['n']} = {_f(peak['peak_gflops'], '.0f')} "
        f"GFLOP/s ({peak['peak_from']}; OPENBLAS_CORETYPE in the environment: "
        f"{peak['environment'].get('OPENBLAS_CORETYPE')}; OpenBLAS core {_core(peak)}); "
        f"{ceiling}. "
        "Each row: n timed frames (median, p99) after every batch shape was warmed up once; "
        "one frame = read the image file, normalise, tile, infer, stitch, write mask PNG. "
        "Images are the data's images laid side by side and mirrored; the tile is what a "
        "default Segmenter picks. % peak = model GFLOP/s (conv FLOPs / infer time) over the "
        "SGEMM peak, % FMA over the FMA ceiling (int8 and bf16 rows count the same FLOPs, so "
        f"they can exceed 100%). Every row's output is checked: Δp and class Δ against "
        f"{result['reference']} on the same image, label agreement where labels exist.",
    ]


def _md_rows(result: dict[str, Any]) -> list[str]:
    """The table of every backend at every size."""
    return ["", *_columns(ROW_COLUMNS, result["rows"])]


def _md_stages(result: dict[str, Any]) -> list[str]:
    """The seconds per stage of every backend at the largest size."""
    rows = result["rows"]
    biggest = max(r["size"] for r in rows)
    body = [
        [r["backend"], *(f"{r['stages_s'][s]:.4f}" for s in STAGES)]
        for r in rows
        if r["size"] == biggest
    ]
    intro = f"Stages at {biggest}x{biggest}, seconds (median):"
    return ["", intro, "", *_table(["backend", *STAGES], body)]


def _md_sweeps(result: dict[str, Any]) -> list[str]:
    """The tile and batch sweeps (none without them)."""
    sw = result.get("sweeps") or {}
    if not sw:
        return []
    intro = f"Sweeps, ort-fp32, {sw['size']}x{sw['size']} (checked against the default tile):"
    return ["", intro, "", *_columns(SWEEP_COLUMNS, sw["tile"] + sw["batch"])]


def _md_fidelity(result: dict[str, Any]) -> list[str]:
    """Fidelity per backend on the whole fidelity images (none without them)."""
    fs = result.get("fidelity_summary") or {}
    if not fs:
        return []
    names = ", ".join(result["data"]["fidelity"])
    intro = f"Fidelity against {result['reference']} on the image(s) {names}, whole:"
    rows = [{"backend": name, **s} for name, s in fs.items()]
    return ["", intro, "", *_columns(FIDELITY_COLUMNS, rows)]


def _md_left_out(result: dict[str, Any]) -> list[str]:
    """What was not measured and why, and the notes on the data (none if nothing)."""
    items = {**result.get("left_out", {}), **result.get("skipped", {})}  # one line a key
    notes = result["data"].get("notes", [])
    if not items and not notes:
        return []
    return (
        ["", "Not measured, and notes:", ""]
        + [f"- {k}: {v}" for k, v in items.items()]
        + [f"- {n}" for n in notes]
    )


def markdown(result: dict[str, Any]) -> str:
    """The results as Markdown tables (no targets: a project adds its own)."""
    parts = (_md_intro, _md_rows, _md_stages, _md_sweeps, _md_fidelity, _md_left_out)
    return "\n".join(line for part in parts for line in part(result)) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """Throughput by image size per backend, and the tile sweep, as a PNG (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    for name in dict.fromkeys(r["backend"] for r in result["rows"]):
        rs = [r for r in result["rows"] if r["backend"] == name]
        ax.plot([r["size"] for r in rs], [r["mpx_per_s"] for r in rs], "o-", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("image side (px)")
    ax.set_ylabel("output Mpx/s (end to end)")
    ax.set_title("Throughput by backend")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[1]
    sw = result.get("sweeps") or {}
    if sw.get("tile"):
        ts = sw["tile"]
        ax.plot([r["tile"] for r in ts], [r["mpx_per_s"] for r in ts], "o-", label="Mpx/s")
        ax.set_xlabel(f"tile input size (px), {sw['size']}x{sw['size']} image, ort-fp32")
        ax.set_ylabel("output Mpx/s")
        ax.set_title("Tile sweep")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def write_results(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """``bench.json``, ``bench.md`` and (with matplotlib) ``bench.png``, each written atomically.

    Both texts are rendered before anything is written, and ``bench.json``
    goes last, so a failure never leaves a half-written file or a JSON newer
    than its table. Without matplotlib the plot is left out and the reason
    recorded in ``result["left_out"]["plot"]``.
    """
    md = markdown(result)
    text = json.dumps(result, indent=2, sort_keys=True)
    written = []
    png = out_dir / "bench.png"
    if "plot" in result.get("left_out", {}):
        png.unlink(missing_ok=True)  # an earlier run's plot would pass for this run's
    else:
        with io.atomic_path(png) as tmp:
            plot(result, tmp)
        written.append(png)
    for name, content in (("bench.md", md), ("bench.json", text)):
        with io.atomic_path(out_dir / name) as tmp:
            tmp.write_text(content, encoding="utf-8")
        written.append(out_dir / name)
    return written
