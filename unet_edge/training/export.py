"""Checkpoint -> self-describing ONNX graph, verified against PyTorch before it is written.

The graph takes ``image`` float32 (N, C, H, W) with dynamic N, H, W (H and
W legal for the model's geometry) and returns ``probabilities`` float32
(N, K, H_out, W_out): the softmax is part of the graph. Weights are stored
inside the one ``.onnx`` file (no ``.onnx.data`` beside it).

Export uses torch's TorchScript-based exporter: the network's skip crops
are static slices, so it records dynamic height/width without shape
arithmetic, and it writes a single self-contained protobuf.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from .. import __version__, metadata
from ..config import Precision
from ..errors import ExportError
from ..io import atomic_path
from ..metadata import ModelInfo
from . import checkpoint as ckpt_mod
from .config import stated_labelling
from .model import UNet, conv_gflops, count_parameters

DEFAULT_OPSET = 17
PARITY_RTOL = 1e-4
# fp16 keeps ~3 significant digits; softmax outputs of a trained U-Net moved by <= ~5e-3
# in our trials, so 2e-2 (relative to the largest probability) flags a broken graph only.
FP16_PARITY_RTOL = 2e-2


class _WithSoftmax(torch.nn.Module):
    def __init__(self, net: UNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


@dataclass
class ExportReport:
    path: Path
    parameters: int
    gflops_per_tile: float
    tile: int
    file_bytes: int
    parity: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    precision: str = "fp32"
    rtol: float = PARITY_RTOL

    @property
    def max_rel_error(self) -> float:
        return max(p["rel_error"] for p in self.parity)

    def summary(self) -> str:
        sizes = ", ".join(f"{p['shape'][2]}x{p['shape'][3]}" for p in self.parity)
        return (
            f"wrote {self.path} ({self.file_bytes / 1e6:.2f} MB): {self.parameters:,} parameters, "
            f"{self.gflops_per_tile:.1f} GFLOP per {self.tile}x{self.tile} tile; parity with "
            f"PyTorch on {sizes}: max relative error {self.max_rel_error:.2e} "
            f"(limit {self.rtol:.0e}, {self.precision})"
        )


def to_onnx(model: UNet, info: ModelInfo, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Trace ``model`` to an in-memory ONNX model stamped with ``info``."""
    if opset < 17:
        raise ExportError(f"opset {opset} is too old; unet-edge exports opset >= 17")
    g = info.geometry
    n = g.input_for_output(g.alignment)  # a small legal tile for tracing
    example = torch.zeros(1, info.channels, n, n)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _WithSoftmax(model.eval()),
            (example,),
            buf,  # type: ignore[arg-type]  # the TorchScript exporter accepts file objects
            dynamo=False,
            opset_version=opset,
            input_names=[info.input_name],
            output_names=[info.output_name],
            dynamic_axes={
                info.input_name: {0: "batch", 2: "height", 3: "width"},
                info.output_name: {0: "batch", 2: "out_height", 3: "out_width"},
            },
        )
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "unet-edge"
    proto.producer_version = __version__
    metadata.write(proto, info)
    return proto


def parity_sizes(info: ModelInfo, seed: int) -> list[tuple[int, int]]:
    """Two random legal (height, width) pairs, non-square, small enough to run quickly."""
    g = info.geometry
    rng = np.random.default_rng(seed)
    legal = g.legal_inputs(g.min_input + 12 * g.alignment)
    picks = rng.choice(legal, size=4, replace=True)
    return [(int(picks[0]), int(picks[1])), (int(picks[2]), int(picks[3]))]


def check_parity(
    model: UNet,
    proto: onnx.ModelProto,
    info: ModelInfo,
    sizes: list[tuple[int, int]],
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Run ONNX Runtime and PyTorch on random inputs; returns the errors per size."""
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    results = []
    for h, w in sizes:
        x = rng.standard_normal((2, info.channels, h, w)).astype(np.float32)
        with torch.no_grad():
            ref = _WithSoftmax(model.eval())(torch.from_numpy(x)).numpy()
        got = sess.run([info.output_name], {info.input_name: x})[0]
        if got.shape != ref.shape:
            raise ExportError(f"ONNX output shape {got.shape} != PyTorch {ref.shape} at {h}x{w}")
        err = float(np.max(np.abs(got.astype(np.float64) - ref)))
        rel = err / max(float(np.max(np.abs(ref))), 1e-12)
        results.append({"shape": list(x.shape), "max_abs_error": err, "rel_error": rel})
    return results


def _provenance(
    checkpoint: str | Path | ckpt_mod.Checkpoint,
    ck: ckpt_mod.Checkpoint,
    provenance: dict[str, Any] | None,
) -> dict[str, Any]:
    """Who exported ``ck`` and when, its file and training steps, then ``provenance``."""
    prov = {
        "exported_by": f"unet-edge {__version__}",
        "torch": torch.__version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not isinstance(checkpoint, ckpt_mod.Checkpoint):
        prov["checkpoint"] = Path(checkpoint).name
    if ck.training.get("step") is not None:
        prov["training_steps"] = ck.training["step"]
    if ck.training.get("config", {}).get("training_data"):  # what it learnt from, for packages
        prov["training_data"] = ck.training["config"]["training_data"]
    prov.update(provenance or {})
    return prov


def _checked_graph(model: UNet, info: ModelInfo, opset: int, fp16: bool) -> onnx.ModelProto:
    """The ONNX graph of ``model`` (fp16 if asked), passed by ``onnx.checker``."""
    proto = to_onnx(model, info, opset)
    if fp16:
        from ..precision import to_fp16

        proto = to_fp16(proto)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:
        raise ExportError(f"the exported graph fails onnx.checker: {e}") from None
    return proto


def _parity_within(
    model: UNet, proto: onnx.ModelProto, info: ModelInfo, seed: int, rtol: float
) -> list[dict[str, Any]]:
    """:func:`check_parity` on :func:`parity_sizes`; raises if an error exceeds ``rtol``."""
    parity = check_parity(model, proto, info, parity_sizes(info, seed), seed)
    worst = max(p["rel_error"] for p in parity)
    if not worst <= rtol:
        raise ExportError(
            f"ONNX Runtime and PyTorch disagree: max relative error {worst:.3g} > {rtol:g}; "
            "the graph was not written"
        )
    return parity


def export_checkpoint(
    checkpoint: str | Path | ckpt_mod.Checkpoint,
    output: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    seed: int = 0,
    overwrite: bool = False,
    provenance: dict[str, Any] | None = None,
    rtol: float | None = None,
    fp16: bool = False,
) -> ExportReport:
    """Export a checkpoint to ``output`` (one self-contained .onnx file).

    The graph is checked with ``onnx.checker`` and run in ONNX Runtime on two
    random legal sizes; if its probabilities differ from PyTorch's by more
    than ``rtol`` (relative) nothing is written and :class:`ExportError` is raised.

    ``fp16=True`` writes a half-precision graph for GPUs (float32 inputs and outputs,
    metadata precision ``fp16``, see :func:`unet_edge.precision.to_fp16`), checked
    against PyTorch fp32 with ``rtol`` defaulting to :data:`FP16_PARITY_RTOL`. The
    parity run uses the CPU provider, where fp16 is no faster than fp32.
    """
    t0 = time.perf_counter()
    output = Path(output)
    if output.exists() and not overwrite:
        from ..errors import OutputExistsError

        raise OutputExistsError(
            f"{output} exists and overwriting was not asked for", option="overwrite"
        )
    ck = checkpoint if isinstance(checkpoint, ckpt_mod.Checkpoint) else ckpt_mod.load(checkpoint)
    model = ck.build_model()
    info = ModelInfo(
        architecture=ck.config,
        normalization=ck.normalization,
        class_names=ck.class_names,
        name=ck.name,
        precision=Precision.FP32,
        provenance=_provenance(checkpoint, ck, provenance),
        metrics=ck.metrics,
        **_from_training(ck.training.get("config", {})),
    )
    proto = _checked_graph(model, info, opset, fp16)
    if rtol is None:
        rtol = FP16_PARITY_RTOL if fp16 else PARITY_RTOL
    parity = _parity_within(model, proto, info, seed, rtol)
    with atomic_path(output) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
    tile = 572 if info.geometry.is_legal(572) else info.geometry.input_for_output(388)
    return ExportReport(
        path=output,
        parameters=count_parameters(model),
        gflops_per_tile=conv_gflops(ck.config, tile, tile),
        tile=tile,
        file_bytes=output.stat().st_size,
        parity=parity,
        seconds=time.perf_counter() - t0,
        precision="fp16" if fp16 else "fp32",
        rtol=rtol,
    )


class _Variant(torch.nn.Module):
    """The bioimage.io variant (:func:`unet_edge.training.package.variant_graph`) in torch."""

    def __init__(self, net: UNet, crop: int, pad_before: int, pad_after: int) -> None:
        super().__init__()
        self.net, self.crop, self.pads = net, crop, (pad_before, pad_after) * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.softmax(self.net(x[:, :, self.crop :, self.crop :]), dim=1)
        return torch.nn.functional.pad(y, self.pads)


def variant_torchscript(
    checkpoint: str | Path, crop: int, pad_before: int, pad_after: int, size: int, output: Path
) -> Path:
    """TorchScript of a checkpoint's bioimage.io variant graph, traced at ``size`` (ilastik
    runs TorchScript weights, not ONNX)."""
    ck = ckpt_mod.load(checkpoint)
    net = _Variant(ck.build_model().eval(), crop, pad_before, pad_after).eval()
    with torch.no_grad():
        traced = torch.jit.trace(net, torch.zeros(1, ck.config.in_channels, size, size))
    with atomic_path(output) as tmp:
        torch.jit.save(traced, str(tmp))
    return output


def _from_training(config: dict[str, Any]) -> dict[str, Any]:
    """What the training config says about the model: its object classes, the pixel
    size it was trained at (µm; None: unknown) and how its objects are made (split, min
    size, a three-class border class), as ModelInfo fields."""
    um = config.get("pixel_size")
    return {
        "objects": tuple(config.get("objects", ())),
        "pixel_size": None if um is None else metadata.PixelSize(float(um), float(um)),
        "labelling": stated_labelling(config),
    }


def stamp_domain(path: str | Path, images: Sequence[Any]) -> None:
    """Record the statistics of ``images`` (raw training images: frames or stacks), as the
    exported model at ``path`` sees them, in its metadata (key ``domain``; the file is
    replaced atomically, nothing else changes), so that the runtime warns on images unlike
    them (:mod:`unet_edge.domain`)."""
    from .. import domain
    from ..runtime import Segmenter

    path = Path(path)
    with Segmenter(path) as seg:  # the written graph: what the runtime will run
        what = seg.info.provenance.get("training_data") or f"{len(images)} training images"
        stats = domain.measure(seg, images, source=f"{what}, through this model")
    _edit_metadata(path, lambda d: d.update(domain=stats.to_dict()))


def stamp_labelling(path: str | Path, rule: Mapping[str, str]) -> None:
    """State how the exported model's mask is best made into objects (metadata
    ``output.labelling``: ``split`` "watershed"/"none", ``min_size`` such as "10px",
    ``border`` a class name), which ``label()`` and ``run --labels`` then follow unless told
    otherwise. The keys of ``rule`` replace the same keys of the rule the model states (from
    its training config); the others are kept. The file is replaced atomically, nothing else
    changes. Raises ModelError for a rule the metadata refuses."""
    _edit_metadata(Path(path), lambda d: d["output"].setdefault("labelling", {}).update(rule))


def _edit_metadata(path: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Apply ``change`` to the decoded metadata of the ONNX file at ``path``, check that the
    result is still valid, and replace the file atomically."""
    import json

    proto = onnx.load(str(path))
    entry = next(p for p in proto.metadata_props if p.key == metadata.KEY)
    decoded = json.loads(entry.value)
    change(decoded)
    entry.value = json.dumps(decoded)
    metadata.from_props({metadata.KEY: entry.value}, str(path))  # still valid, or ModelError
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
