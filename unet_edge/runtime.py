"""The Segmenter: one long-lived object that turns frames into probabilities and masks.

It owns the ONNX Runtime session and is the only place that runs the graph.
The model's metadata (see :mod:`unet_edge.metadata`) decides channels,
normalisation, halo, alignment and legal tiles; :mod:`unet_edge.tiling`
does the overlap-tile arithmetic.

Threading contract: a Segmenter may be shared by any number of threads.
``predict``/``segment``/``stream`` hold no per-call state on the object
(ONNX Runtime's ``InferenceSession.run`` is thread-safe, OpenVINO gives each
concurrent call its own infer request, and every call uses its own buffers),
so concurrent calls give the same results as serial ones.
``close`` is safe at any time, from any thread, and more than once: a graph
run already in progress finishes (it holds its own reference to the
session), and every later call raises :class:`~unet_edge.UnetEdgeError`
("closed"), including the remaining tiles of a frame being processed, so a
frame is either complete or an error, never partial. For orderly shutdown,
close after the threads are done (or use the Segmenter as a context manager
around them). ``stream`` runs its own pipeline threads; see
:mod:`unet_edge.streaming`.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import cost, metadata, processing, providers, tiling
from .config import look_up
from .errors import InputError, ModelError, UnetEdgeError
from .metadata import ModelInfo
from .tiling import DEFAULT_MAX_TILE

if TYPE_CHECKING:
    from .streaming import FrameResult

#: Activation memory one inference call may use when the tile is chosen (see unet_edge.cost).
DEFAULT_MEMORY_BUDGET = 1 << 30


@dataclass(frozen=True)
class Prediction:
    """What :meth:`Segmenter.analyze` found for a frame or a stack."""

    probabilities: np.ndarray  # (K, H, W) or (Z, K, H, W) float32
    stats: tuple[dict[str, Any], ...]  # the normalisation used, per frame (for provenance)

    @property
    def mask(self) -> np.ndarray:
        """Class indices, uint8: (H, W) or (Z, H, W)."""
        return processing.to_mask(self.probabilities)


def default_model_path() -> Path:
    """The ISBI 2012 model shipped inside the package."""
    path = Path(str(resources.files("unet_edge") / "data" / "default.onnx"))
    if not path.is_file():
        raise ModelError(
            f"no default model is installed at {path}; pass a model path "
            "(export one with `unet-edge export ckpt.pt`)"
        )
    return path


class Segmenter:
    """Overlap-tile U-Net inference with ONNX Runtime.

    Parameters
    ----------
    model:
        Path of an ONNX file written by ``unet-edge export`` (None: the shipped
        default model).
    provider:
        ``"cpu"``, ``"cuda"``, ``"tensorrt"``, ``"openvino"`` (OpenVINO on the
        CPU, extra ``[openvino]``) or ``"auto"`` (the first of tensorrt, cuda,
        openvino, cpu that works; :attr:`notes` says why). An explicit
        provider that cannot run raises :class:`~unet_edge.ProviderError`
        instead of silently running on the CPU.
    precision:
        Arithmetic for the graph's float parts: ``"fp32"`` (default) or
        ``"bf16"`` (``openvino`` on CPUs with AVX512-BF16 or AMX; about 2x
        faster, a few pixels may change class). Sets ``options.precision``.
    tile:
        Tile input size (int or (height, width)), legal for the model
        (``Geometry.legal_inputs``). None picks, per image size, the tile that
        computes the fewest pixels within ``max_tile`` whose estimated
        activation memory (:func:`unet_edge.cost.activation_bytes`, times the
        batch size) fits ``memory_budget`` bytes (None: no budget).
    batch_size:
        Tiles per inference call (None: 1 on the CPU, 4 on a GPU).
    input_range, bit_depth:
        The raw values the camera delivers, for models with a fixed-range
        normalisation: ``input_range=(0, 4095)`` or ``bit_depth=12`` for
        12-bit data in 16-bit frames; that range is mapped to the model's.
        Without it such a model refuses frames that use only a small part of
        their dtype's range (:class:`~unet_edge.InputError`) instead of
        returning a wrong mask. Percentile-normalised models (the shipped
        one) measure every image's range and do not need it (it is ignored).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        provider: str = "cpu",
        tile: int | tuple[int, int] | None = None,
        batch_size: int | None = None,
        *,
        options: providers.ProviderOptions | None = None,
        max_tile: int = DEFAULT_MAX_TILE,
        memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
        input_range: tuple[float, float] | None = None,
        bit_depth: int | None = None,
        precision: str | None = None,
    ) -> None:
        self.model_path = Path(model) if model is not None else default_model_path()
        if not self.model_path.is_file():
            raise ModelError(f"model file {self.model_path} does not exist")
        self.info: ModelInfo = metadata.read(self.model_path)
        self.geometry = self.info.geometry
        self.tile = None if tile is None else tiling._as_pair(tile)
        if self.tile is not None:
            for t in self.tile:
                self.geometry.check_tile(t)
        if max_tile < self.geometry.min_input:
            raise InputError(
                f"max_tile {max_tile} is below the smallest legal tile {self.geometry.min_input}"
            )
        self.max_tile = max_tile
        self.memory_budget = memory_budget
        self.input_range = camera_range(input_range, bit_depth)
        cpu = (providers.Provider.CPU, providers.Provider.OPENVINO)
        gpu = look_up(providers.Provider, provider, "provider") not in cpu
        if precision is not None:
            options = replace(options or providers.ProviderOptions(), precision=precision)
        self.batch_size = batch_size if batch_size is not None else (4 if gpu else 1)
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        shapes = []
        if self.tile is not None:
            shapes.append((self.batch_size, self.info.channels, *self.tile))
        self._session: providers.SessionInfo | None = providers.open_session(
            self.model_path, provider, options, input_shapes=shapes
        )
        self._plans: dict[tuple[int, int, int | None], tiling.TilePlan] = {}
        self._plans_lock = threading.Lock()

    # -- description -------------------------------------------------------
    @property
    def provider(self) -> str:
        """The execution provider that really runs the graph."""
        return self._live().provider.value

    @property
    def notes(self) -> tuple[str, ...]:
        """What provider selection decided and why (e.g. an ``auto`` fallback)."""
        return self._live().notes

    def provenance(self) -> dict[str, Any]:
        """What made a result: model, provider, precision, tiling, versions."""
        from . import __version__

        return {
            "software": f"unet-edge {__version__}",
            "model_name": self.info.name,
            "model_file": self.model_path.name,
            "model_sha256": model_hash(self.model_path),
            "provider": self.provider,
            "precision": self.info.precision.value,
            "compute_precision": self._live().options.precision,
            "tile": list(self.tile) if self.tile else "auto",
            "border": self.info.border.value,
            "classes": list(self.info.class_names),
            "model_normalization": self.info.normalization.to_dict(),
            "input_range": list(self.input_range) if self.input_range else None,
        }

    def __repr__(self) -> str:
        state = "closed" if self._session is None else self.provider
        return (
            f"Segmenter({str(self.model_path)!r}, provider={state!r}, "
            f"tile={self.tile or 'auto'}, batch_size={self.batch_size})"
        )

    # -- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        """Release the inference session. Further calls raise."""
        self._session = None

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _live(self) -> providers.SessionInfo:
        s = self._session
        if s is None:
            raise UnetEdgeError("this Segmenter is closed; create a new one")
        return s

    # -- the graph ---------------------------------------------------------
    def run_batch(self, batch: np.ndarray) -> np.ndarray:
        """Run the graph on a float32 (N, C, th, tw) batch of legal tiles -> (N, K, oh, ow)."""
        s = self._live()
        return providers.run_batch(
            s,
            self.info.input_name,
            self.info.output_name,
            np.ascontiguousarray(batch, dtype=np.float32),
        )

    def plan_for(self, shape: tuple[int, int], memory_budget: int | None = None) -> tiling.TilePlan:
        """The tile plan used for an image of ``shape`` = (height, width).

        ``memory_budget`` (bytes) lowers this Segmenter's budget for this plan
        (the windowed path keeps its tiles small); it never raises it.
        """
        budgets = [b for b in (self.memory_budget, memory_budget) if b is not None]
        budget = min(budgets) if budgets else None
        key = (int(shape[0]), int(shape[1]), budget)
        p = self._plans.get(key)
        if p is None:
            tile = self.tile or tiling.choose_tile(
                key[:2],
                self.geometry,
                self.max_tile,
                tile_bytes=functools.partial(
                    cost.activation_bytes, self.info.architecture, batch=self.batch_size
                ),
                memory_budget=budget,
            )
            p = tiling.plan(key[:2], self.geometry, tile)
            with self._plans_lock:
                if len(self._plans) > 64:
                    self._plans.clear()
                self._plans[key] = p
        return p

    def warmup(self, shape: tuple[int, int]) -> None:
        """Run the graph once at the tile shape used for ``shape`` images.

        ONNX Runtime's first run at a new input shape is several times slower
        than the next ones; warm up before latency matters.
        """
        p = self.plan_for(shape)
        n = min(self.batch_size, p.n_tiles)
        self.run_batch(np.zeros((n, self.info.channels, *p.tile_shape), np.float32))

    # -- frames ------------------------------------------------------------
    def scaling_for(self, image: Any) -> processing.Scaling:
        """How one image's raw values are scaled, from its statistics (once per image).

        ``image`` is an (H, W[, C]) frame, or any array-like with steps (a
        memory map, a Dask or zarr array): see :func:`unet_edge.processing.scaling_for`.
        """
        return processing.scaling_for(
            image, self.info.normalization, self.info.channels, self.input_range
        )

    def tile_run(
        self,
        plan: tiling.TilePlan,
        read: tiling.WindowReader,
        scaling: processing.Scaling,
        region: tiling.Region | None = None,
    ) -> tiling.TileRun:
        """The kernel for this model: ``region`` of the image behind ``read``, scaled so."""
        prepare = processing.normalizer(self.info.normalization, self.info.channels, scaling)
        return tiling.TileRun(plan, read, prepare, self.info.classes, self.batch_size, region)

    def frame_run(
        self, frame: np.ndarray, scaling: processing.Scaling | None = None
    ) -> tiling.TileRun:
        """The kernel for one in-memory (H, W) or (H, W, C) frame (None: its own scaling)."""
        processing.frame_to_chw(frame, self.info.channels)
        s = scaling if scaling is not None else self.scaling_for(frame)
        return self.tile_run(self.plan_for(frame.shape[:2]), tiling.array_reader(frame), s)

    def predict_frame(
        self, frame: np.ndarray, scaling: processing.Scaling | None = None
    ) -> np.ndarray:
        """Probabilities (K, H, W) float32 for one (H, W) or (H, W, C) frame."""
        return self.frame_run(frame, scaling).run(self.run_batch)

    def analyze(self, image: np.ndarray | Sequence[np.ndarray]) -> Prediction:
        """Probabilities, mask and the normalisation used, for a frame or a stack.

        Each frame of a stack is normalised on its own (like frames of a stream).
        """
        frames, stack = processing.as_frames(image, self.info.channels)
        scalings = [self.scaling_for(f) for f in frames]
        outs = [self.predict_frame(f, s) for f, s in zip(frames, scalings, strict=True)]
        probs = np.stack(outs) if stack else outs[0]
        return Prediction(probs, tuple(s.to_dict() for s in scalings))

    def predict(self, image: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities, float32.

        A frame (H, W) / (H, W, C) gives (K, H, W); a stack (Z, H, W) /
        (Z, H, W, C) or a list of equal-size frames gives (Z, K, H, W).
        """
        return self.analyze(image).probabilities

    def segment(self, image: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Label mask, uint8 class indices: (H, W) for a frame, (Z, H, W) for a stack."""
        return processing.to_mask(self.predict(image))

    def stream(
        self,
        frames: Iterable[Any],
        *,
        max_queue: int = 4,
        drop: str = "oldest",
        shape: tuple[int, ...] | None = None,
        dtype: Any = None,
        probabilities: bool = False,
        timestamps: bool = False,
    ) -> Iterator[FrameResult]:
        """Segment a (live) iterable of frames on a thread pipeline; one result per frame, in order.

        See :func:`unet_edge.streaming.stream` for the arguments, the drop
        policy and the per-frame latency, error and drop reporting.
        """
        from .streaming import stream

        return stream(
            self,
            frames,
            max_queue=max_queue,
            drop=drop,
            shape=shape,
            dtype=dtype,
            probabilities=probabilities,
            timestamps=timestamps,
        )


def camera_range(
    input_range: tuple[float, float] | None, bit_depth: int | None
) -> tuple[float, float] | None:
    """The raw value range from ``input_range`` or ``bit_depth`` (at most one of them)."""
    if input_range is not None and bit_depth is not None:
        raise InputError(
            f"give input_range or bit_depth, not both (got {input_range!r} and {bit_depth!r})"
        )
    if bit_depth is not None:
        if (
            isinstance(bit_depth, bool)
            or not isinstance(bit_depth, int)
            or not 1 <= bit_depth <= 32
        ):
            raise InputError(f"bit_depth must be an integer in 1..32, got {bit_depth!r}")
        return 0.0, float(2**bit_depth - 1)
    if input_range is None:
        return None
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise InputError(f"input_range must be (low, high) numbers, got {input_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise InputError(f"input_range needs finite low < high, got {input_range!r}")
    return lo, hi


def model_hash(path: Path, _cache: dict[tuple[str, float], str] = {}) -> str:  # noqa: B006
    """SHA-256 of a model file (cached by path and modification time)."""
    import hashlib

    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _cache[key] = h.hexdigest()
    return _cache[key]
