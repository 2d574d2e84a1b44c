"""``unet-edge bench``: speed and fidelity of every backend on the same model and images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from . import options as o

_BACKENDS_HELP = (
    "Comma-separated subset of torch, ort-fp32, ort-int8, cuda-fp32, tensorrt-fp32, "
    "tensorrt-fp16, openvino-fp32, openvino-bf16, openvino-int8 [default: all]."
)


def _options(
    sizes: str | None,
    backends: str | None,
    calibration: str | None,
    fidelity: str | None,
) -> dict[str, Any]:
    """The optional settings as :class:`~unet_edge.bench.BenchConfig` keywords."""
    from ..datasets import parse_names

    kw: dict[str, Any] = {}
    if sizes:
        try:
            kw["sizes"] = tuple(int(v) for v in sizes.split(","))
        except ValueError:
            raise click.BadParameter(f"expected sides like 512,2048, got {sizes!r}") from None
    if backends:
        kw["backends"] = tuple(v.strip() for v in backends.split(",") if v.strip())
    if calibration:
        kw["calibration"] = parse_names(calibration)
    if fidelity:
        kw["fidelity"] = parse_names(fidelity)
    return kw


@click.command(short_help="Measure speed and fidelity of every backend on one model.")
@o.model_opt
@o.path_opt(
    "--data",
    folder=True,
    help="Folder with image/ (PNG or TIFF) and optionally label/ (same names) "
    "[default: the sample image shipped with unet-edge]. Labels add mask agreement and "
    "the adapted Rand error.",
)
@o.output_opt(
    "Folder for bench.json, bench.md and bench.png", folder=True, default=Path("bench-results")
)
@click.option("--quick", is_flag=True, help="Seconds instead of minutes: 512x512 only, one repeat.")
@click.option(
    "--sizes", default=None, help="Image sides, comma-separated [default: 512,1024,2048,4096]."
)
@click.option("--backends", default=None, help=_BACKENDS_HELP)
@click.option(
    "--calibration",
    default=None,
    help="Image names to calibrate int8 on, e.g. 00-09 [default: the first 10 (--quick: 1) "
    "not used for fidelity].",
)
@click.option(
    "--fidelity",
    default=None,
    help="Image names to check fidelity on, e.g. 20-24 [default: the last 5 (--quick: 1), "
    "labelled ones first].",
)
@o.path_opt("--int8-model", help="A quantised model to use [default: quantise MODEL now].")
@o.threads_opt
@o.verbosity_options
def bench(
    model: Path,
    data: Path | None,
    output: Path,
    quick: bool,
    sizes: str | None,
    backends: str | None,
    calibration: str | None,
    fidelity: str | None,
    int8_model: Path | None,
    threads: int | None,
    out: o.Reporter,
) -> dict[str, Any]:
    """Measure speed and fidelity of every backend on the same model, images and tiles.

    PyTorch eager (the baseline, with the [train] extra), ONNX Runtime CPU fp32
    and int8, CUDA/TensorRT where they really work, OpenVINO when installed;
    every timing is reported beside a check of its masks. Writes bench.json,
    bench.md and bench.png (with matplotlib). What cannot run here is left
    out with a one-line reason, said before measuring starts.

    \b
    Example (about 20 s):
      unet-edge bench --quick -o /tmp/bench
    """
    from .. import bench as bench_mod

    kw = _options(sizes, backends, calibration, fidelity)
    kw.update(threads=threads, int8_model=int8_model)
    cfg = (
        bench_mod.BenchConfig.quick_config(model, data, output, **kw)
        if quick
        else bench_mod.BenchConfig(model=model, data=data, out_dir=output, **kw)
    )
    for why in bench_mod.preflight(cfg).values():
        out.info(f"Skipping: {why}")
    result = bench_mod.run(cfg, progress=out.detail)
    out.info((output / "bench.md").read_text(encoding="utf-8"))
    png = "" if "plot" in result["left_out"] else " and bench.png"
    out.info(f"wrote bench.json, bench.md{png} to {output} in {result['seconds']:.0f} s")
    return result
