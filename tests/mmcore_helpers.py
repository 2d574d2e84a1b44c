"""A real pymmcore-plus core (UniMMCore) with a Python camera serving 12-bit ISBI crops.

Used by tests/contracts/test_mmcore_mda.py and tests/unit/test_paths_acquisition.py;
the importing test module skips first when pymmcore-plus is missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def isbi_frames12(isbi: Path, n: int, size: tuple[int, int] = (256, 256)) -> list[np.ndarray]:
    """``n`` ISBI crops as a 12-bit camera gives them: uint16, 0..4095, low-bit noise."""
    from unet_edge import io

    rng = np.random.default_rng(0)
    h, w = size
    out = []
    for i in range(n):
        img8 = io.read_image(isbi / "train" / "image" / f"{i % 25:02d}.png")[:h, :w]
        noise = rng.integers(0, 16, img8.shape, dtype=np.uint16)
        out.append(img8.astype(np.uint16) * 16 + noise)
    return out


def camera_core(frames: Sequence[np.ndarray], exposure_ms: float = 2.0) -> Any:
    """A ``UniMMCore`` whose camera serves ``frames`` in turn, each after ``exposure_ms``.

    ``core.camera`` is the camera; ``core.camera.served`` counts the frames it gave.
    """
    from pymmcore_plus.experimental.unicore import SimpleCameraDevice, UniMMCore

    # "no Micro-Manager installation found": harmless, the devices here are Python ones
    logging.getLogger("pymmcore-plus").setLevel(logging.CRITICAL)

    class IsbiCamera(SimpleCameraDevice):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self._exposure = exposure_ms
            self.served = 0

        def get_exposure(self) -> float:
            return self._exposure

        def set_exposure(self, exposure: float) -> None:
            self._exposure = exposure

        def sensor_shape(self) -> tuple[int, int]:
            return frames[0].shape[:2]  # type: ignore[return-value]

        def dtype(self) -> Any:
            return np.uint16

        def snap(self, buffer: np.ndarray) -> Mapping[str, Any]:
            time.sleep(self._exposure / 1000)
            buffer[:] = frames[self.served % len(frames)]
            self.served += 1
            return {}

    core = UniMMCore()
    camera = IsbiCamera()
    core.loadPyDevice("Camera", camera)
    core.initializeDevice("Camera")
    core.setCameraDevice("Camera")
    core.setAutoShutter(False)  # no shutter device here
    core.camera = camera
    return core
