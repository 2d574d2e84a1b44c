"""bioimage.io packages (written: unet_edge.training.package; read: unet_edge.models.bioimage):
written, validated by bioimageio.core, and run."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from unet_edge import Segmenter, tiling
from unet_edge.io import read_image
from unet_edge.runtime import default_model_path

spec = pytest.importorskip("bioimageio.spec", reason="needs the [bioimageio] extra")
core = pytest.importorskip("bioimageio.core", reason="needs the [bioimageio] extra")
from unet_edge.training.package import package_checkpoint, write_package  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "unet_edge" / "data" / "sample_isbi2012.png"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("BIOIMAGEIO_CACHE_PATH", str(tmp_path_factory.getbasetemp() / "bcache"))


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pkg") / "isbi.zip"
    return write_package(default_model_path(), out)


def _passes(path: Path, weight_format: str | None = None) -> None:
    summary = core.test_model(path, weight_format=weight_format)  # type: ignore[arg-type]
    failed = [(d.name, d.errors) for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed


def test_shipped_model_package_passes_bioimageio_test(package: Path) -> None:
    _passes(package)
    names = set(zipfile.ZipFile(package).namelist())
    assert {"rdf.yaml", "weights.onnx", "test_input.npy", "test_output.npy", "cover.png"} <= names
    d = spec.load_model_description(package, perform_io_checks=False)
    assert d.outputs[0].axes[2].halo == 96  # 92 + the 4 px crop that keeps blocks on the grid
    assert (d.inputs[0].axes[2].size.min, d.inputs[0].axes[2].size.step) == (208, 16)
    assert [p.id for p in d.inputs[0].preprocessing if p.id != "ensure_dtype"] == [
        "scale_range",
        "clip",
        "scale_linear",
    ]
    assert d.config.model_dump()["unet_edge"]["model"]["name"] == "isbi2012-default"
    readme = zipfile.ZipFile(package).read("README.md").decode()
    assert "Ronneberger" in readme and "ISBI 2012" in readme and "## Validation" in readme
    assert [str(c) for c in d.outputs[0].axes[1].channel_names] == ["membrane", "cell"]


@pytest.mark.slow  # ~30 s: export, trace, and bioimageio.core runs both weight formats
def test_checkpoint_package_has_torchscript_and_passes(tiny_ckpt: Path, tmp_path: Path) -> None:
    out = package_checkpoint(tiny_ckpt, tmp_path / "tiny.zip")
    assert "weights.pt" in zipfile.ZipFile(out).namelist()
    _passes(out, "torchscript")  # the ONNX weights are tested on the shipped model's package


def test_segmenter_runs_the_package(package: Path, tmp_path: Path) -> None:
    image = read_image(SAMPLE)[:320, :300]
    ref = Segmenter().predict(image)
    seg = Segmenter(package, tile=304)
    assert (seg.geometry.halo, seg.source.origin) == (96, "bioimage.io")
    assert seg.plan_for(image.shape).n_tiles > 1
    assert np.abs(seg.predict(image) - ref).max() <= 1e-5
    zipfile.ZipFile(package).extractall(tmp_path)
    from_rdf = Segmenter(tmp_path / "rdf.yaml").predict(image)
    assert np.abs(from_rdf - ref).max() <= 1e-5


def _foreign_package(folder: Path) -> Path:
    """A package written with bioimageio.spec alone around a U-Net unet-edge did not define."""
    import foreign_nets as fn
    import onnxruntime as ort
    from bioimageio.spec.model import v0_5 as v

    weights = fn.export(fn.build(fn.SameNet(), seed=3), folder / "net.onnx", 128)
    raw = read_image(SAMPLE)[:128, :128].astype(np.float32)[None, None]
    sess = ort.InferenceSession(str(weights), providers=["CPUExecutionProvider"])
    np.save(folder / "in.npy", raw)
    np.save(folder / "out.npy", sess.run(None, {"x": raw / 255})[0])
    size = v.ParameterizedSize(min=64, step=8)
    descr = v.ModelDescr(
        name="someone elses unet",
        description="a foreign same-padded U-Net",
        authors=[v.Author(name="someone")],
        cite=[v.CiteEntry(text="U-Net", doi=v.Doi("10.1007/978-3-319-24574-4_28"))],
        license=v.LicenseId("MIT"),
        inputs=[
            v.InputTensorDescr(
                id=v.TensorId("input"),
                axes=[
                    v.BatchAxis(),
                    v.ChannelAxis(channel_names=[v.Identifier("em")]),
                    *(v.SpaceInputAxis(id=v.AxisId(a), size=size) for a in "yx"),
                ],
                test_tensor=v.FileDescr(source=folder / "in.npy"),
                preprocessing=[v.ScaleLinearDescr(kwargs=v.ScaleLinearKwargs(gain=1 / 255))],
            )
        ],
        outputs=[
            v.OutputTensorDescr(
                id=v.TensorId("logits"),
                axes=[
                    v.BatchAxis(),
                    v.ChannelAxis(channel_names=[v.Identifier("a"), v.Identifier("b")]),
                    *(
                        v.SpaceOutputAxisWithHalo(
                            id=v.AxisId(a),
                            halo=16,  # too small for exact tiling: the probe's margin wins
                            size=v.SizeReference(
                                tensor_id=v.TensorId("input"), axis_id=v.AxisId(a)
                            ),
                        )
                        for a in "yx"
                    ),
                ],
                test_tensor=v.FileDescr(source=folder / "out.npy"),
            )
        ],
        weights=v.WeightsDescr(onnx=v.OnnxWeightsDescr(source=weights, opset_version=17)),
    )
    out = folder / "foreign.zip"
    spec.save_bioimageio_package(descr, output_path=out)
    return out


def test_foreign_package_runs_tiled_equals_whole(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the foreign U-Net is defined and exported with torch")
    pkg = _foreign_package(tmp_path)
    seg = Segmenter(pkg, tile=104)
    assert seg.info.normalization.mode.value == "fixed_range"  # from scale_linear(1/255)
    assert seg.info.class_names == ("a", "b") and seg.geometry.margin > 16
    image = read_image(SAMPLE)[:250, :301]
    plan = tiling.whole_image_plan(image.shape, seg.geometry)
    whole = seg.tile_run(plan, tiling.array_reader(image), seg.scaling_for(image)).run(
        seg.run_batch
    )
    assert seg.plan_for(image.shape).n_tiles > 4
    assert np.abs(seg.predict(image) - whole).max() <= 1e-5


@pytest.mark.slow
def test_core_blockwise_prediction_equals_segmenter(package: Path, isbi: Path) -> None:
    from bioimageio.spec.model.v0_5 import TensorId

    rows = [
        np.concatenate([read_image(isbi / "train" / "image" / f"{i:02d}.png") for i in r], axis=1)
        for r in ((0, 1), (2, 3))
    ]
    image = np.concatenate(rows, axis=0)
    assert image.shape == (1024, 1024)
    x = core.Tensor(image[None, None].astype(np.float32), dims=("batch", "channel", "y", "x"))
    d = spec.load_model_description(package, perform_io_checks=False)
    out = core.predict(model=d, inputs={"raw": x}, blocksize_parameter=10)
    theirs = out.members[TensorId("probabilities")].data.values[0]
    ours = Segmenter().predict(image)
    assert np.abs(theirs - ours).max() <= 1e-4
    assert (theirs.argmax(axis=0) == ours.argmax(axis=0)).all()


def test_cli_package_then_run(tiny_onnx: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from unet_edge.cli import main

    runner = CliRunner()
    pkg = tmp_path / "tiny.zip"
    r = runner.invoke(main, ["package", str(tiny_onnx), "-o", str(pkg)])
    assert r.exit_code == 0 and pkg.is_file(), r.output
    r = runner.invoke(main, ["package", str(tiny_onnx), "-o", str(pkg)])
    assert r.exit_code == 1 and "--overwrite" in r.output
    r = runner.invoke(main, ["run", str(SAMPLE), "-m", str(pkg), "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "sample_isbi2012_mask.png").is_file()


@pytest.mark.parametrize("name", ["valid", "same"])  # sigmoid output; logits
def test_package_a_probed_foreign_onnx(name: str, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the foreign U-Nets are defined and exported with torch")
    import foreign_nets as fn

    from unet_edge import Normalization

    net = fn.build(fn.ValidNet() if name == "valid" else fn.SameNet())
    onnx_path = fn.export(net, tmp_path / f"{name}.onnx", 128 if name == "same" else 124)
    norm = Normalization(mode="percentile", low=1, high=99.8)
    pkg = write_package(onnx_path, tmp_path / f"{name}.zip", normalization=norm)
    _passes(pkg)
    readme = zipfile.ZipFile(pkg).read("README.md").decode()
    assert "probe" in readme and "ISBI 2012 EM" not in readme  # no claim about its training
    image = read_image(SAMPLE)[:200, :230]
    ref = Segmenter(onnx_path, normalization=norm).predict(image)
    assert np.abs(Segmenter(pkg).predict(image) - ref).max() <= 1e-5
