"""The CLI end to end: export -> run -> outputs; errors are one line and exit non-zero."""

from __future__ import annotations

import shutil
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


def test_export_then_run_on_isbi(
    runner: CliRunner, tiny_ckpt: Path, isbi: Path, tmp_path: Path
) -> None:
    ck = tmp_path / "ck.pt"
    shutil.copy(tiny_ckpt, ck)
    r = runner.invoke(main, ["export", str(ck)])
    assert r.exit_code == 0, r.output
    assert "parity with PyTorch" in r.output
    model = tmp_path / "ck.onnx"
    assert model.is_file()
    img = isbi / "train" / "image" / "03.png"
    out = tmp_path / "out"
    r = runner.invoke(
        main,
        [
            "run",
            "--provider",
            "cpu",
            "--model",
            str(model),
            str(img),
            "-o",
            str(out),
            "--overlay",
            "--probabilities",
            "--tile",
            "300",
        ],
    )
    assert r.exit_code == 0, r.output
    mask = io.read_image(out / "03_mask.png")
    assert mask.shape == (512, 512) and set(np.unique(mask)) <= {0, 255}
    assert io.read_image(out / "03_overlay.png").shape == (512, 512, 3)
    probs = io.read_image(out / "03_probabilities.tif")
    assert probs.shape == (2, 512, 512) and probs.dtype == np.float32
    assert io.read_provenance(out / "03_probabilities.tif")["model_file"] == "ck.onnx"
    # a second run refuses to overwrite, before any compute, and changes nothing
    before = (out / "03_mask.png").stat().st_mtime_ns
    line = one_line_error(runner.invoke(main, ["run", "-m", str(model), str(img), "-o", str(out)]))
    assert line.endswith("exists and overwriting was not asked for; pass --overwrite to replace it")
    assert (out / "03_mask.png").stat().st_mtime_ns == before
    r = runner.invoke(main, ["run", "-m", str(model), str(img), "-o", str(out), "--overwrite"])
    assert r.exit_code == 0, r.output


def test_version(runner: CliRunner) -> None:
    r = runner.invoke(main, ["--version"])
    assert r.exit_code == 0 and "unet-edge" in r.output


def test_every_command_has_short_help_and_example(runner: CliRunner) -> None:
    top = runner.invoke(main, ["--help"])
    commands = top.output.split("Commands:")[1]
    assert top.exit_code == 0 and "..." not in commands
    flat = " ".join(commands.split())
    for name, cmd in main.commands.items():
        assert cmd.short_help, name
        assert " ".join(cmd.short_help.split()) in flat, name  # in full, maybe wrapped
        r = runner.invoke(main, [name, "--help"])
        assert r.exit_code == 0 and "Example" in r.output and f"unet-edge {name}" in r.output


def test_model_option_everywhere(runner: CliRunner) -> None:
    for name in ("run", "info", "bench", "evaluate", "quantize"):
        r = runner.invoke(main, [name, "--help"])
        assert "-m, --model NAME|FILE" in r.output and "isbi2012" in r.output, name


def test_cli_imports_neither_torch_nor_training_loop(imports_none_of) -> None:
    imports_none_of("import unet_edge.cli", "torch")
