"""unet_edge.models.probe_run: the probe's session, its time budget, its test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge.errors import ProbeError
from unet_edge.models.probe_run import Graph, Runner, close, difference, natural, noise


def test_runner_runs_and_remembers_sizes(tiny_onnx: Path) -> None:
    run = Runner(Graph(tiny_onnx, "tiny.onnx"), 1, None, "tiny.onnx", 60)
    assert run.out_size(188) == 4 and run.out_size(100) is None  # too small for a valid net
    assert run.out_size(188) == 4 and run.runs == 2 and run.pixels == 188**2 + 100**2
    y = run.predict(np.stack([noise((1, 204, 204)), noise((1, 204, 204), seed=1)]))
    assert y.shape == (2, 2, 20, 20)


def test_runner_refuses_a_run_past_its_budget(tiny_onnx: Path) -> None:
    run = Runner(Graph(tiny_onnx, "tiny.onnx"), 1, None, "tiny.onnx", 1e-9)
    run(noise((1, 188, 188)))  # the first run sets the rate
    with pytest.raises(ProbeError, match=r"tiny.onnx: probing it would take more than 0 s") as e:
        run(noise((1, 1028, 1028)))
    assert "1 runs took" in str(e.value) and "1.06 megapixels" in str(e.value)


def test_natural_images_vary_locally() -> None:
    img = natural(2, 256, 320, seed=3)
    assert img.shape == (2, 256, 320) and img.dtype == np.float32
    assert np.array_equal(img, natural(2, 256, 320, seed=3))
    left, right = img[:, :, :64].mean(), img[:, :, -64:].mean()
    top, bottom = img[:, :64, 100:160].std(), img[:, -64:, 100:160].std()
    assert right - left > 2 and bottom > 3 * top  # illumination and contrast change across
    assert img.min() <= -3 and img.max() >= 4  # a dark and a bright object


def test_close_is_relative_to_the_magnitude() -> None:
    a = np.full((2, 3, 3), 1000.0, np.float32)
    assert close(a, a + 1e-5) and not close(a, a + 1.0)
    assert difference(a, a + 1.0) == pytest.approx(1 / 1001.0, rel=1e-3)
    assert not close(a[:, :0], a[:, :0])  # nothing compared: not a pass
