"""``unet-edge train`` and ``evaluate`` (unet_edge/cli/training.py): train, export and score
on ISBI; errors one line; the defaults are TrainConfig's."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from cli_helpers import one_line_error
from click.testing import CliRunner

from unet_edge.cli import main
from unet_edge.training.config import TrainConfig


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def test_train_then_evaluate(runner: CliRunner, isbi: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    ck = tmp_path / "t.pt"
    args = [
        "train",
        str(isbi / "train"),
        "-o",
        str(ck),
        "--width",
        "2",
        "--depth",
        "2",
        "--tile",
        "124",
        "--steps",
        "4",
        "--val",
        "24",
        "--val-every",
        "2",
        "--train-names",
        "00,01",
    ]
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "best checkpoint" in r.output and ck.is_file() and (tmp_path / "t.last.pt").is_file()
    assert "--overwrite" in one_line_error(runner.invoke(main, args))
    r = runner.invoke(main, ["export", str(ck)])
    assert r.exit_code == 0, r.output
    js = tmp_path / "scores.json"
    r = runner.invoke(
        main,
        [
            "evaluate",
            "-m",
            str(tmp_path / "t.onnx"),
            str(isbi / "train" / "image"),
            str(isbi / "train" / "label"),
            "--names",
            "23-24",
            "--json",
            str(js),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "2 image(s)" in r.output and "rand_error_expanded" in r.output
    import json

    scores = json.loads(js.read_text())
    assert set(scores["images"]) == {"23", "24"} and 0 <= scores["mean"]["pixel_error"] <= 1


def test_train_and_evaluate_errors(runner: CliRunner, tmp_path: Path, tiny_onnx: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    line = one_line_error(
        runner.invoke(
            main, ["evaluate", "-m", str(tiny_onnx), str(tmp_path / "img"), str(tmp_path / "lab")]
        )
    )
    assert "img" in line
    pytest.importorskip("torch")  # without the [train] extra, `train` says that instead
    assert "does not exist" in one_line_error(
        runner.invoke(main, ["train", str(tmp_path / "none"), "-o", str(tmp_path / "c.pt")])
    )


def test_train_defaults_come_from_train_config(runner: CliRunner) -> None:
    r = runner.invoke(main, ["train", "--help"])
    assert r.exit_code == 0
    flat = " ".join(r.output.split())
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name in ("width", "depth", "tile", "steps", "lr", "seed", "val_every", "momentum"):
        assert f"--{name.replace('_', '-')}" in flat
        assert re.search(rf"--{name.replace('_', '-')} .*?\[default: {defaults[name]}[;\]]", flat)
    assert f"[default: {defaults['optimizer'].value}]" in flat
