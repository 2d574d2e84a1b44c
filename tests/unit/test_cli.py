"""The CLI end to end: export -> run -> outputs; errors are one line and exit non-zero."""

from __future__ import annotations

import ast
import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import unet_edge
from unet_edge import io
from unet_edge.cli import HINTS, error_line, main
from unet_edge.engines import select
from unet_edge.errors import OutputExistsError, ProviderError
from unet_edge.training.config import TrainConfig


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
    assert line.endswith("exists and overwriting was not asked for; pass --overwrite to replace it")
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
        ("rgb", ["rgb.png"], "colour image, but the model takes 1 channel"),
        (None, ["x.png", "--tile", "570"], "use 556 or 572"),
        (None, ["x.png", "--large"], "is not a TIFF; run non-TIFF inputs and --probabilities"),
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
    r = runner.invoke(main, ["info", "-m", str(tiny_onnx)])
    assert r.exit_code == 0, r.output
    assert "halo 92 px" in r.output and "188->4" in r.output and "cpu       works" in r.output
    r = runner.invoke(main, ["info", "--model", str(tiny_onnx), "--json"])
    assert '"halo": 92' in r.output
    r = runner.invoke(main, ["info"])  # the shipped model
    assert r.exit_code == 0 and "default.onnx" in r.output, r.output


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


def test_provider_is_a_choice(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(main, ["run", "--help"])
    assert r.exit_code == 0 and "[auto|cpu|cuda|tensorrt|openvino]" in r.output
    r = runner.invoke(main, ["run", "x.png", "--provider", "cdua", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "'cdua' is not one of" in r.output
    assert not (tmp_path / "o").exists()


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
        assert "-m, --model FILE" in r.output and "the shipped" in r.output, name


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


def test_train_defaults_come_from_train_config(runner: CliRunner) -> None:
    r = runner.invoke(main, ["train", "--help"])
    assert r.exit_code == 0
    flat = " ".join(r.output.split())
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name in ("width", "depth", "tile", "steps", "lr", "seed", "val_every", "momentum"):
        assert f"--{name.replace('_', '-')}" in flat
        assert re.search(rf"--{name.replace('_', '-')} .*?\[default: {defaults[name]}[;\]]", flat)
    assert f"[default: {defaults['optimizer'].value}]" in flat


def test_cli_imports_neither_torch_nor_training_loop(imports_none_of) -> None:
    imports_none_of("import unet_edge.cli", "torch")


def test_hints_name_flags_messages_do_not() -> None:
    e = OutputExistsError("a.png exists and overwriting was not asked for", option="overwrite")
    assert error_line(e) == (
        "Error: a.png exists and overwriting was not asked for; pass --overwrite to replace it"
    )
    p = ProviderError("provider 'cuda' cannot run here.", option="provider")
    assert error_line(p).endswith("here. That is --provider cpu, or --provider auto.")
    assert error_line(OutputExistsError("plain")) == "Error: plain"
    # the library modules whose messages were made neutral name no flag
    flag = re.compile(r"--(overwrite|provider|large|tile|output|calibrate|memory|model)\b")
    root = Path(unet_edge.__file__).parent
    wings = [*(root / "io").glob("*.py"), *(root / "engines").glob("*.py")]
    for path in (*wings, root / "precision.py", root / "paths" / "files.py", root / "errors.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))
            and n.body
            and isinstance(n.body[0], ast.Expr)
        }
        strings = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
        ]
        for node in strings:
            assert not flag.search(node.value), (path.name, node.value)
    assert set(HINTS) >= {"overwrite", "output", "provider", "large"}


def test_memory_options(
    runner: CliRunner, tiny_onnx: Path, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    from unet_edge.cli.options import ByteSize

    size = ByteSize()
    assert [size.convert(v, None, None) for v in ("256MiB", "1G", "512", "64k")] == [
        256 << 20,
        1 << 30,
        512 << 20,
        64 << 10,
    ]
    img = tmp_path / "x.tif"
    io.write_tiff(img, isbi_image[:64, :64])
    out = tmp_path / "o"
    args = ["run", "-m", str(tiny_onnx), str(img), "-o", str(out), "--overlay"]
    line = one_line_error(runner.invoke(main, [*args, "--memory-limit", "64k"]))
    assert "writes the mask only" in line and line.endswith("that is --memory-limit SIZE")
    assert not out.exists()
    r = runner.invoke(main, [*args, "--memory-budget", "lots"])
    assert r.exit_code == 2 and "expected a size" in r.output
