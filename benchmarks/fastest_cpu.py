"""The fastest CPU path of ``unet-edge run`` against ONNX Runtime fp32, end to end, in one run.

    python benchmarks/fastest_cpu.py                     # 2048x2048 ISBI mosaic, 7 rounds
    python benchmarks/fastest_cpu.py --rounds 3 -o /tmp/fastest --int8 M.int8.onnx

Every candidate is a documented flag of ``unet-edge run``:

| backend | command |
| --- | --- |
| ort-fp32 (the reference) | ``unet-edge run IMAGE`` |
| openvino-fp32 | ``unet-edge run IMAGE -p openvino`` |
| openvino-bf16 | ``unet-edge run IMAGE -p openvino --precision bf16`` (CPUs with AVX512-BF16/AMX) |
| ort-int8 | ``unet-edge run IMAGE -m M.cpu.int8.onnx`` |
| openvino-int8 | ``unet-edge run IMAGE -m M.openvino.int8.onnx -p openvino`` |

``M.PROVIDER.int8.onnx`` is ``unet-edge quantize -c 00..09 -p PROVIDER`` of the shipped
model, written now (7-bit weights for cpu, 8-bit for openvino), each with its agreement
gate on the provider that runs it; a row whose file the gate refuses is reported as not
measured. ``--int8 FILE`` uses one given QDQ file for both rows instead.

One frame is :func:`unet_edge.paths.files.segment_file` (what ``run`` calls for each
image) on a 2048x2048 PNG made of 16 ISBI training slices (00-15, 4x4, every
other one mirrored so edges meet; :func:`unet_edge.bench.synth_image`): read,
normalise, tile, infer, stitch, write the mask, with the tile a default
Segmenter picks. Each backend runs its frame once untimed first (the first run
at a tile shape compiles or plans). Then ``--rounds`` rounds, each timing every
backend once, in an order rotated every round, so that a noisy neighbour on a
shared machine hits them alike; a round's speed-up is ORT fp32's time in that
round over the backend's. Reported: medians over rounds, and min-max.

In the same run: the fp32 FMA ceiling (:func:`unet_edge.bench.fma_ceiling`), numpy SGEMM
(:func:`unet_edge.bench.gemm_peak`), and the model's GFLOP/s (convolution FLOPs of
the plan over the time inside the model), and fidelity: each backend's mask on ISBI
slices 20-24 (whole, default tiles) against ORT fp32's.

Writes ``fastest_cpu.json`` and ``fastest_cpu.md`` to ``-o`` (default
``benchmarks/results``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unet_edge import bench, cost, io, precision, processing
from unet_edge.errors import UnetEdgeError
from unet_edge.paths import files
from unet_edge.runtime import Segmenter, default_model_path

ROOT = Path(__file__).resolve().parents[1]
ISBI = ROOT.parent / "shared" / "data" / "isbi2012" / "train"
AGREEMENT = 0.995  # the done criterion: >= 99.5% of pixels keep their class
BACKENDS = {  # name: (int8 model?, provider, precision)
    "ort-fp32": (False, "cpu", "fp32"),
    "openvino-fp32": (False, "openvino", "fp32"),
    "openvino-bf16": (False, "openvino", "bf16"),
    "ort-int8": (True, "cpu", "fp32"),
    "openvino-int8": (True, "openvino", "fp32"),
}


def _open(
    model: Path, int8: dict[str, Path | str], threads: int | None
) -> tuple[dict[str, Segmenter], dict[str, str]]:
    from unet_edge.engines.options import ProviderOptions

    segs, skipped = {}, {}
    for name, (is_int8, provider, prec) in BACKENDS.items():
        path = int8[provider] if is_int8 else model
        if isinstance(path, str):  # why there is no int8 file for this provider
            skipped[name] = path
            continue
        try:
            options = ProviderOptions(threads=threads, precision=prec)
            segs[name] = Segmenter(path, provider, options=options)
        except UnetEdgeError as e:
            skipped[name] = str(e)
    return segs, skipped


def _clock(seg: Segmenter, spent: list[float]) -> None:
    """Time every graph run of ``seg`` (an instance attribute over the method: instrumentation)."""
    run = seg.run_batch

    def timed(batch: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        try:
            return run(batch)
        finally:
            spent.append(time.perf_counter() - t)

    seg.run_batch = timed  # type: ignore[method-assign]


def _rounds(segs: dict[str, Segmenter], image: Path, out: Path, rounds: int) -> dict[str, Any]:
    names = list(segs)
    walls: dict[str, list[float]] = {n: [] for n in names}
    infers: dict[str, list[float]] = {n: [] for n in names}
    spent: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        _clock(segs[n], spent[n])
        files.segment_file(segs[n], image, out / n, overwrite=True)  # warm-up, untimed
    for r in range(rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            spent[n].clear()
            t = time.perf_counter()
            files.segment_file(segs[n], image, out / n, overwrite=True)
            walls[n].append(time.perf_counter() - t)
            infers[n].append(sum(spent[n]))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {walls[n][-1]:.2f} s" for n in names),
              file=sys.stderr)  # fmt: skip
    return {"walls": walls, "infers": infers}


def _fidelity(segs: dict[str, Segmenter], slices: list[np.ndarray]) -> dict[str, dict[str, Any]]:
    ref = [segs["ort-fp32"].predict(s) for s in slices]
    out = {}
    for name, seg in segs.items():
        changed = total = 0
        worst = 0.0
        # the reference is compared with itself without running it a second time
        probs = ref if name == "ort-fp32" else [seg.predict(s) for s in slices]
        for p, r in zip(probs, ref, strict=True):
            changed += int(np.count_nonzero(processing.to_mask(p) != processing.to_mask(r)))
            total += p.shape[-1] * p.shape[-2]
            worst = max(worst, float(np.max(np.abs(p - r))))
        out[name] = {"changed": changed, "pixels": total, "kept": 1 - changed / total,
                     "max_abs_prob_diff": worst}  # fmt: skip
    return out


def _summary(name: str, t: dict[str, Any], ref: str, flops: float) -> dict[str, Any]:
    w, i, w0 = t["walls"][name], t["infers"][name], t["walls"][ref]
    ratios = [a / b for a, b in zip(w0, w, strict=True)]
    return {
        "wall_s": statistics.median(w),
        "wall_min_max": [min(w), max(w)],
        "infer_s": statistics.median(i),
        "speedup": statistics.median(ratios),
        "speedup_min_max": [min(ratios), max(ratios)],
        "gflops": flops / statistics.median(i) / 1e9,
    }


def _int8_files(
    model: Path, given: Path | None, calib: list[Path], work: Path, say: Callable[[str], None]
) -> tuple[dict[str, Path | str], dict[str, Any]]:
    """Per provider, the int8 file (or why there is none) and its quantisation statistics."""
    if given is not None:
        return {"cpu": given, "openvino": given}, {"given": str(given)}
    files_: dict[str, Path | str] = {}
    stats: dict[str, Any] = {}
    for provider in ("cpu", "openvino"):
        say(f"quantising for {provider} (its agreement gate on {provider}, slices 00-09)")
        out = work / f"default.{provider}.int8.onnx"
        try:
            rep = precision.quantize(model, calib, out, provider=provider)
        except UnetEdgeError as e:
            files_[provider] = f"refused by its gate: {e}"
            stats[provider] = {"refused": str(e)}
            continue
        files_[provider] = out
        stats[provider] = {k: v for k, v in rep.agreement.items() if k != "per_image"}
        stats[provider]["weight_bits"] = rep.weight_bits
    return files_, stats


def measure(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    model = args.model or default_model_path()
    data = Path(args.data)
    read = lambda i: io.read_image(data / "image" / f"{i:02d}.png")  # noqa: E731
    result: dict[str, Any] = {"machine": bench.machine(), "model": str(model), "size": args.size}
    say("measuring the FMA ceiling and numpy SGEMM")
    result["ceiling"] = bench.fma_ceiling(args.threads, 20_000_000)
    result["sgemm"] = bench.gemm_peak(4096, args.threads)
    with tempfile.TemporaryDirectory(prefix="fastest-cpu-") as d:
        work = Path(d)
        calib = [data / "image" / f"{i:02d}.png" for i in range(10)]
        int8, result["int8"] = _int8_files(model, args.int8, calib, work, say)
        segs, result["skipped"] = _open(model, int8, args.threads)
        image = io.write_png(
            work / "mosaic.png", bench.synth_image([read(i) for i in range(16)], args.size)
        )
        plan = segs["ort-fp32"].plan_for((args.size, args.size))
        info = segs["ort-fp32"].info
        flops = cost.conv_flops(info.architecture, *plan.tile_shape) * plan.n_tiles
        result["plan"] = {
            "tile": list(plan.tile_shape),
            "tiles": plan.n_tiles,
            "gflop": flops / 1e9,
        }
        say(
            f"{len(segs)} backends, {args.rounds} rounds on {args.size}x{args.size}, "
            f"tile {plan.tile_shape}"
        )
        timing = _rounds(segs, image, work / "out", args.rounds)
        result["timing"] = timing
        say("fidelity on slices 20-24")
        result["fidelity"] = _fidelity(segs, [read(i) for i in range(20, 25)])
        result["rows"] = {
            n: {**_summary(n, timing, "ort-fp32", flops), **result["fidelity"][n]} for n in segs
        }
        result["notes"] = {n: list(s.notes) for n, s in segs.items()}
    return result


def _verdict(result: dict[str, Any]) -> dict[str, Any]:
    ok = {n: r for n, r in result["rows"].items() if r["kept"] >= AGREEMENT and n != "ort-fp32"}
    if not ok:
        return {"fastest": None, "met": False}
    best = max(ok, key=lambda n: ok[n]["speedup"])
    return {"fastest": best, "speedup": ok[best]["speedup"], "met": ok[best]["speedup"] >= 2.5}


def markdown(result: dict[str, Any]) -> str:
    c, g = result["ceiling"], result["sgemm"]["peak_gflops"]
    fma = c.get("gflops")
    head = (
        f"CPU {result['machine']['cpu']} ({result['machine']['cores']} cores; "
        f"{result['machine'].get('cpu_flags', 'flags unknown')}); "
        f"{result['size']}x{result['size']} mosaic of ISBI slices 00-15, tile "
        f"{result['plan']['tile'][0]} ({result['plan']['tiles']} tiles, "
        f"{result['plan']['gflop']:.0f} GFLOP); FMA ceiling "
        + (f"{fma:.0f} GFLOP/s ({c['isa']})" if fma else f"not measured ({c.get('error')})")
        + (f"; numpy SGEMM {g:.0f} GFLOP/s." if g else ".")
    )
    lines = [head, "", "| backend | frame s (median, min-max) | vs ORT fp32 (median, min-max) | "
             "model GFLOP/s | % FMA ceiling | % SGEMM | pixels keeping their class, slices 20-24 "
             "(changed) | max abs Δp |", "|" + " --- |" * 8]  # fmt: skip
    for n, r in result["rows"].items():
        lines.append(
            f"| {n} | {r['wall_s']:.2f} ({r['wall_min_max'][0]:.2f}-{r['wall_min_max'][1]:.2f}) "
            f"| {r['speedup']:.2f}x ({r['speedup_min_max'][0]:.2f}-{r['speedup_min_max'][1]:.2f}) "
            f"| {r['gflops']:.0f} | {100 * r['gflops'] / fma if fma else float('nan'):.0f}% "
            f"| {100 * r['gflops'] / g if g else float('nan'):.0f}% "
            f"| {100 * r['kept']:.3f}% ({r['changed']}) | {r['max_abs_prob_diff']:.1e} |"
        )
    lines += [f"| {n} | not measured: {why} | | | | | | |" for n, why in result["skipped"].items()]
    v = result["verdict"]
    best = "none"
    if v["fastest"]:
        met = "meets" if v["met"] else "misses"
        best = f"{v['fastest']}, {v['speedup']:.2f}x ORT fp32 ({met} 2.5x)"
    lines += [
        "",
        f"Fastest path with >= {100 * AGREEMENT:.1f}% of pixels keeping their class: {best}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-m", "--model", type=Path, default=None, help="fp32 model [shipped]")
    p.add_argument(
        "--int8",
        type=Path,
        default=None,
        help="one int8 QDQ model for both int8 rows [quantise now, per provider]",
    )
    p.add_argument("--data", default=str(ISBI), help="folder with image/00.png ... 24.png")
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("-o", "--output", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    result = measure(args, lambda m: print(m, file=sys.stderr))
    result["verdict"] = _verdict(result)
    result["seconds"] = time.perf_counter() - t0
    md = markdown(result)
    args.output.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(args.output / "fastest_cpu.md") as tmp:
        tmp.write_text(md, encoding="utf-8")
    with io.atomic_path(args.output / "fastest_cpu.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
