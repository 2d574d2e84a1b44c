"""The CLI end to end: export -> run -> outputs; errors are one line and exit non-zero."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from unet_edge import io, providers
from unet_edge.cli import main


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error:")
    return lines[0]


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
    assert "--overwrite" in line
    assert (out / "03_mask.png").stat().st_mtime_ns == before
    r = runner.invoke(main, ["run", "-m", str(model), str(img), "-o", str(out), "--overwrite"])
    assert r.exit_code == 0, r.output


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
        ("rgb", ["rgb.png"], "3 channels"),
        (None, ["x.png", "--tile", "570"], "use 556 or 572"),
        (None, ["x.png", "--provider", "cdua"], "Did you mean 'cuda'"),
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
        io.write_png(tmp_path / "rgb.png", np.zeros((8, 8, 3), np.uint8))
    io.write_png(tmp_path / "x.png", np.zeros((8, 8), np.uint8))
    args = [str(tmp_path / a) if a.endswith(".png") else a for a in args]
    out = tmp_path / "out"
    r = runner.invoke(main, ["run", "-m", str(tiny_onnx), *args, "-o", str(out)])
    assert match in one_line_error(r)
    assert not out.exists() or list(out.iterdir()) == []  # no partial output


def test_cuda_without_cuda_fails_clearly(
    runner: CliRunner, tiny_onnx: Path, tmp_path: Path
) -> None:
    if providers.probe("cuda") is None:
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


def test_info(runner: CliRunner, tiny_onnx: Path) -> None:
    r = runner.invoke(main, ["info", str(tiny_onnx)])
    assert r.exit_code == 0, r.output
    assert "halo 92 px" in r.output and "188->4" in r.output and "cpu       works" in r.output
    r = runner.invoke(main, ["info", str(tiny_onnx), "--json"])
    assert '"halo": 92' in r.output


def test_version(runner: CliRunner) -> None:
    r = runner.invoke(main, ["--version"])
    assert r.exit_code == 0 and "unet-edge" in r.output


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
    assert "does not exist" in one_line_error(
        runner.invoke(main, ["train", str(tmp_path / "none"), "-o", str(tmp_path / "c.pt")])
    )
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    line = one_line_error(
        runner.invoke(
            main, ["evaluate", str(tiny_onnx), str(tmp_path / "img"), str(tmp_path / "lab")]
        )
    )
    assert "img" in line
