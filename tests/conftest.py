"""Shared fixtures: tiny exported models (random weights) and the real ISBI data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ISBI = REPO.parent / "shared" / "data" / "isbi2012"


@pytest.fixture(scope="session")
def isbi() -> Path:
    if not (ISBI / "train" / "image" / "00.png").is_file():
        pytest.skip(f"ISBI 2012 data not found at {ISBI}")
    return ISBI


@pytest.fixture(scope="session")
def isbi_image(isbi: Path) -> np.ndarray:
    from unet_edge.io import read_image

    return read_image(isbi / "train" / "image" / "20.png")


def _export(tmp: Path, name: str, **arch: object) -> Path:
    torch = pytest.importorskip("torch")
    from unet_edge.config import Normalization, UNetConfig
    from unet_edge.training import checkpoint
    from unet_edge.training.export import export_checkpoint
    from unet_edge.training.model import UNet

    torch.manual_seed(0)
    cfg = UNetConfig(**arch)  # type: ignore[arg-type]
    model = UNet(cfg)
    classes = tuple(f"class{i}" for i in range(cfg.classes))
    norm = Normalization(mean=0.5, std=0.25)
    ck = checkpoint.from_model(model, norm, classes, name=name)
    ck_path = checkpoint.save(ck, tmp / f"{name}.pt")
    out = tmp / f"{name}.onnx"
    export_checkpoint(ck_path, out)
    return out


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_onnx(models_dir: Path) -> Path:
    """Depth-4 valid U-Net (the paper's geometry: halo 92, legal 188 + 16k), width 2."""
    return _export(models_dir, "tiny", base_width=2)


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_onnx: Path) -> Path:
    return tiny_onnx.with_suffix(".pt")


@pytest.fixture(scope="session")
def same_onnx(models_dir: Path) -> Path:
    """Depth-3 same-padding U-Net with batch norm."""
    return _export(models_dir, "same", base_width=2, depth=3, padding="same", batch_norm=True)


@pytest.fixture(scope="session")
def rgb_onnx(models_dir: Path) -> Path:
    """3-channel, 3-class, depth-2 valid U-Net."""
    return _export(models_dir, "rgb", in_channels=3, classes=3, depth=2, base_width=2)
