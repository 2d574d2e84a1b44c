"""unet_edge/training/domain_data.py: a checkpoint from ``unet-edge train`` records its training
images, and ``unet-edge export`` measures the domain statistics on them without being told
(``--domain-data`` replaces them, ``--no-domain`` leaves them out); old checkpoints and moved
folders give a model without statistics and say how to add them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from bench_fixtures import make_tiny_data
from click.testing import CliRunner

from unet_edge import Segmenter, io
from unet_edge.cli import main
from unet_edge.training import domain_data

torch = pytest.importorskip("torch", reason="training tests need the [train] extra (torch)")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A checkpoint trained 2 steps on s0 and s1 of the tiny data (s2 held out), and its data."""
    from unet_edge.training.loop import TrainConfig, train

    folder = tmp_path_factory.mktemp("domain_data")
    (folder / "data").mkdir()
    data = make_tiny_data(folder / "data")
    config = TrainConfig(width=2, depth=2, tile=92, steps=2, val_every=2, threads=1)
    config = TrainConfig(**{**config.__dict__, "val_names": ("s2",)})
    result = train(config, data, folder / "m.pt")
    return result.output, data


def _export(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["export", *args])
    return r.exit_code, r.output


def test_the_checkpoint_records_its_training_images_not_the_validation_ones(
    trained: tuple[Path, Path],
) -> None:
    from unet_edge.training import checkpoint

    ck, data = trained
    training = checkpoint.load(ck).training
    assert training["image_dir"] == str((data / "image").resolve())
    assert training["train_names"] == ["s0", "s1"] and training["val_names"] == ["s2"]
    where, files, lost = domain_data.image_files(training)
    assert where == data.resolve() / "image" and lost == []
    assert [p.name for p in files] == ["s0.png", "s1.png"]


def test_export_stamps_the_recorded_training_images_without_being_asked(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    ck, data = trained
    code, text = _export(str(ck), "-o", str(tmp_path / "m.onnx"))
    assert code == 0, text
    assert f"domain statistics of 2 training images in {(data / 'image').resolve()}" in text
    assert "(recorded by unet-edge train)" in text
    with Segmenter(tmp_path / "m.onnx") as seg:
        assert seg.guard is not None and seg.guard.stats.images == 2
        assert "2 image/label pairs" in seg.guard.stats.source
        pred = seg.analyze(io.read_image(data / "image" / "s0.png"))
        noise = np.random.default_rng(0).integers(0, 256, (160, 176)).astype(np.uint8)
        flagged = seg.analyze(noise)
    assert pred.in_domain is True  # one of its own training images
    assert flagged.in_domain is False


def test_the_graph_is_the_same_with_and_without_the_statistics(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """The statistics are metadata only: the graph checked against PyTorch is unchanged."""
    ck, _ = trained
    assert _export(str(ck), "-o", str(tmp_path / "with.onnx"))[0] == 0
    code, text = _export(str(ck), "-o", str(tmp_path / "without.onnx"), "--no-domain")
    assert code == 0 and "domain statistics" not in text, text
    with_, without = (onnx.load(str(tmp_path / f"{n}.onnx")) for n in ("with", "without"))
    assert with_.graph.SerializeToString() == without.graph.SerializeToString()
    with Segmenter(tmp_path / "without.onnx") as seg:
        assert seg.guard is None


def test_moved_training_images_give_a_model_without_statistics_and_say_so(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    ck, data = trained
    moved = tmp_path / "elsewhere"
    shutil.copytree(data, moved)
    copy = tmp_path / "m.pt"
    shutil.copy(ck, copy)
    shutil.move(str(data), str(tmp_path / "gone"))  # the recorded folder disappears
    try:
        code, text = _export(str(copy), "-o", str(tmp_path / "a.onnx"))
        assert code == 0, text
        assert "the model has no domain statistics" in text
        assert "2 of the recorded training images are not in" in text
        assert text.rstrip().endswith("add them with --domain-data DIR")
        with Segmenter(tmp_path / "a.onnx") as seg:
            assert seg.guard is None
        code, text = _export(str(copy), "-o", str(tmp_path / "b.onnx"), "--domain-data", str(moved))
        assert code == 0 and "domain statistics of 3 training images" in text, text
        assert "(given)" in text
        with Segmenter(tmp_path / "b.onnx") as seg:
            assert seg.guard is not None and seg.guard.stats.images == 3
    finally:
        shutil.move(str(tmp_path / "gone"), str(data))


def test_domain_data_and_no_domain_exclude_each_other(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    ck, data = trained
    args = ["export", str(ck), "-o", str(tmp_path / "x.onnx"), "--no-domain"]
    r = CliRunner().invoke(main, [*args, "--domain-data", str(data)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "Error: --domain-data and --no-domain exclude each other" in r.output
    assert not (tmp_path / "x.onnx").exists()


def test_an_old_checkpoint_without_the_record_still_exports(
    tiny_ckpt: Path, tmp_path: Path
) -> None:
    code, text = _export(str(tiny_ckpt), "-o", str(tmp_path / "old.onnx"))
    assert code == 0, text
    assert "the checkpoint does not record its training images" in text
    with Segmenter(tmp_path / "old.onnx") as seg:
        assert seg.guard is None


def test_recorded_images_are_all_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "image").mkdir()
    io.write_png(tmp_path / "image" / "a.png", np.zeros((20, 20), np.uint8))
    io.write_tiff(tmp_path / "image" / "b.tif", np.ones((20, 20), np.uint16))
    record = {"image_dir": str(tmp_path / "image"), "train_names": ["a", "b"]}
    found = domain_data.recorded(record)
    assert found.origin == "recorded" and [im.dtype for im in found.images] == [
        np.uint8,
        np.uint16,
    ]
    partial = domain_data.recorded({**record, "train_names": ["a", "b", "c"]})
    assert partial.images == ()
    assert "1 of the recorded training images are not in" in partial.missing
    (tmp_path / "image" / "a.png").write_bytes(b"not a png")
    broken = domain_data.recorded(record)
    assert broken.images == () and "unreadable" in broken.missing
    assert domain_data.recorded({}).missing.startswith("the checkpoint does not record")


def test_a_given_folder_is_its_image_subfolder_when_it_has_one(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    data = make_tiny_data(tmp_path / "data")
    found = domain_data.from_folder(data)
    assert found.where == data / "image" and len(found.images) == 3 and found.origin == "given"
    assert len(domain_data.from_folder(data / "label").images) == 3


def test_a_package_of_the_checkpoint_or_its_export_keeps_the_statistics_and_guards(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """``unet-edge package`` of a checkpoint measures the recorded images as export does; of
    an exported model it keeps its statistics: the ONNX inside holds them and a model read
    back from the package scores frames as the exported model does."""
    pytest.importorskip("bioimageio.spec", reason="packages need the [bioimageio] extra")
    import json
    import zipfile

    ck, data = trained
    assert _export(str(ck), "-o", str(tmp_path / "m.onnx"))[0] == 0
    image = io.read_image(data / "image" / "s2.png")
    noise = np.random.default_rng(1).integers(0, 256, (160, 176)).astype(np.uint8)
    with Segmenter(tmp_path / "m.onnx") as seg:
        expected = [seg.analyze(im).quality for im in (image, noise)]
    for model in (ck, tmp_path / "m.onnx"):
        pkg = tmp_path / f"{model.suffix[1:]}.zip"
        r = CliRunner().invoke(main, ["package", str(model), "-o", str(pkg)])
        assert r.exit_code == 0, r.output
        assert "domain guard: 2 training images (2 image/label pairs" in r.output
        with zipfile.ZipFile(pkg) as z:
            inside = onnx.load_from_string(z.read("weights.onnx"))
        described = json.loads(inside.metadata_props[0].value)["model"]
        assert described["domain"]["images"] == 2
        with Segmenter(pkg) as seg:
            assert seg.guard is not None
            got = [seg.analyze(im).quality for im in (image, noise)]
        assert got == expected and expected[1] is not None and not expected[1][0].in_domain


def test_a_package_of_a_model_without_statistics_says_so(tiny_onnx: Path, tmp_path: Path) -> None:
    pytest.importorskip("bioimageio.spec", reason="packages need the [bioimageio] extra")
    r = CliRunner().invoke(main, ["package", str(tiny_onnx), "-o", str(tmp_path / "t.zip")])
    assert r.exit_code == 0, r.output
    assert "domain guard: no training statistics" in r.output
