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
:mod:`unet_edge.paths.stream`.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import analysis, domain, kernel, processing, tiling
from .config import Normalization, look_up
from .engines import select, session
from .engines.options import Provider, ProviderOptions, check_int
from .errors import InputError, ModelError, UnetEdgeError
from .metadata import ModelInfo
from .models.check import Int8Warning, check_graph, int8_note
from .models.open import open_model
from .models.shipped import resolve_model
from .models.source import model_hash
from .prediction import Prediction
from .tiling import DEFAULT_MAX_TILE

if TYPE_CHECKING:
    from typing import TypeAlias

    from .io.axes import Arranged
    from .paths.stream import FrameResult

    #: What analyze, predict, segment and label take: a frame, a stack, a list of frames, or
    #: frames arranged from a file's or an array's axes (:class:`unet_edge.io.axes.Arranged`).
    Image: TypeAlias = np.ndarray | Sequence[np.ndarray] | Arranged

#: Activation memory one inference call may use when the tile is chosen (see unet_edge.cost).
DEFAULT_MEMORY_BUDGET = 1 << 30


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

    Args:
        model:
            A shipped model's name (None: ``"isbi2012"``; ``"nuclei"``), an ONNX file
            from ``unet-edge export``, a bioimage.io model package (``.zip`` or its
            ``rdf.yaml``), or any other ONNX U-Net, which is probed once for its
            geometry (:mod:`unet_edge.models.probe`; give ``normalization``).
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
        tta:
            Test-time augmentation (the paper's): average the class probabilities
            over the 8 flips and rotations of every tile (8 times the compute).
            Every path (predict, segment, stream, files, the windowed and Dask
            paths) uses it, and tiled results still equal whole-image ones.
        normalization:
            How raw pixel values were scaled in training: required for an ONNX
            graph without unet-edge metadata, and replaces the model's own otherwise.
        channel:
            The channel (or colour: 0 red, 1 green, 2 blue) a 1-channel model segments of
            arrays with channels last, (H, W, C) or (Z, H, W, C), as ``segment_file`` and
            ``run --channel`` pick one of a file; a call's own ``channel=`` replaces it
            (analyze, predict, segment, label; streams use this one; files, the windowed,
            Dask and cluster paths take it when given none).
            None: arrays must have the model's channels (:func:`.analysis.pick_channel`).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        provider: str = "cpu",
        tile: int | tuple[int, int] | None = None,
        batch_size: int | None = None,
        *,
        options: ProviderOptions | None = None,
        max_tile: int = DEFAULT_MAX_TILE,
        memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
        input_range: tuple[float, float] | None = None,
        bit_depth: int | None = None,
        tta: bool = False,
        normalization: Normalization | None = None,
        precision: str | None = None,
        channel: int | None = None,
    ) -> None:
        if model is not None and not isinstance(model, (str, os.PathLike)):
            raise ModelError(f"model must be a file path or None, got {type(model).__name__}")
        self.model_path = resolve_model(model)  # a path, or a shipped name ("nuclei")
        self.source = open_model(self.model_path, normalization)
        self.info: ModelInfo = self.source.info
        self.channel = analysis.check_channel(channel, self.info.channels)
        self.geometry = self.source.geometry
        self.tile = analysis.check_tiling(self.geometry, tile, max_tile, memory_budget)
        self.max_tile = max_tile
        self.memory_budget = memory_budget
        self.input_range = processing.camera_range(input_range, bit_depth)
        cpu = (Provider.CPU, Provider.OPENVINO)
        gpu = look_up(Provider, provider, "provider") not in cpu
        if precision is not None:
            options = replace(options or ProviderOptions(), precision=precision)
        self.batch_size = batch_size if batch_size is not None else (4 if gpu else 1)
        if batch_size is None and self.source.batch is not None:
            self.batch_size = self.source.batch
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(tta, bool):
            raise InputError(f"tta must be True or False, got {tta!r}")
        self.tta = tta
        if self.source.batch not in (None, self.batch_size):
            raise InputError(
                f"the graph runs only batches of {self.source.batch}, got batch_size "
                f"{self.batch_size}; use {self.source.batch}"
            )
        shapes = [(self.batch_size, self.info.channels, *t) for t in self._tile_shapes(self.tile)]
        self._session: session.SessionInfo | None = select.open_session(
            self.source.onnx, provider, options, input_shapes=shapes
        )
        self._plans: dict[tuple[int, int, int | None], tiling.TilePlan] = {}
        self._plans_lock = threading.Lock()
        check_graph(self)
        self._warn_int8()

    def _warn_int8(self) -> None:
        """Add :func:`int8_note` to the notes, and warn, when this CPU may change the masks."""
        note = int8_note(self.info, self.provider)
        if note is not None:
            s = self._live()
            self._session = replace(s, notes=(*s.notes, note))
            warnings.warn(f"{self.model_path}: {note}", Int8Warning, stacklevel=3)

    # -- description -------------------------------------------------------
    @functools.cached_property
    def guard(self) -> domain.Guard | None:
        """Scores frames against the model's training statistics (None: it has none)."""
        return domain.Guard.of(self.info)

    @property
    def provider(self) -> str:
        """The execution provider that really runs the graph."""
        return self._live().provider.value

    @property
    def notes(self) -> tuple[str, ...]:
        """What provider selection decided and why (e.g. an ``auto`` fallback)."""
        return self._live().notes

    @property
    def compute_precision(self) -> str:
        """The arithmetic the graph's float parts run in (``"fp32"``, or ``"bf16"`` on OpenVINO)."""
        return self._live().options.precision

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
            "compute_precision": self.compute_precision,
            "tile": list(self.tile) if self.tile else "auto",
            "border": self.info.border.value,
            "classes": list(self.info.class_names),
            "model_normalization": self.info.normalization.to_dict(),
            "input_range": list(self.input_range) if self.input_range else None,
            "tta": self.tta,
        }

    def result_provenance(
        self, plan: tiling.TilePlan, normalization: Iterable[dict[str, Any]], **extra: Any
    ) -> dict[str, Any]:
        """:meth:`provenance` of one result: with its tile plan, the normalisation statistics
        of each frame and ``extra`` (e.g. the source file's name), as every writer saves it."""
        return {
            **self.provenance(),
            **extra,
            "tile_plan": repr(plan),
            "normalization": list(normalization),
        }

    def __repr__(self) -> str:
        state = "closed" if self._session is None else self.provider
        return (
            f"Segmenter({str(self.model_path)!r}, provider={state!r}, "
            f"tile={self.tile or 'auto'}, batch_size={self.batch_size}"
            f"{', tta=True' if self.tta else ''})"
        )

    # -- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        """Release the inference session. Further calls raise."""
        self._session = None

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _live(self) -> session.SessionInfo:
        s = self._session
        if s is None:
            raise UnetEdgeError("this Segmenter is closed; create a new one")
        return s

    # -- the graph ---------------------------------------------------------
    def run_batch(self, batch: np.ndarray) -> np.ndarray:
        """Run the graph on a float32 (N, C, th, tw) batch of legal tiles -> (N, K, oh, ow)."""
        s = self._live()
        out = session.run_batch(
            s, self.info.input_name, self.info.output_name, self._check_batch(batch)
        )
        post = self.source.postprocess
        return out if post is None else post(out)

    def _check_batch(self, batch: Any) -> np.ndarray:
        """A float32 C-contiguous (N>=1, C, th, tw) batch of legal tiles, or InputError."""
        shape = getattr(batch, "shape", None)
        ok = isinstance(batch, np.ndarray) and batch.dtype.kind in "fiu" and len(shape or ()) == 4
        if not ok or not batch.shape[0] or batch.shape[1] != self.info.channels:
            raise InputError(
                f"a batch is a float32 numpy array (N, {self.info.channels}, tile height, tile "
                f"width) with N >= 1, got {type(batch).__name__} of shape {shape}"
            )
        bad = [n for n in batch.shape[2:] if not self.geometry.is_legal(int(n))]
        if bad:
            raise InputError(
                f"batch tile size {bad[0]} is not legal for this model "
                f"(legal: {self.geometry.legal_text})"
            )
        return np.ascontiguousarray(batch, dtype=np.float32)

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """The kernel's predictor: :meth:`run_batch`, or with ``tta`` its average over the 8
        flips and rotations of each tile (:func:`unet_edge.tiling.dihedral_average`)."""
        if self.tta:
            return tiling.dihedral_average(self.run_batch)(batch)
        return self.run_batch(batch)

    def _tile_shapes(self, tile: tuple[int, int] | None) -> list[tuple[int, int]]:
        """The (h, w) shapes the graph sees for ``tile``: turned too with ``tta``."""
        if tile is None:
            return []
        return [tile] if not self.tta or tile[0] == tile[1] else [tile, (tile[1], tile[0])]

    def plan_for(self, shape: tuple[int, int], memory_budget: int | None = None) -> tiling.TilePlan:
        """The tile plan used for an image of ``shape`` = (height, width).

        ``memory_budget`` (bytes) lowers this Segmenter's budget for this plan
        (the windowed path keeps its tiles small); it never raises it.
        """
        check_int("memory_budget", memory_budget, 1, optional=True)
        budgets = [b for b in (self.memory_budget, memory_budget) if b is not None]
        budget = min(budgets) if budgets else None
        key = (*tiling.image_size(shape), budget)
        p = self._plans.get(key)
        if p is None:
            p = analysis.new_plan(self, key[:2], budget)
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
        for t in self._tile_shapes(p.tile_shape):
            self.run_batch(np.zeros((n, self.info.channels, *t), np.float32))

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
        return kernel.build(
            self.info, plan, read, scaling, batch_size=self.batch_size, region=region
        )

    def prepare_frames(
        self, image: Any
    ) -> tuple[list[tuple[np.ndarray, processing.Scaling]], bool]:
        """Frames of ``image`` (a frame, a stack, a list) with their scalings, and whether it
        was a stack (:func:`unet_edge.kernel.prepare_frames` with this camera's range)."""
        return kernel.prepare_frames(image, self.info, self.input_range)

    def frame_run(
        self, frame: np.ndarray, scaling: processing.Scaling | None = None
    ) -> tiling.TileRun:
        """The kernel for one in-memory (H, W) or (H, W, C) frame (None: its own scaling)."""
        processing.frame_to_chw(frame, self.info.channels)  # refuse a wrong shape before work
        s = scaling if scaling is not None else self.scaling_for(frame)
        return self._frame_kernel(frame, s)

    def _frame_kernel(self, frame: np.ndarray, scaling: processing.Scaling) -> tiling.TileRun:
        plan = self.plan_for(frame.shape[:2])
        return kernel.for_frame(self.info, frame, plan, scaling, batch_size=self.batch_size)

    def predict_frame(
        self, frame: np.ndarray, scaling: processing.Scaling | None = None
    ) -> np.ndarray:
        """Probabilities (K, H, W) float32 for one (H, W) or (H, W, C) frame."""
        return self.frame_run(frame, scaling).run(self.predict_batch)

    def analyze(
        self, image: Image, pixel_size: Any = None, channel: int | None = None
    ) -> Prediction:
        """Probabilities, mask and the normalisation used, for a frame or a stack.

        Each frame of a stack is normalised on its own (like frames of a stream).
        ``pixel_size``: the image's (µm, a Calibration): segmented at the model's (:mod:`.scale`).
        ``channel``: the one a 1-channel model segments (None: the Segmenter's ``channel``).
        """
        steps = self.analyze_steps(image, pixel_size, channel)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return cast(Prediction, done.value)

    def analyze_steps(
        self, image: Image, pixel_size: Any = None, channel: int | None = None
    ) -> Generator[tuple[int, int], None, Prediction]:
        """:meth:`analyze` one batch of tiles at a time, for callers that show progress or stop.

        Yields ``(tiles done, tiles in all)``, first ``(0, total)``, then after
        every batch; returns the :class:`Prediction` (``StopIteration.value``),
        equal to :meth:`analyze`'s bit for bit (it is how :meth:`analyze` runs).
        """
        picked = analysis.check_channel(channel, self.info.channels)  # before any work
        return analysis.analyze_steps(self, image, pixel_size, picked)

    def pick_channel(self, image: Image, channel: int | None = None) -> Any:
        """``image`` as :meth:`analyze` segments it: only ``channel`` (None: this Segmenter's
        ``channel``) of its last axis, a view (:func:`.analysis.pick_channel`); unchanged
        when no channel is picked."""
        picked = analysis.check_channel(channel, self.info.channels)
        return analysis.pick_channel(image, picked, self.info.channels, self.channel)

    def predict(
        self, image: Image, pixel_size: Any = None, channel: int | None = None
    ) -> np.ndarray:
        """Class probabilities, float32, on the image's grid (``pixel_size``, ``channel``:
        :meth:`analyze`).

        A frame (H, W) / (H, W, C) gives (K, H, W); a stack (Z, H, W) /
        (Z, H, W, C) or a list of equal-size frames gives (Z, K, H, W); pixels uint8,
        uint16 or float32; K = ``len(info.class_names)``. With a channel picked, C is the
        image's channels, one of which is segmented. Raises InputError (shape, dtype,
        NaN, range, channel) or MemoryLimitError (too large for memory), before computing.
        """
        return self.analyze(image, pixel_size, channel).probabilities

    def segment(
        self, image: Image, pixel_size: Any = None, channel: int | None = None
    ) -> np.ndarray:
        """Label mask, uint8 class indices: (H, W) for a frame, (Z, H, W) for a stack.

        Index i is ``info.class_names[i]`` (shipped: 0 membrane, 1 cell); raises as predict."""
        return processing.to_mask(self.predict(image, pixel_size, channel))

    def label(
        self,
        image: Image,
        *,
        min_size: int | str | None = None,
        split: str | None = None,
        calibration: Any = None,
        pixel_size: Any = None,
        channel: int | None = None,
    ) -> np.ndarray:
        """Instance labels, uint32 (H, W) or (Z, H, W), 1..N in raster order (0 background):
        by ``min_size`` (px, "2um2") and ``split``; None: the model's ``info.labelling``."""
        from .objects.outputs import Labelling, label_classes

        how = Labelling.make(min_size, split).for_model(self.info.labelling)
        kw = {"min_size": how.min_size or 0, "split": how.split, "calibration": calibration}
        kw["border_classes"] = self.info.border_classes  # a three-class model's bands go back
        mask = self.segment(image, pixel_size, channel)
        return label_classes(mask, self.info.object_classes, **kw)

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
        pixel_size: Any = None,
    ) -> Iterator[FrameResult]:
        """Segment a (live) iterable of frames on a thread pipeline; one result per frame, in order.

        See :func:`unet_edge.paths.stream.stream` for the arguments (``pixel_size`` too), the
        drop policy and the per-frame latency, error and drop reporting.
        """
        from .paths.stream import stream

        return stream(
            self,
            frames,
            max_queue=max_queue,
            drop=drop,
            shape=shape,
            dtype=dtype,
            probabilities=probabilities,
            timestamps=timestamps,
            pixel_size=pixel_size,
        )
