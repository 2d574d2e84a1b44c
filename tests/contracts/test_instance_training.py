"""Training from instance labels end to end: `train` detects (or is told) the label kind, the
three-class target trains, class names come from classes.txt or --classes, and the exported
model's metadata names the object class that `label()` numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from unet_edge import metadata
from unet_edge.cli import main

pytest.importorskip("torch")

FAST = ["--steps", "2", "--width", "4", "--depth", "2", "--tile", "76", "--threads", "1"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from unet_edge.training.synthetic import write_folder

    root = tmp_path_factory.mktemp("nuclei")
    write_folder(root, 2, seed=5, shape=(64, 64))
    return root


def train(args: list[str]) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["train", *args, *FAST])
    return r.exit_code, r.output


def test_instances_are_detected_and_said(folder: Path, tmp_path: Path):
    code, out = train([str(folder), "-o", str(tmp_path / "a.pt")])
    assert code == 0, out
    assert "read as instance ids" in out and "--labels instances" in out


def test_three_class_export_names_its_object_class(folder: Path, tmp_path: Path):
    ck = tmp_path / "b.pt"
    code, out = train(
        [
            str(folder),
            "-o",
            str(ck),
            "--labels",
            "instances",
            "--target",
            "three-class",
            "--classes",
            "background,nucleus,border",
        ]
    )
    assert code == 0, out
    r = CliRunner().invoke(main, ["export", str(ck), "-o", str(tmp_path / "b.onnx")])
    assert r.exit_code == 0, r.output
    info = metadata.read(tmp_path / "b.onnx")
    assert info.class_names == ("background", "nucleus", "border")
    assert info.objects == ("nucleus",) and info.object_classes == (1,)
    # its border bands belong to the nuclei: label() gives them back
    assert info.labelling == {"border": "border"} and info.border_classes == (2,)
    assert "labelling rule: border pixels given back" in r.output


def test_train_states_a_labelling_rule_that_export_keeps_and_can_override(
    folder: Path, tmp_path: Path
):
    ck = tmp_path / "ruled.pt"
    args = [str(folder), "-o", str(ck), "--labels", "instances", "--target", "three-class"]
    code, out = train(
        [*args, "--classes", "bg,nucleus,edge", "--split", "watershed", "--min-size", "12"]
    )
    assert code == 0, out
    r = CliRunner().invoke(main, ["export", str(ck), "-o", str(tmp_path / "a.onnx")])
    assert r.exit_code == 0, r.output
    stated = {"split": "watershed", "min_size": "12px", "border": "edge"}
    assert metadata.read(tmp_path / "a.onnx").labelling == stated
    assert "labelling rule: split watershed, min size 12px, edge pixels given back" in r.output
    r = CliRunner().invoke(
        main, ["export", str(ck), "-o", str(tmp_path / "b.onnx"), "--split", "none"]
    )
    assert r.exit_code == 0, r.output
    assert metadata.read(tmp_path / "b.onnx").labelling == {**stated, "split": "none"}
    code, out = train([str(folder), "-o", str(tmp_path / "x.pt"), "--min-size", "ten"])
    assert code == 2 and "got 'ten'" in out


def test_class_names_from_classes_txt_and_classes_overrides(folder: Path, tmp_path: Path):
    (folder / "classes.txt").write_text("background\nnucleus\n")
    try:
        code, out = train([str(folder), "-o", str(tmp_path / "c.pt")])
        assert code == 0, out
        assert "class names from" in out
        from unet_edge.training import checkpoint as ckpt

        assert ckpt.load(tmp_path / "c.pt").class_names == ("background", "nucleus")
        code, out = train([str(folder), "-o", str(tmp_path / "d.pt"), "--classes", "bg,cell"])
        assert code == 0 and "class names from" not in out
        assert ckpt.load(tmp_path / "d.pt").class_names == ("bg", "cell")
    finally:
        (folder / "classes.txt").unlink()


def test_instances_read_as_classes_are_refused_by_value(folder: Path, tmp_path: Path):
    code, out = train([str(folder), "-o", str(tmp_path / "e.pt"), "--labels", "classes"])
    assert code != 0 and "class indices" in out


def test_wrong_number_of_names_for_the_target_is_refused(folder: Path, tmp_path: Path):
    code, out = train(
        [
            str(folder),
            "-o",
            str(tmp_path / "f.pt"),
            "--labels",
            "instances",
            "--target",
            "three-class",
            "--classes",
            "bg,cell",
        ]
    )
    assert code != 0 and "three-class" in out


def test_fine_tuning_from_the_shipped_nuclei_checkpoint(folder: Path, tmp_path: Path):
    from unet_edge.training import checkpoint as ckpt
    from unet_edge.training.loop import init_checkpoint

    shipped = init_checkpoint("nuclei")
    assert shipped.name == "checkpoint.pt" and shipped.parent.name == "nuclei"
    out = tmp_path / "tuned.pt"
    r = CliRunner().invoke(
        main,
        [
            "train",
            str(folder),
            "-o",
            str(out),
            "--init",
            "nuclei",
            "--steps",
            "2",
            "--tile",
            "124",
            "--threads",
            "1",
            "--exposure",
            "0",
        ],
    )
    assert r.exit_code == 0, r.output
    tuned = ckpt.load(out)
    assert tuned.class_names == ("background", "nucleus")  # kept from the shipped model
    assert tuned.config == ckpt.load(shipped).config
