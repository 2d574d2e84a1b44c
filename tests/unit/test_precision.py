"""fp16 export and int8 quantisation: metadata, calibration and the agreement gate."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from unet_edge import io, metadata, precision
from unet_edge.cli import main
from unet_edge.config import Precision
from unet_edge.errors import ExportError, InputError, ModelError, OutputExistsError
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
    Built with onnx.helper (tests/onnx_models.py): no torch needed.
    """
    import onnx_models

    from unet_edge.config import Normalization, UNetConfig
    from unet_edge.processing import normalize

    norm = Normalization(mean=0.5, std=0.25)
    config = UNetConfig(base_width=2)
    weights = onnx_models.random_weights(config, seed=0)
    x = normalize(io.read_image(crops[0]), norm, 1)[None, :, :188, :188]
    logits = onnx_models.run(onnx_models.build(config, weights, softmax=False), x)
    weights["head.bias"][1] -= np.median(logits[:, 1] - logits[:, 0])
    return onnx_models.save(
        models_dir / "fragile.onnx",
        config,
        weights=weights,
        name="fragile",
        normalization=norm,
        class_names=("a", "b"),
    )


@pytest.fixture(scope="module")
def confident_onnx(tiny_onnx: Path, models_dir: Path, crops: list[Path]) -> Path:
    """``tiny_onnx`` with its second class made rare: the head's bias puts the class boundary
    at the 99.9th percentile of the logit difference on the calibration crops.

    A random-weight network has many pixels near its class boundary, where int8 noise flips
    them (79.6% agreement for ``tiny_onnx``); a trained model's are mostly far from it. (The
    torch-initialised tiny model used before passed the gate only because its width-2 ReLUs
    were dead and its output constant.)
    """
    import onnx
    import onnx_models

    info = metadata.read(tiny_onnx)
    with Segmenter(tiny_onnx) as seg:
        probs = [seg.predict(io.read_image(p)) for p in crops]
    diff = np.concatenate([(np.log(p[1]) - np.log(p[0])).ravel() for p in probs])
    weights = onnx_models.weights_of(onnx.load(str(tiny_onnx)))
    weights["head.bias"][1] -= np.percentile(diff, 99.9)
    return onnx_models.save(
        models_dir / "confident.onnx",
        info.architecture,
        weights=weights,
        name="confident",
        normalization=info.normalization,
        class_names=info.class_names,
    )


def test_quantize_writes_int8_graph_with_stats(
    confident_onnx: Path, crops: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "tiny.int8.onnx"
    rep = precision.quantize(confident_onnx, crops, out)
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
    with Segmenter(confident_onnx) as a, Segmenter(out) as b:
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


def test_quantize_input_checks(confident_onnx: Path, crops: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        precision.quantize(confident_onnx, crops, out)
    assert out.read_bytes() == b"keep me"
    q = precision.quantize(confident_onnx, crops[:1], tmp_path / "q8.onnx").path
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
    confident_onnx: Path, fragile_onnx: Path, crops: list[Path], tmp_path: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.int8.onnx"
    r = runner.invoke(
        main, ["quantize", "-m", str(confident_onnx), "-c", str(crops[0]), "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "masks agree with fp32" in r.output and out.is_file()
    bad = tmp_path / "bad.onnx"
    r = runner.invoke(
        main, ["quantize", "-m", str(fragile_onnx), "-c", str(crops[0]), "-o", str(bad)]
    )
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


def _weight_range(path: Path) -> int:
    """The largest |value| of the int8 convolution weights of a QDQ file."""
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    return max(
        int(np.abs(numpy_helper.to_array(t).astype(np.int32)).max())
        for t in proto.graph.initializer
        if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4
    )


def test_weight_bits_follow_the_provider_the_file_is_meant_for(
    confident_onnx: Path, crops: list[Path], tmp_path: Path
) -> None:
    # For onnxruntime (cpu) the weights have 7 bits: no pair of u8 x s8 products exceeds
    # int16 (2 x 255 x 64), so the gate's agreement holds on CPUs without VNNI too.
    seven = precision.quantize(confident_onnx, crops, tmp_path / "seven.onnx")
    assert seven.weight_bits == 7 and "7-bit weights" in seven.summary()
    assert _weight_range(seven.path) == 64
    q = metadata.read(seven.path).provenance["quantization"]
    assert q["weight_bits"] == 7
    stats = metadata.read(seven.path).metrics["int8_vs_fp32"]
    assert stats["cpu"] and stats["cpu_int8_saturates"] in (True, False, None)
    eight = precision.quantize(confident_onnx, crops, tmp_path / "eight.onnx", weight_bits=8)
    assert eight.weight_bits == 8 and _weight_range(eight.path) == 127
    assert metadata.read(eight.path).provenance["quantization"]["weight_bits"] == 8
    for bad in (6, 16, True, "8"):
        with pytest.raises(InputError, match="weight_bits must be 7 or 8"):
            precision.quantize(confident_onnx, crops, tmp_path / "x.onnx", weight_bits=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "x.onnx").exists()


def test_cli_quantize_weight_bits(confident_onnx: Path, crops: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "cli8.int8.onnx"
    args = ["quantize", "-m", str(confident_onnx), "-c", str(crops[0]), "-o", str(out)]
    r = CliRunner().invoke(main, [*args, "--weight-bits", "8"])
    assert r.exit_code == 0, r.output
    assert "8-bit weights" in r.output and _weight_range(out) == 127
    r = CliRunner().invoke(main, [*args, "--weight-bits", "9", "--overwrite"])
    assert r.exit_code == 2 and "'9' is not one of '7', '8'" in r.output


def _pretend_cpu(monkeypatch: pytest.MonkeyPatch, saturates: bool) -> str:
    """Make :mod:`unet_edge.cpu` describe an AVX2-only AMD EPYC (its int8 kernels saturate)
    or a Xeon with VNNI, whatever this machine is; returns the pretended CPU's name."""
    from unet_edge import cpu

    name = "AMD EPYC 7B13" if saturates else "Intel Xeon Gold 6338 (VNNI)"
    monkeypatch.setattr(cpu, "int8_saturates", lambda *a, **k: saturates)
    monkeypatch.setattr(cpu, "name", lambda: name)
    return name


def test_an_8_bit_file_on_a_saturating_cpu_is_noted_and_warned(
    confident_onnx: Path, crops: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unet_edge import cpu

    _pretend_cpu(monkeypatch, saturates=False)  # the gate runs where the kernels do not saturate
    eight = precision.quantize(confident_onnx, crops, tmp_path / "e.onnx", weight_bits=8).path
    seven = precision.quantize(confident_onnx, crops, tmp_path / "s.onnx").path
    monkeypatch.setattr(cpu, "int8_saturates", lambda *a, **k: True)
    monkeypatch.setattr(cpu, "name", lambda: "AMD EPYC 7B13")
    with pytest.warns(RuntimeWarning, match="no VNNI") as caught:
        seg = Segmenter(eight)
    assert len(caught) == 1 and str(eight) in str(caught[0].message)
    note = seg.notes[-1]
    assert note.startswith("int8: this CPU (AMD EPYC 7B13) has no VNNI")
    assert "measured with cpu on" in note and "7-bit weights" in note
    # The agreement in the file was measured where the kernels did not saturate (or this
    # machine's flags say so); the 7-bit file, fp32 and float models raise nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in (seven, confident_onnx):
            assert not any("VNNI" in n for n in Segmenter(path).notes)
        monkeypatch.setattr(cpu, "int8_saturates", lambda *a, **k: False)
        assert not any("VNNI" in n for n in Segmenter(eight).notes)


def test_int8_note_trusts_a_gate_run_on_a_saturating_cpu(
    confident_onnx: Path, crops: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from unet_edge import cpu
    from unet_edge.models.check import int8_note

    _pretend_cpu(monkeypatch, saturates=False)  # the gate runs where the kernels do not saturate
    path = precision.quantize(confident_onnx, crops, tmp_path / "e.onnx", weight_bits=8).path
    info = metadata.read(path)
    monkeypatch.setattr(cpu, "int8_saturates", lambda *a, **k: True)
    stats = dict(info.metrics["int8_vs_fp32"])
    assert int8_note(info, "cpu") is not None
    assert int8_note(info, "openvino") is None  # OpenVINO's kernels do not saturate
    saturated = {**stats, "provider": "cpu", "cpu_int8_saturates": True}
    assert int8_note(replace(info, metrics={"int8_vs_fp32": saturated}), "cpu") is None
    # A file from before weight_bits was recorded had 8-bit weights; a crafted CPU name in
    # its metadata reaches the note without control characters.
    old_q = {k: v for k, v in info.provenance["quantization"].items() if k != "weight_bits"}
    crafted = {**stats, "cpu": "Evil\x1b[2J\nCPU"}
    old = replace(info, provenance={"quantization": old_q}, metrics={"int8_vs_fp32": crafted})
    note = int8_note(old, "cpu")
    assert note is not None and "Evil[2JCPU" in note and "\x1b" not in note and "\n" not in note


_NOTE_END = (
    "; run it on the openvino provider, or quantise the fp32 model again for the cpu provider "
    "(7-bit weights)"
)


@pytest.mark.parametrize(
    ("measured", "compared_with"),
    [
        (
            {"pixel_agreement": 0.9962, "provider": "openvino", "cpu": "Intel Xeon"},
            "the 99.62% measured with openvino on Intel Xeon",
        ),
        ({"pixel_agreement": 0.9962, "provider": "cpu"}, "the 99.62% measured with cpu"),
        (
            {"pixel_agreement": 0.9962, "cpu": "Intel Xeon"},
            "the 99.62% measured with an unknown provider on Intel Xeon",
        ),
        ({"pixel_agreement": 0.9962}, "the 99.62% measured with an unknown provider"),
        (
            {"provider": "cpu", "cpu": "Intel Xeon"},
            "on a CPU with VNNI (the file records no measured agreement)",
        ),
        (None, "on a CPU with VNNI (the file records no measured agreement)"),
    ],
    ids=["all", "no-cpu", "no-provider", "number-only", "no-number", "not-measured"],
)
def test_int8_note_reads_for_what_the_file_records(
    confident_onnx: Path,
    monkeypatch: pytest.MonkeyPatch,
    measured: dict[str, object] | None,
    compared_with: str,
) -> None:
    from dataclasses import replace

    from unet_edge.models.check import int8_note

    _pretend_cpu(monkeypatch, saturates=True)
    fp32 = metadata.read(confident_onnx)
    info = replace(
        fp32.with_precision(Precision.INT8),
        provenance={"quantization": {"weight_bits": 8}},
        metrics={} if measured is None else {"int8_vs_fp32": measured},
    )
    assert int8_note(info, "cpu") == (
        "int8: this CPU (AMD EPYC 7B13) has no VNNI, so onnxruntime's int8 kernels saturate "
        "with this file's 8-bit weights, and its masks can agree with fp32 on fewer pixels "
        f"than {compared_with}{_NOTE_END}"
    )


@pytest.mark.parametrize("saturates", [True, False], ids=["saturating-cpu", "vnni-cpu"])
def test_the_quantize_gate_does_not_warn_about_the_file_it_measures(
    confident_onnx: Path,
    crops: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    saturates: bool,
) -> None:
    from unet_edge.models.check import Int8Warning

    name = _pretend_cpu(monkeypatch, saturates)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = precision.quantize(confident_onnx, crops, tmp_path / "e.onnx", weight_bits=8).path
    assert not [w for w in caught if issubclass(w.category, Int8Warning)]
    stats = metadata.read(path).metrics["int8_vs_fp32"]
    assert (stats["cpu"], stats["cpu_int8_saturates"]) == (name, saturates)
    # Only the gate is quiet: run on a saturating CPU, a file measured elsewhere still warns,
    # and one measured on such a CPU (its agreement already holds there) does not.
    _pretend_cpu(monkeypatch, saturates=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Segmenter(path).close()
    assert sum(issubclass(w.category, Int8Warning) for w in caught) == (0 if saturates else 1)
