"""Output paths are untrusted too: an existing output that is not a regular file (a FIFO, a
device, a socket, a folder, a link to one) is refused before any compute, with or without
overwriting, by every command and writer; errors writing standard output (a full device,
a closed pipe) are one line and a non-zero exit (unet_edge/io/inputs.py, io/atomic.py,
cli/__init__.py).

Each case asserts the exact outcome: exit code 1 and one ``Error:`` line naming the path,
the special file still what it was, and nothing else in the output folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from unet_edge import OutputError, io
from unet_edge.cli import _stdout_broken, main
from unet_edge.paths.files import segment_file
from unet_edge.runtime import Segmenter


def _fifo(path: Path) -> Callable[[], bool]:
    os.mkfifo(path)
    return lambda: stat.S_ISFIFO(os.stat(path).st_mode)


def _folder(path: Path) -> Callable[[], bool]:
    path.mkdir()
    return path.is_dir


def _socket(path: Path) -> Callable[[], bool]:
    s = socket.socket(socket.AF_UNIX)
    cwd = Path.cwd()
    os.chdir(path.parent)  # a socket's path must be short: bind it by its bare name
    try:
        s.bind(path.name)
    finally:
        os.chdir(cwd)
    s.close()
    return lambda: stat.S_ISSOCK(os.stat(path).st_mode)


def _device_link(path: Path) -> Callable[[], bool]:
    path.symlink_to("/dev/null")  # a character device, reached through a link
    return lambda: path.is_symlink() and stat.S_ISCHR(os.stat(path).st_mode)


def _fifo_link(path: Path) -> Callable[[], bool]:
    target = path.with_name("elsewhere.fifo")
    os.mkfifo(target)
    path.symlink_to(target.name)
    return lambda: path.is_symlink() and stat.S_ISFIFO(os.stat(path).st_mode)


SPECIAL = {
    "fifo": (_fifo, "a FIFO (named pipe)"),
    "folder": (_folder, "a folder"),
    "socket": (_socket, "a socket"),
    "device-link": (_device_link, "a character device"),
    "fifo-link": (_fifo_link, "a FIFO (named pipe)"),
}


def _image(folder: Path) -> Path:
    path = folder / "img.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (40, 50), np.uint8))
    return path


def _one_error(output: str, *parts: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    for part in parts:
        assert part in lines[0], (part, lines[0])
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize("overwrite", [False, True], ids=["keep", "overwrite"])
@pytest.mark.parametrize("kind", list(SPECIAL))
def test_run_refuses_a_special_output_before_compute(
    tiny_onnx: Path, tmp_path: Path, kind: str, overwrite: bool
) -> None:
    make, said = SPECIAL[kind]
    out = tmp_path / "out"
    out.mkdir()
    target = out / "img_mask.png"
    still = make(target)
    before = sorted(p.name for p in out.iterdir())
    args = ["run", str(_image(tmp_path)), "-m", str(tiny_onnx), "-o", str(out)]
    args += ["--probabilities", "--overlay"] + (["--overwrite"] if overwrite else [])
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    _one_error(r.output, str(target), f"exists and is {said}", "choose another -o/--output")
    assert still() and sorted(p.name for p in out.iterdir()) == before


def test_the_output_check_comes_before_the_model_is_opened(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _fifo(out / "img_mask.png")
    missing = tmp_path / "no-such-model.onnx"
    args = ["run", str(_image(tmp_path)), "-m", str(missing), "-o", str(out), "--overwrite"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1
    _one_error(r.output, "FIFO")  # not the missing model: nothing was loaded or computed


def test_a_regular_file_is_still_replaced_with_overwrite(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "img_mask.png").write_bytes(b"old")
    args = ["run", str(_image(tmp_path)), "-m", str(tiny_onnx), "-o", str(out), "--overwrite"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert (out / "img_mask.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("kind", list(SPECIAL))
def test_segment_file_refuses_it_with_a_typed_error(
    tiny_onnx: Path, tmp_path: Path, kind: str
) -> None:
    make, said = SPECIAL[kind]
    out = tmp_path / "out"
    out.mkdir()
    still = make(out / "img_mask.png")
    with pytest.raises(OutputError) as e:
        segment_file(Segmenter(tiny_onnx), _image(tmp_path), out, overwrite=True)
    assert e.value.option == "output" and f"exists and is {said}" in str(e.value)
    assert "\n" not in str(e.value) and still()


WRITERS: dict[str, Callable[[Path], object]] = {
    "png": lambda p: io.write_png(p, np.zeros((4, 4), np.uint8), {"a": 1}),
    "tiff": lambda p: io.write_tiff(p, np.zeros((4, 4), np.uint8), {"a": 1}, axes="YX"),
    "strips": lambda p: io.write_tiff_strips(p, iter([np.zeros((4, 4), np.uint8)]), (4, 4), 4),
}


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("kind", list(SPECIAL))
def test_every_writer_refuses_it(tmp_path: Path, kind: str, writer: str) -> None:
    make, said = SPECIAL[kind]
    target = tmp_path / ("out.png" if writer == "png" else "out.tif")
    still = make(target)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OutputError, match=re.escape(f"exists and is {said}")):
        WRITERS[writer](target)
    assert still() and sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_fifo_made_during_the_write_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "late.tif"
    with pytest.raises(OutputError, match="FIFO"), io.atomic_path(target) as tmp:
        tmp.write_bytes(b"result")
        os.mkfifo(target)  # another process, between the check and the rename
    assert stat.S_ISFIFO(os.stat(target).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["late.tif"]  # no temporary left


@pytest.mark.parametrize("kind", ["fifo", "device-link", "folder"])
def test_package_refuses_it_even_with_overwrite(tiny_onnx: Path, tmp_path: Path, kind: str) -> None:
    pytest.importorskip("bioimageio.spec")
    make, said = SPECIAL[kind]
    target = tmp_path / "model.zip"
    still = make(target)
    r = CliRunner().invoke(main, ["package", str(tiny_onnx), "-o", str(target), "--overwrite"])
    assert r.exit_code in (1, 2), r.output  # a folder: click refuses -o FILE itself (usage)
    assert "Traceback" not in r.output and still()
    if r.exit_code == 1:
        _one_error(r.output, str(target), f"exists and is {said}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"model.zip", "elsewhere.fifo"} & {p.name for p in tmp_path.iterdir()}
    )


@pytest.mark.parametrize("command", ["quantize", "export"])
def test_quantize_and_export_refuse_it(tiny_onnx: Path, tmp_path: Path, command: str) -> None:
    target = tmp_path / "model.int8.onnx"
    still = _fifo(target)
    if command == "quantize":
        args = ["quantize", "-m", str(tiny_onnx), "-c", str(_image(tmp_path)), "-o", str(target)]
    else:
        args = ["export", str(tmp_path / "any.pt"), "-o", str(target)]
    r = CliRunner().invoke(main, [*args, "--overwrite"])
    assert r.exit_code == 1, r.output
    _one_error(r.output, str(target), "exists and is a FIFO (named pipe)")
    assert still()


# -- standard output --------------------------------------------------------------------
def _cli(args: list[str], stdout: int) -> subprocess.CompletedProcess[bytes]:
    code = "from unet_edge.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], stdout=stdout, stderr=subprocess.PIPE, timeout=120
    )


@contextlib.contextmanager
def _closed_pipe() -> Iterator[int]:
    """The write end of a pipe whose read end is already closed (EPIPE on every write)."""
    r, w = os.pipe()
    os.close(r)
    try:
        yield w
    finally:
        os.close(w)


@pytest.mark.parametrize("args", [["info"], ["info", "--json"], ["--version"], ["run", "--help"]])
def test_stdout_on_a_full_device_is_one_line(args: list[str]) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "wb") as full:
        p = _cli(args, full.fileno())
    assert p.returncode == 1
    err = p.stderr.decode()
    assert err == "Error: cannot write to standard output: No space left on device\n", err


@pytest.mark.parametrize("args", [["info"], ["info", "--json"]])
def test_stdout_to_a_closed_pipe_is_one_line(args: list[str]) -> None:
    with _closed_pipe() as w:
        p = _cli(args, w)
    assert p.returncode == 1
    assert p.stderr.decode() == "Error: cannot write to standard output: Broken pipe\n"


def test_an_output_file_on_a_full_disk_is_not_called_stdout(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with pytest.raises(OSError) as e, open("/dev/full", "wb", buffering=0) as full:
        full.write(b"mask")
    assert e.value.errno == errno.ENOSPC and not _stdout_broken(e.value)
