"""``unet-edge run`` and ``unet-edge info`` (unet_edge/cli/run.py): inputs, folders, globs and
stacks in, outputs out; every error one line, non-zero, with no partial output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_line_error
from click.testing import CliRunner

from unet_edge import io
from unet_edge.cli import main
from unet_edge.engines import select


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def test_run_folder_glob_and_tiff_stack(
    runner: CliRunner, tiny_onnx: Path, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    io.write_png(src / "a.png", isbi_image[:64, :80])
    stack = np.stack([isbi_image[:40, :50]] * 3).astype(np.uint16) * 257
    io.write_tiff(src / "s.tif", stack)
    r = runner.invoke(
        main, ["run", "-m", str(tiny_onnx), str(src), "-o", str(tmp_path / "o"), "-q"]
    )
    assert r.exit_code == 0, r.output
    assert r.output == ""
    assert io.read_image(tmp_path / "o" / "a_mask.png").shape == (64, 80)
    assert io.read_image(tmp_path / "o" / "s_mask.tif").shape == (3, 40, 50)
    r = runner.invoke(
        main, ["run", "-m", str(tiny_onnx), str(src / "*.png"), "-o", str(tmp_path / "o2")]
    )
    assert r.exit_code == 0 and (tmp_path / "o2" / "a_mask.png").is_file()


@pytest.mark.parametrize(
    ("setup", "args", "match"),
    [
        (None, ["missing.png"], "does not exist"),
        ("empty", ["empty.png"], "empty"),
        ("text", ["text.png"], "not a PNG"),
        ("rgb", ["rgb.png"], "but the model takes 1 channel; convert it to grey"),
        (None, ["x.png", "--tile", "570"], "use 556 or 572"),
        (None, ["x.png", "--large"], "is not a TIFF; run non-TIFF inputs, --probabilities"),
    ],
)
def test_run_errors(
    runner: CliRunner,
    tiny_onnx: Path,
    tmp_path: Path,
    setup: str | None,
    args: list[str],
    match: str,
) -> None:
    if setup == "empty":
        (tmp_path / "empty.png").write_bytes(b"")
    elif setup == "text":
        (tmp_path / "text.png").write_text("not an image")
    elif setup == "rgb":
        io.write_png(tmp_path / "rgb.png", np.full((8, 8, 3), (200, 0, 0), np.uint8))
    io.write_png(tmp_path / "x.png", np.zeros((8, 8), np.uint8))
    args = [str(tmp_path / a) if a.endswith(".png") else a for a in args]
    out = tmp_path / "out"
    r = runner.invoke(main, ["run", "-m", str(tiny_onnx), *args, "-o", str(out)])
    assert match in one_line_error(r)
    assert not out.exists() or list(out.iterdir()) == []  # no partial output


def test_cuda_without_cuda_fails_clearly(
    runner: CliRunner, tiny_onnx: Path, tmp_path: Path
) -> None:
    if select.unavailable_reason("cuda") is None:
        pytest.skip("CUDA works here")
    io.write_png(tmp_path / "x.png", np.zeros((8, 8), np.uint8))
    r = runner.invoke(
        main,
        [
            "run",
            "--provider",
            "cuda",
            "-m",
            str(tiny_onnx),
            str(tmp_path / "x.png"),
            "-o",
            str(tmp_path / "out"),
        ],
    )
    line = one_line_error(r)
    assert "cuda" in line and "cannot run" in line
    assert not (tmp_path / "out").exists()


def test_info(runner: CliRunner, tiny_onnx: Path) -> None:
    r = runner.invoke(main, ["info", "-m", str(tiny_onnx)])
    assert r.exit_code == 0, r.output
    assert "halo 92 px" in r.output and "188->4" in r.output and "cpu       works" in r.output
    r = runner.invoke(main, ["info", "--model", str(tiny_onnx), "--json"])
    assert '"halo": 92' in r.output
    r = runner.invoke(main, ["info"])  # the shipped model
    assert r.exit_code == 0 and "default.onnx" in r.output, r.output


def test_provider_is_a_choice(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(main, ["run", "--help"])
    assert r.exit_code == 0 and "[auto|cpu|cuda|tensorrt|openvino]" in r.output
    r = runner.invoke(main, ["run", "x.png", "--provider", "cdua", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "'cdua' is not one of" in r.output
    assert not (tmp_path / "o").exists()


def test_input_range_and_bit_depth(
    runner: CliRunner, tiny_onnx: Path, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    img = tmp_path / "x.tif"
    io.write_tiff(img, isbi_image[:64, :64].astype(np.uint16) * 16)  # 12-bit data
    base = ["run", "-m", str(tiny_onnx), str(img), "--probabilities", "-q"]
    r = runner.invoke(main, [*base, "-o", str(tmp_path / "a"), "--bit-depth", "12"])
    assert r.exit_code == 0, r.output
    prov = io.read_provenance(tmp_path / "a" / "x_probabilities.tif")
    assert prov["input_range"] == [0, 4095] and len(prov["normalization"]) == 1
    r = runner.invoke(main, [*base, "-o", str(tmp_path / "b"), "--input-range", "0,4095"])
    assert r.exit_code == 0, r.output
    assert io.read_provenance(tmp_path / "b" / "x_mask.tif")["input_range"] == [0, 4095]
    r = runner.invoke(main, [*base, "-o", str(tmp_path / "c"), "--bit-depth", "12",
                             "--input-range", "0,4095"])  # fmt: skip
    assert r.exit_code == 2 and "exclude each other" in r.output
    r = runner.invoke(main, [*base, "-o", str(tmp_path / "c"), "--input-range", "5,1"])
    assert r.exit_code == 2 and "LO < HI" in r.output
    assert not (tmp_path / "c").exists()


def test_memory_options(
    runner: CliRunner, tiny_onnx: Path, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    img = tmp_path / "x.tif"
    io.write_tiff(img, isbi_image[:64, :64])
    out = tmp_path / "o"
    args = ["run", "-m", str(tiny_onnx), str(img), "-o", str(out), "--overlay"]
    line = one_line_error(runner.invoke(main, [*args, "--memory-limit", "64k"]))
    assert "writes the mask, labels and object table only" in line
    assert line.endswith("that is --memory-limit SIZE")
    assert not out.exists()
    r = runner.invoke(main, [*args, "--memory-budget", "lots"])
    assert r.exit_code == 2 and "expected a size" in r.output
