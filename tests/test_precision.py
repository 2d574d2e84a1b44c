"""fp16 export and int8 quantisation: metadata, calibration and the agreement gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from unet_edge import io, metadata, precision
from unet_edge.cli import main
from unet_edge.config import Precision
from unet_edge.errors import ExportError, ModelError, OutputExistsError
from unet_edge.runtime import Segmenter


@pytest.fixture(scope="module")
def crops(isbi: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real ISBI crops (200x240), written as PNG like a user's calibration images."""
    d = tmp_path_factory.mktemp("calib")
    out = []
    for name in ("20", "21"):
        img = io.read_image(isbi / "train" / "image" / f"{name}.png")
        out.append(io.write_png(d / f"crop{name}.png", img[100:300, 50:290]))
    return out


@pytest.fixture(scope="module")
def fragile_onnx(models_dir: Path, crops: list[Path]) -> Path:
    """A width-2 U-Net whose class boundary runs through the middle of its logit differences.

    Half the pixels of the calibration crops sit on each side of the boundary
    and many close to it, so int8 noise flips far more than 0.5% of them.
    """
    torch = pytest.importorskip("torch")
    from unet_edge.config import Normalization, UNetConfig
    from unet_edge.processing import normalize
    from unet_edge.training import checkpoint
    from unet_edge.training.export import export_checkpoint
    from unet_edge.training.model import UNet

    torch.manual_seed(0)
    norm = Normalization(mean=0.5, std=0.25)
    net = UNet(UNetConfig(base_width=2)).eval()
    x = normalize(io.read_image(crops[0]), norm, 1)[None, :, :188, :188]
    with torch.no_grad():
        logits = net(torch.from_numpy(np.ascontiguousarray(x)))
        net.head.bias[1] -= torch.median(logits[:, 1] - logits[:, 0])
    ck = checkpoint.from_model(net, norm, ("a", "b"), name="fragile")
    path = models_dir / "fragile.onnx"
    export_checkpoint(checkpoint.save(ck, models_dir / "fragile.pt"), path, overwrite=True)
    return path


def test_quantize_writes_int8_graph_with_stats(
    tiny_onnx: Path, crops: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "tiny.int8.onnx"
    rep = precision.quantize(tiny_onnx, crops, out)
    assert out.is_file() and rep.path == out
    info = metadata.read(out)
    assert info.precision is Precision.INT8
    q = info.provenance["quantization"]
    assert q["activations"] == "uint8" and q["weights"] == "int8 per-channel"
    assert q["calibration"]["images"] == ["crop20.png", "crop21.png"]
    assert q["calibration"]["tiles"] == rep.calibration_tiles >= 2
    stats = info.metrics["int8_vs_fp32"]
    assert stats["threshold"] == precision.AGREEMENT_THRESHOLD
    assert stats["pixel_agreement"] == rep.agreement["pixel_agreement"] >= 0.995
    # A real QDQ graph: int8 weights, quantise/dequantise pairs, float softmax at the end.
    proto = onnx.load(str(out))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Softmax"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in proto.graph.initializer)
    # The runtime runs it; the agreement the file claims is what we measure again.
    img = io.read_image(crops[0])
    with Segmenter(tiny_onnx) as a, Segmenter(out) as b:
        pa, pb = a.predict(img), b.predict(img)
        same = np.mean(a.segment(img) == b.segment(img))
    assert pb.dtype == np.float32 and pb.shape == pa.shape
    assert same == pytest.approx(rep.agreement["per_image"][0])


def test_quantize_refuses_below_threshold_and_writes_nothing(
    fragile_onnx: Path, crops: list[Path], tmp_path: Path
) -> None:
    # Accepted with a loose threshold: that tells us the true agreement...
    loose = precision.quantize(fragile_onnx, crops, tmp_path / "loose.onnx", threshold=0.5)
    agree = loose.agreement["pixel_agreement"]
    assert 0.5 < agree < 0.99
    # ...so a threshold just above it, and the default one, must refuse.
    for threshold in (agree + (1 - agree) / 2, precision.AGREEMENT_THRESHOLD):
        out = tmp_path / f"refused{threshold:.4f}.onnx"
        with pytest.raises(ExportError, match="was not written"):
            precision.quantize(fragile_onnx, crops, out, threshold=threshold)
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["loose.onnx"]  # no temporary files left


def test_quantize_input_checks(tiny_onnx: Path, crops: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        precision.quantize(tiny_onnx, crops, out)
    assert out.read_bytes() == b"keep me"
    q = precision.quantize(tiny_onnx, crops[:1], tmp_path / "q8.onnx").path
    with pytest.raises(ModelError, match="already int8"):
        precision.quantize(q, crops, tmp_path / "again.onnx")


def test_calibration_tiles_are_the_runtime_tiles(tiny_onnx: Path, crops: list[Path]) -> None:
    info = metadata.read(tiny_onnx)
    img = io.read_image(crops[0])
    tiles = precision.calibration_tiles(info, [img], tile=380)
    with Segmenter(tiny_onnx, tile=380) as seg:
        plan = seg.plan_for(img.shape)
    assert len(tiles) == plan.n_tiles
    assert all(t.shape == (1, 1, 380, 380) and t.dtype == np.float32 for t in tiles)
    assert len(precision.calibration_tiles(info, [img], tile=380, max_tiles=2)) == 2


def test_cli_quantize(
    tiny_onnx: Path, fragile_onnx: Path, crops: list[Path], tmp_path: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.int8.onnx"
    r = runner.invoke(main, ["quantize", str(tiny_onnx), "-c", str(crops[0]), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "masks agree with fp32" in r.output and out.is_file()
    bad = tmp_path / "bad.onnx"
    r = runner.invoke(main, ["quantize", str(fragile_onnx), "-c", str(crops[0]), "-o", str(bad)])
    assert r.exit_code == 1 and "was not written" in r.output and not bad.exists()


def test_fp16_export(
    tiny_ckpt: Path, tiny_onnx: Path, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from unet_edge.training.export import FP16_PARITY_RTOL, export_checkpoint

    out = tmp_path / "tiny.fp16.onnx"
    rep = export_checkpoint(tiny_ckpt, out, fp16=True)
    assert rep.precision == "fp16" and rep.rtol == FP16_PARITY_RTOL
    assert "fp16" in rep.summary()
    assert metadata.read(out).precision is Precision.FP16
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    # float32 in and out, half precision weights inside
    for v in (*proto.graph.input, *proto.graph.output):
        assert v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    with Segmenter(tiny_onnx) as a, Segmenter(out) as b:
        crop = isbi_image[:150, :170]
        assert np.max(np.abs(a.predict(crop) - b.predict(crop))) < FP16_PARITY_RTOL
    with pytest.raises(ModelError, match="already fp16"):
        precision.to_fp16(proto)


def test_cli_export_fp16(tiny_ckpt: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "m16.onnx"
    r = CliRunner().invoke(main, ["export", str(tiny_ckpt), "--fp16", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "fp16" in r.output and metadata.read(out).precision is Precision.FP16
