"""Export: one self-contained file, metadata stamped, parity with torch enforced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import onnx  # noqa: E402

from unet_edge import metadata  # noqa: E402
from unet_edge.config import Normalization, UNetConfig  # noqa: E402
from unet_edge.errors import CheckpointError, ExportError, OutputExistsError  # noqa: E402
from unet_edge.training import checkpoint  # noqa: E402
from unet_edge.training import export as export_mod  # noqa: E402
from unet_edge.training.model import UNet  # noqa: E402


@pytest.fixture()
def ck() -> checkpoint.Checkpoint:
    torch.manual_seed(1)
    net = UNet(UNetConfig(base_width=2, depth=3))
    return checkpoint.from_model(net, Normalization(mean=0.4, std=0.2), ("bg", "fg"), name="t")


def test_export_writes_one_verified_file(ck: checkpoint.Checkpoint, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    report = export_mod.export_checkpoint(ck, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no .onnx.data
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version >= 17
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == "batch" and dims[2] == "height" and dims[3] == "width"
    info = metadata.read(out)
    assert info.architecture == ck.config and info.class_names == ("bg", "fg")
    assert info.normalization == ck.normalization
    assert report.max_rel_error <= 1e-4 and len(report.parity) == 2
    assert report.parameters == sum(v.numel() for v in ck.state_dict.values())
    assert "parity with PyTorch" in report.summary()


def test_broken_graph_is_refused(
    ck: checkpoint.Checkpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = export_mod.to_onnx

    def tampered(model: UNet, info: metadata.ModelInfo, opset: int = 17) -> onnx.ModelProto:
        proto = real(model, info, opset)
        w = proto.graph.initializer[0]
        arr = onnx.numpy_helper.to_array(w).copy()
        arr.flat[0] += 1.0  # one wrong weight
        w.CopyFrom(onnx.numpy_helper.from_array(arr, w.name))
        return proto

    monkeypatch.setattr(export_mod, "to_onnx", tampered)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="disagree"):
        export_mod.export_checkpoint(ck, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_refuses_overwrite(ck: checkpoint.Checkpoint, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        export_mod.export_checkpoint(ck, out)
    assert out.read_bytes() == b"keep me"


def test_checkpoint_errors(tmp_path: Path, ck: checkpoint.Checkpoint) -> None:
    net = UNet(UNetConfig(base_width=2, depth=1))
    torch.save(net.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match=r"bare state_dict.*architecture"):
        checkpoint.load(tmp_path / "bare.pt")
    torch.save({"epoch": 3}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a unet-edge checkpoint"):
        checkpoint.load(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        checkpoint.load(tmp_path / "text.pt")
    d = ck.to_dict()
    del d["class_names"]
    torch.save(d, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="missing class_names"):
        checkpoint.load(tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.pt")


def test_checkpoint_round_trip(tmp_path: Path, ck: checkpoint.Checkpoint) -> None:
    p = checkpoint.save(ck, tmp_path / "c.pt")
    back = checkpoint.load(p)
    assert back.config == ck.config and back.class_names == ck.class_names
    x = torch.randn(1, 1, 92, 92)
    with torch.no_grad():
        assert torch.equal(back.build_model()(x), ck.build_model()(x))


GOLDEN = Path(__file__).parents[1] / "data" / "golden_depth2.npz"


def test_golden_pair(tmp_path: Path) -> None:
    """A fixed model and input must keep giving the stored output (regression guard)."""
    from unet_edge.runtime import Segmenter

    g = np.load(GOLDEN)
    cfg = UNetConfig(depth=2, base_width=2)
    net = UNet(cfg)
    state = {k: torch.from_numpy(g[f"w:{k}"]) for k in net.state_dict()}
    ck = checkpoint.Checkpoint(cfg, state, Normalization(), ("bg", "fg"), name="golden")
    out = tmp_path / "g.onnx"
    export_mod.export_checkpoint(ck, out)
    got = Segmenter(out, tile=int(g["tile"])).predict(g["image"])
    np.testing.assert_allclose(got, g["probabilities"], atol=1e-5)
