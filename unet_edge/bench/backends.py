"""The benchmark's backends: one predictor each, or the reason it cannot run here.

- ``torch``: PyTorch eager on the CPU with the model's own weights, fed the
  same tiles (the baseline; needs the ``[train]`` extra). This is the only
  module of the bench that imports torch or :mod:`unet_edge.training`, and
  only when the baseline is opened;
- ``ort-fp32``: ONNX Runtime, CPU provider, the fp32 graph (the reference);
- ``ort-int8``: the same, static int8 QDQ graph from :func:`unet_edge.precision.quantize`
  calibrated on other images than those used for fidelity where there are any;
- ``cuda-fp32``, ``tensorrt-fp32``, ``tensorrt-fp16``: where the provider
  really works here (otherwise the backend says why not);
- ``openvino-fp32``, ``openvino-bf16``, ``openvino-int8``: the ``openvino``
  provider (fp32 arithmetic; bf16 where the CPU has it, else it says why
  not; the int8 QDQ graph, its agreement gate run on OpenVINO) when the
  package is installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import tiling
from ..errors import UnetEdgeError
from .config import OPTIONAL, BenchConfig

__all__ = ["Backend", "open_backends"]


@dataclass
class Backend:
    """One backend of the run: its predictor, or why it was skipped; notes; how to close it."""

    name: str
    predictor: tiling.Predictor | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None
    warmed: set[tuple[int, ...]] = field(default_factory=set)  # batch shapes run before


def _ort_backend(name: str, model: Path, provider: str, cfg: BenchConfig, **opts: Any) -> Backend:
    """A Segmenter on ``provider`` (onnxruntime's, or openvino) as a backend, or why not."""
    from ..engines.options import ProviderOptions
    from ..runtime import Segmenter

    try:
        seg = Segmenter(
            model,
            provider,
            batch_size=cfg.batch_size,
            options=ProviderOptions(threads=cfg.threads, **opts),
        )
    except UnetEdgeError as e:
        return Backend(name, skipped=str(e))
    return Backend(name, seg.run_batch, notes=list(seg.notes), close=seg.close)


def _torch_backend(model: Path, cfg: BenchConfig) -> Backend:
    """The PyTorch eager baseline with the weights of ``model``, or why not."""
    try:
        import torch

        from ..training.baseline import predictor
    except ImportError as e:
        return Backend("torch", skipped=f"{e.name} is not installed ({OPTIONAL['torch'][1]})")
    try:
        run = predictor(model, cfg.threads)
    except UnetEdgeError as e:
        return Backend("torch", skipped=str(e))
    return Backend(
        "torch", run, notes=[f"torch {torch.__version__}, {torch.get_num_threads()} threads"]
    )


def _int8_backend(
    name: str, cfg: BenchConfig, work: Path, calibrate: Sequence[Path]
) -> tuple[Backend, dict[str, Any]]:
    """The int8 model (given, or quantised now on ``calibrate`` with the agreement gate run on
    this backend's provider) on ``ort-int8`` or ``openvino-int8``; and its statistics."""
    provider = "cpu" if name == "ort-int8" else "openvino"
    if cfg.int8_model is not None:
        return _ort_backend(name, cfg.int8_model, provider, cfg), {"model": str(cfg.int8_model)}
    from .. import precision

    out = work / f"model.{provider}.int8.onnx"
    threshold = precision.AGREEMENT_THRESHOLD if cfg.int8_threshold is None else cfg.int8_threshold
    try:
        rep = precision.quantize(
            cfg.model, calibrate, out, threshold=threshold, overwrite=True, provider=provider
        )
    except UnetEdgeError as e:  # refused by its gate, or the provider cannot run here
        return Backend(name, skipped=str(e)), {"refused": str(e)}
    info = {k: v for k, v in rep.agreement.items() if k != "per_image"}
    stats = {"calibration": [p.stem for p in calibrate], "seconds": rep.seconds, **info}
    return _ort_backend(name, out, provider, cfg), stats


def _gpu_backend(name: str, cfg: BenchConfig) -> Backend:
    """``cuda-fp32``, ``tensorrt-fp32`` or ``tensorrt-fp16``, or why not."""
    from ..engines import select

    prov = name.split("-")[0]
    if prov not in [p.value for p in select.installed()]:
        return Backend(name, skipped=f"{prov} is not compiled into this onnxruntime build")
    why = select.unavailable_reason(prov)
    if why is not None:
        return Backend(name, skipped=why)
    return _ort_backend(name, cfg.model, prov, cfg, trt_fp16=name.endswith("fp16"))


def open_backends(
    cfg: BenchConfig, work: Path, calibrate: Sequence[Path]
) -> tuple[list[Backend], dict[str, Any] | None]:
    """Every backend asked for, opened or skipped with the reason; and the int8 statistics.

    ``work``: a scratch folder for int8 models quantised now, on the images
    ``calibrate``.
    """
    out: list[Backend] = []
    int8: dict[str, Any] = {}
    for name in cfg.backends:
        if name.startswith("openvino") and importlib.util.find_spec("openvino") is None:
            out.append(
                Backend(name, skipped=f"openvino is not installed ({OPTIONAL['openvino'][1]})")
            )
        elif name == "torch":
            out.append(_torch_backend(cfg.model, cfg))
        elif name == "ort-fp32":
            out.append(_ort_backend(name, cfg.model, "cpu", cfg))
        elif name.endswith("int8"):
            b, int8[name] = _int8_backend(name, cfg, work, calibrate)
            out.append(b)
        elif name.startswith("openvino"):
            precision = name.split("-")[1]
            out.append(_ort_backend(name, cfg.model, "openvino", cfg, precision=precision))
        else:
            out.append(_gpu_backend(name, cfg))
    return out, int8 or None
