"""The Segmenter: one long-lived object that turns frames into probabilities and masks.

It owns the ONNX Runtime session and is the only place that runs the graph.
The model's metadata (see :mod:`unet_edge.metadata`) decides channels,
normalisation, halo, alignment and legal tiles; :mod:`unet_edge.tiling`
does the overlap-tile arithmetic.

Threading contract: a Segmenter may be shared by any number of threads.
``predict``/``segment``/``stream`` hold no per-call state on the object
(ONNX Runtime's ``InferenceSession.run`` is thread-safe, and every call uses
its own buffers), so concurrent calls give the same results as serial ones.
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
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import cost, metadata, processing, providers, tiling
from .config import look_up
from .errors import InputError, ModelError, UnetEdgeError
from .metadata import ModelInfo

if TYPE_CHECKING:
    from .streaming import FrameResult

# Large tiles waste less work on halos (ISBI model, 4096x4096: 1.31x the output area with
# 1564 tiles vs 1.55x with 1020) and ran ~15% faster in the tile sweep; the memory budget,
# not this cap, is what keeps them affordable.
DEFAULT_MAX_TILE = 2048
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

    Parameters
    ----------
    model:
        Path of an ONNX file written by ``unet-edge export`` (None: the shipped
        default model).
    provider:
        ``"cpu"``, ``"cuda"``, ``"tensorrt"`` or ``"auto"``. An explicit GPU
        provider that cannot run raises :class:`~unet_edge.ProviderError`
        instead of silently running on the CPU.
    tile:
        Tile input size (int or (height, width)), legal for the model
        (``Geometry.legal_inputs``). None picks, per image size, the tile that
        computes the fewest pixels within ``max_tile`` whose estimated
        activation memory (:func:`unet_edge.cost.activation_bytes`, times the
        batch size) fits ``memory_budget`` bytes (None: no budget).
    batch_size:
        Tiles per inference call (None: 1 on the CPU, 4 on a GPU).
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
        gpu = look_up(providers.Provider, provider, "provider") is not providers.Provider.CPU
        self.batch_size = batch_size if batch_size is not None else (4 if gpu else 1)
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        shapes = []
        if self.tile is not None:
            shapes.append((self.batch_size, self.info.channels, *self.tile))
        self._session: providers.SessionInfo | None = providers.open_session(
            self.model_path, provider, options, input_shapes=shapes
        )
        self._plans: dict[tuple[int, int], tiling.TilePlan] = {}
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
            "tile": list(self.tile) if self.tile else "auto",
            "border": self.info.border.value,
            "classes": list(self.info.class_names),
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

    def plan_for(self, shape: tuple[int, int]) -> tiling.TilePlan:
        """The tile plan used for an image of ``shape`` = (height, width)."""
        key = (int(shape[0]), int(shape[1]))
        p = self._plans.get(key)
        if p is None:
            tile = self.tile or tiling.choose_tile(
                key,
                self.geometry,
                self.max_tile,
                tile_bytes=functools.partial(
                    cost.activation_bytes, self.info.architecture, batch=self.batch_size
                ),
                memory_budget=self.memory_budget,
            )
            p = tiling.plan(key, self.geometry, tile)
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
    def _as_frames(self, image: np.ndarray | Sequence[np.ndarray]) -> tuple[list[np.ndarray], bool]:
        """Split input into frames; returns (frames, is_stack)."""
        c = self.info.channels
        if isinstance(image, (list, tuple)):
            frames = list(image)
            shapes = {getattr(f, "shape", None) for f in frames}
            if len(shapes) > 1:
                raise InputError(
                    f"stack frames have different shapes {sorted(map(str, shapes))}; segment "
                    "them one by one or crop them to one size"
                )
            return frames, True
        if not isinstance(image, np.ndarray):
            raise InputError(f"expected a numpy array, got {type(image).__name__}")
        if image.ndim == 2:
            return [image], False
        if image.ndim == 3:
            if image.shape[2] == c:  # (H, W, C); for 1-channel models (H, W, 1)
                return [image], False
            if c == 1 and image.shape[2] in (3, 4) and min(image.shape[:2]) > 4:
                # Almost surely a colour picture, not a stack of 3-pixel-wide frames.
                raise InputError(
                    f"got an array of shape {image.shape}, read as an (H, W, {image.shape[2]}) "
                    "colour image, but the model takes 1 channel; convert it to grayscale "
                    "(a stack of frames that narrow can be passed as a list)"
                )
            if c == 1:
                return list(image), True  # (Z, H, W)
            raise InputError(
                f"got an array of shape {image.shape}: not (H, W, {c}) for this {c}-channel "
                f"model, and a (Z, H, W) stack needs a 1-channel model; pass (Z, H, W, {c})"
            )
        if image.ndim == 4:
            return list(image), True
        raise InputError(
            f"expected (H, W), (H, W, C), (Z, H, W) or (Z, H, W, C), got shape {image.shape}"
        )

    def predict_frame(self, frame: np.ndarray) -> np.ndarray:
        """Probabilities (K, H, W) float32 for one (H, W) or (H, W, C) frame."""
        x = processing.normalize(frame, self.info.normalization, self.info.channels)
        p = self.plan_for(x.shape[1:])
        return tiling.run_tiled(x, p, self.run_batch, self.info.classes, self.batch_size)

    def predict(self, image: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities, float32.

        A frame (H, W) / (H, W, C) gives (K, H, W); a stack (Z, H, W) /
        (Z, H, W, C) or a list of equal-size frames gives (Z, K, H, W).
        """
        frames, stack = self._as_frames(image)
        outs = [self.predict_frame(f) for f in frames]
        return np.stack(outs) if stack else outs[0]

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
