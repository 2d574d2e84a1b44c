"""``unet-edge export``, ``quantize`` and ``package`` (unet_edge/cli/model.py): what is not
a model or a checkpoint is one line naming what it is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_line_error
from click.testing import CliRunner

from unet_edge import io
from unet_edge.cli import main


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def test_model_errors(runner: CliRunner, tmp_path: Path, tiny_ckpt: Path) -> None:
    io.write_png(tmp_path / "x.png", np.zeros((8, 8), np.uint8))
    line = one_line_error(
        runner.invoke(
            main, ["run", "-m", str(tiny_ckpt), str(tmp_path / "x.png"), "-o", str(tmp_path / "o")]
        )
    )
    assert "not an ONNX model" in line
    (tmp_path / "sd.pt").write_bytes(b"PK\x03\x04junk")
    assert "not a readable PyTorch checkpoint" in one_line_error(
        runner.invoke(main, ["export", str(tmp_path / "sd.pt")])
    )


def test_export_refuses_an_existing_output_before_loading_anything(
    runner: CliRunner, tmp_path: Path
) -> None:
    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"not read: the output is checked first")
    (tmp_path / "ck.onnx").write_bytes(b"an earlier export")
    line = one_line_error(runner.invoke(main, ["export", str(ck)]))  # default: CHECKPOINT.onnx
    assert line == (
        f"Error: {tmp_path / 'ck.onnx'} exists and overwriting was not asked for; "
        "pass --overwrite to replace it"
    )
    assert (tmp_path / "ck.onnx").read_bytes() == b"an earlier export"


def test_quantize_never_writes_over_its_model(
    runner: CliRunner, tiny_onnx: Path, tmp_path: Path
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx.read_bytes())
    io.write_png(tmp_path / "c.png", np.zeros((8, 8), np.uint8))
    args = ["quantize", "-m", str(model), "-c", str(tmp_path / "c.png")]
    line = one_line_error(runner.invoke(main, [*args, "-o", str(model), "--overwrite"]))
    assert "is one of the inputs; inputs are never overwritten" in line
    assert line.endswith("choose another -o/--output")
    (tmp_path / "m.int8.onnx").write_bytes(b"earlier")  # the default output name
    assert "pass --overwrite" in one_line_error(runner.invoke(main, args))
    assert model.read_bytes() == tiny_onnx.read_bytes()


def test_quantize_options_are_checked_by_the_command_line(runner: CliRunner) -> None:
    r = runner.invoke(main, ["quantize", "-c", "x.png", "--threshold", "0"])
    assert r.exit_code == 2 and "0<x<=1" in r.output
    r = runner.invoke(main, ["quantize", "-c", "x.png", "--weight-bits", "4"])
    assert r.exit_code == 2 and "'4' is not one of '7', '8'" in r.output
    r = runner.invoke(main, ["quantize", "-c", "x.png", "-p", "cuda"])
    assert r.exit_code == 2 and "'cuda' is not one of" in r.output
    assert runner.invoke(main, ["quantize"]).exit_code == 2  # --calibrate is required


def test_export_states_a_labelling_rule_that_label_follows(
    runner: CliRunner, tmp_path: Path, tiny_ckpt: Path
) -> None:
    from unet_edge import Segmenter, metadata

    out = tmp_path / "ruled.onnx"
    args = ["export", str(tiny_ckpt), "-o", str(out), "--no-domain"]
    r = runner.invoke(main, [*args, "--split", "watershed", "--min-size", "12"])
    assert r.exit_code == 0, r.output
    assert "labelling rule: split watershed, min size 12px" in r.output
    assert metadata.read(out).labelling == {"split": "watershed", "min_size": "12px"}
    plain = tmp_path / "plain.onnx"
    assert (
        runner.invoke(main, ["export", str(tiny_ckpt), "-o", str(plain), "--no-domain"]).exit_code
        == 0
    )
    assert metadata.read(plain).labelling == {}
    image = np.zeros((64, 64), np.uint8)
    image[8:20, 8:20] = 255
    image[40:42, 40:42] = 255  # 4 px: under the stated minimum
    ruled = Segmenter(out).label(image)
    assert np.array_equal(ruled, Segmenter(out).label(image, split="watershed", min_size=12))
    bad = runner.invoke(main, [*args, "--overwrite", "--min-size", "-3"])
    assert bad.exit_code == 2 and "Invalid value for '--min-size'" in bad.output
