"""Shared fixtures: tiny random-weight ONNX models (built without torch) and the ISBI data."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# UNET_EDGE_ISBI: the data elsewhere than beside the clone (e.g. a git worktree).
ISBI = Path(os.environ.get("UNET_EDGE_ISBI") or REPO.parent / "shared" / "data" / "isbi2012")


@pytest.fixture(scope="session")
def isbi() -> Path:
    if not (ISBI / "train" / "image" / "00.png").is_file():
        pytest.skip(f"ISBI 2012 data not found at {ISBI}")
    return ISBI


@pytest.fixture(scope="session")
def isbi_image(isbi: Path) -> np.ndarray:
    from unet_edge.io import read_image

    return read_image(isbi / "train" / "image" / "20.png")


def _model(folder: Path, name: str, **arch: object) -> Path:
    """A random-weight U-Net built with onnx.helper (tests/onnx_models.py): no torch needed."""
    import onnx_models  # tests/ is on sys.path (pytest's default import mode)

    from unet_edge.config import UNetConfig

    config = UNetConfig(**arch)  # type: ignore[arg-type]
    return onnx_models.save(folder / f"{name}.onnx", config, name=name)


def _checkpoint(onnx_path: Path) -> Path:
    """A torch checkpoint holding exactly the weights of a model from :func:`_model`."""
    torch = pytest.importorskip("torch")
    import onnx
    import onnx_models

    from unet_edge import metadata
    from unet_edge.training import checkpoint
    from unet_edge.training.model import UNet

    info = metadata.read(onnx_path)
    net = UNet(info.architecture)
    weights = onnx_models.weights_of(onnx.load(str(onnx_path)))
    missing, unexpected = net.load_state_dict(
        {k: torch.from_numpy(v) for k, v in weights.items()}, strict=False
    )
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    ck = checkpoint.from_model(net, info.normalization, info.class_names, name=info.name)
    return checkpoint.save(ck, onnx_path.with_suffix(".pt"))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_onnx(models_dir: Path) -> Path:
    """Depth-4 valid U-Net (the paper's geometry: halo 92, legal 188 + 16k), width 2."""
    return _model(models_dir, "tiny", base_width=2)


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_onnx: Path) -> Path:
    """The torch checkpoint of ``tiny_onnx`` (same weights); skips without torch."""
    return _checkpoint(tiny_onnx)


@pytest.fixture(scope="session")
def same_onnx(models_dir: Path) -> Path:
    """Depth-3 same-padding U-Net with batch norm."""
    return _model(models_dir, "same", base_width=2, depth=3, padding="same", batch_norm=True)


@pytest.fixture(scope="session")
def rgb_onnx(models_dir: Path) -> Path:
    """3-channel, 3-class, depth-2 valid U-Net."""
    return _model(models_dir, "rgb", in_channels=3, classes=3, depth=2, base_width=2)


@pytest.fixture(scope="session")
def imports_none_of() -> Callable[..., None]:
    """``check(code, *modules)``: run ``code`` in a fresh interpreter, fail if it imported any
    of ``modules`` (e.g. torch in the runtime)."""

    def check(code: str, *modules: str) -> None:
        script = (
            f"{code}\nimport sys\n"
            f"heavy = [m for m in {modules!r} if m in sys.modules]\nassert not heavy, heavy"
        )
        subprocess.run([sys.executable, "-c", script], check=True)

    return check


@pytest.fixture(scope="session")
def threads_match_serial() -> Callable[..., None]:
    """``check(seg, frames)``: ``seg.predict`` on every frame, each from its own thread and all
    released at once, must equal serial calls exactly (the threading contract)."""

    def check(seg: Any, frames: list[np.ndarray]) -> None:
        serial = [seg.predict(f) for f in frames]
        got: list[np.ndarray | None] = [None] * len(frames)
        barrier = threading.Barrier(len(frames))

        def work(i: int) -> None:
            barrier.wait()
            got[i] = seg.predict(frames[i])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(frames))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for a, b in zip(serial, got, strict=True):
            assert b is not None and np.array_equal(a, b)

    return check
