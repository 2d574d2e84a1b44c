"""Segmenter: tiled inference equals whole-image inference, frames/stacks/dtypes, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge import processing, tiling
from unet_edge.errors import InputError, ModelError, ProviderError, UnetEdgeError
from unet_edge.runtime import Segmenter

SHAPES = [
    (1, 1),
    (2, 3),
    (1, 200),
    (7, 13),
    (61, 53),
    (97, 131),
    (131, 97),
    (3, 1500),
    (211, 4),
    (388, 389),
]


def whole_image(seg: Segmenter, image: np.ndarray) -> np.ndarray:
    x = processing.normalize(image, seg.info.normalization, seg.info.channels)
    p = tiling.whole_image_plan(x.shape[1:], seg.geometry)
    assert p.n_tiles == 1
    return tiling.run_tiled(x, p, seg.run_batch, seg.info.classes)


@pytest.mark.parametrize("tile", [204, 236, 300])
def test_tiled_equals_whole_image(tiny_onnx: Path, tile: int) -> None:
    seg = Segmenter(tiny_onnx, tile=tile, batch_size=3)
    rng = np.random.default_rng(tile)
    for shape in SHAPES:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        got = seg.predict(image)
        assert got.shape == (2, *shape) and got.dtype == np.float32
        ref = whole_image(seg, image)
        assert np.max(np.abs(got - ref)) <= 1e-5, (shape, tile, seg.plan_for(shape))


def test_stride_equal_to_output_would_break_exactness(tiny_onnx: Path) -> None:
    """The reason for the alignment rule: a stride of 388 (not a multiple of 16) changes pixels."""
    seg = Segmenter(tiny_onnx, tile=572)
    image = np.random.default_rng(1).integers(0, 256, (40, 800), dtype=np.uint8)
    x = processing.normalize(image, seg.info.normalization, 1)
    good = tiling.plan(image.shape, seg.geometry, 572)
    bad_x = tiling.AxisPlan(800, 572, 388, 388, (0, 388, 776), 92, 776 + 572 - 92 - 800)
    bad = tiling.TilePlan(40, 800, good.y, bad_x, 92, 0, 16)
    ref = whole_image(seg, image)
    assert np.max(np.abs(tiling.run_tiled(x, good, seg.run_batch, 2) - ref)) <= 1e-5
    assert np.max(np.abs(tiling.run_tiled(x, bad, seg.run_batch, 2) - ref)) > 1e-3


def test_matches_torch_on_real_image(
    tiny_ckpt: Path, tiny_onnx: Path, isbi_image: np.ndarray
) -> None:
    torch = pytest.importorskip("torch")
    import cv2

    from unet_edge.training import checkpoint

    seg = Segmenter(tiny_onnx, tile=300)
    got = seg.predict(isbi_image)
    model = checkpoint.load(tiny_ckpt).build_model()
    g = seg.geometry
    n = g.input_for_output(512)
    x = processing.normalize(isbi_image, seg.info.normalization, 1)[0]
    padded = cv2.copyMakeBorder(x, 92, n - 92 - 512, 92, n - 92 - 512, cv2.BORDER_REFLECT)
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(padded)[None, None]), 1)[0, :, :512, :512]
    assert np.max(np.abs(got - ref.numpy())) <= 1e-5


def test_same_padding_residual(same_onnx: Path) -> None:
    """Same-padding models: a margin >= the receptive-field radius leaves float noise only."""
    seg = Segmenter(same_onnx, tile=seg_tile(same_onnx))
    image = np.random.default_rng(2).integers(0, 256, (150, 170), dtype=np.uint8)
    diff = np.max(np.abs(seg.predict(image) - whole_image(seg, image)))
    assert diff <= 1e-5


def seg_tile(path: Path) -> int:
    from unet_edge import metadata

    g = metadata.read(path).geometry
    return g.min_input + 2 * g.alignment


def test_segment_mask_and_multichannel(rgb_onnx: Path) -> None:
    seg = Segmenter(rgb_onnx)
    rgb = np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    probs = seg.predict(rgb)
    assert probs.shape == (3, 40, 50)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    mask = seg.segment(rgb)
    assert mask.dtype == np.uint8 and mask.shape == (40, 50)
    assert np.array_equal(mask, probs.argmax(0))
    with pytest.raises(InputError, match=r"3 channels|takes 3"):
        seg.predict(rgb[..., 0])
    with pytest.raises(InputError, match="3-channel model"):
        seg.predict(rgb[..., :2])


def test_dtypes_and_stacks(tiny_onnx: Path, isbi_image: np.ndarray) -> None:
    seg = Segmenter(tiny_onnx)
    img8 = isbi_image[:100, :120]
    p8 = seg.predict(img8)
    p16 = seg.predict(img8.astype(np.uint16) * 257)  # same picture at 16 bits
    pf = seg.predict(img8.astype(np.float32) / 255)
    assert np.max(np.abs(p8 - p16)) <= 1e-5 and np.max(np.abs(p8 - pf)) <= 1e-5
    stack = np.stack([img8, img8[::-1]])
    ps = seg.predict(stack)
    assert ps.shape == (2, 2, 100, 120)
    assert np.max(np.abs(ps[0] - p8)) <= 1e-6
    assert seg.segment(stack).shape == (2, 100, 120)
    assert seg.predict(img8[..., None]).shape == (2, 100, 120)  # (H, W, 1)
    with pytest.raises(InputError, match="colour image"):
        seg.predict(np.repeat(img8[..., None], 3, axis=2))
    assert seg.predict([img8[:, :3]] * 5).shape == (5, 2, 100, 3)  # narrow frames as a list


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((10, 10), np.int64), "unsupported pixel type"),
        (np.full((10, 10), np.nan, np.float32), "NaN"),
        (np.zeros((2, 3, 4, 5, 6), np.uint8), "expected"),
        ([np.zeros((5, 5), np.uint8), np.zeros((6, 5), np.uint8)], "different shapes"),
        ("image.png", "numpy array"),
    ],
)
def test_bad_frames(tiny_onnx: Path, bad: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        Segmenter(tiny_onnx).predict(bad)  # type: ignore[arg-type]


def test_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        Segmenter(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not an ONNX model"):
        Segmenter(junk)


def test_onnx_without_metadata_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ModelError, match="no unet-edge metadata"):
        Segmenter(path)


def test_bad_tile_and_batch(tiny_onnx: Path) -> None:
    with pytest.raises(UnetEdgeError, match="use 556 or 572"):
        Segmenter(tiny_onnx, tile=570)
    with pytest.raises(InputError, match="batch_size"):
        Segmenter(tiny_onnx, batch_size=0)


def test_cuda_request_without_cuda_is_an_error(tiny_onnx: Path) -> None:
    from unet_edge.engines import select

    if select.unavailable_reason("cuda") is None:
        pytest.skip("CUDA works on this machine")
    with pytest.raises(ProviderError, match=r"(?i)cuda"):
        Segmenter(tiny_onnx, provider="cuda")
    seg = Segmenter(tiny_onnx, provider="auto")
    # auto ends on OpenVINO where it works, else on onnxruntime's cpu provider; it says why.
    assert seg.provider == ("openvino" if select.unavailable_reason("openvino") is None else "cpu")
    assert seg.notes and f"auto: using {seg.provider}" in seg.notes


def test_close_and_context_manager(tiny_onnx: Path) -> None:
    with Segmenter(tiny_onnx) as seg:
        seg.predict(np.zeros((5, 5), np.uint8))
    with pytest.raises(UnetEdgeError, match="closed"):
        seg.predict(np.zeros((5, 5), np.uint8))


def test_threads_give_serial_results(
    tiny_onnx: Path, isbi_image: np.ndarray, threads_match_serial
) -> None:
    seg = Segmenter(tiny_onnx, tile=236)
    frames = [np.ascontiguousarray(np.rot90(isbi_image[:150, :170], k)) for k in range(8)]
    threads_match_serial(seg, frames)


def test_runtime_never_imports_torch(tiny_onnx: Path, imports_none_of) -> None:
    code = (
        "import numpy as np\n"
        "from unet_edge import Segmenter\n"
        f"s = Segmenter({str(tiny_onnx)!r})\n"
        "m = s.segment(np.zeros((30, 40), np.uint8))\n"
        "assert m.shape == (30, 40)\n"
        "import unet_edge.cli, unet_edge.io, unet_edge.evaluate"
    )
    imports_none_of(code, "torch")
