"""Bad input files through the CLI and the API: each a typed error or exit code, one line
naming the file or argument, and nothing left in the output folder (no partial file, no
temporary file, not even a new empty folder).

Every case runs twice: ``unet-edge run`` through click's CliRunner and
:func:`unet_edge.segment_file`. Damaged files are built here by corrupting
real files (tifffile, OpenCV) or by writing headers byte by byte.
"""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from unet_edge import io
from unet_edge.cli import main
from unet_edge.errors import (
    ImageReadError,
    InputError,
    OutputError,
    OutputExistsError,
    UnetEdgeError,
)
from unet_edge.io import atomic
from unet_edge.paths import files
from unet_edge.runtime import Segmenter

RNG = np.random.default_rng(7)
IMAGE = RNG.integers(0, 256, (60, 70), dtype=np.uint8)


# -- builders: each writes one bad input into a folder and returns what to pass ----------
def _png(folder: Path, name: str = "x.png", image: np.ndarray = IMAGE) -> Path:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    path = folder / name
    path.write_bytes(buf.tobytes())
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_bytes(width: int, height: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def _bytes(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return make


def _edited(name: str, edit: Callable[[bytearray], None]) -> Callable[[Path], Path]:
    """A real file of ``name``'s format, then ``edit`` applied to its bytes."""

    def make(folder: Path) -> Path:
        path = folder / name
        if path.suffix in (".png", ".jpg", ".bmp"):
            _, buf = cv2.imencode(path.suffix, IMAGE)
            data = bytearray(buf.tobytes())
        else:
            tifffile.imwrite(path, IMAGE)
            data = bytearray(path.read_bytes())
        edit(data)
        path.write_bytes(bytes(data))
        return path

    return make


def _cut(fraction: float) -> Callable[[bytearray], None]:
    def edit(data: bytearray) -> None:
        del data[int(len(data) * fraction) :]

    return edit


def _flip_idat(data: bytearray) -> None:
    data[data.find(b"IDAT") + 20] ^= 0xFF


def _flip_idat_fix_crc(data: bytearray) -> None:
    i = data.find(b"IDAT")
    n = struct.unpack(">I", data[i - 4 : i])[0]
    data[i + 20] ^= 0xFF
    data[i + 4 + n : i + 8 + n] = struct.pack(">I", zlib.crc32(bytes(data[i : i + 4 + n])))


def _scramble_jpeg(data: bytearray) -> None:
    for k in range(400, min(len(data) - 4, 1400), 37):
        data[k] ^= 0x5A


def _stack(
    folder: Path, name: str, damage: Callable[[bytearray, list[int]], None], shaped: bool = False
) -> Path:
    """A 3-page uint16 TIFF stack (generic or tifffile "shaped"), then ``damage``."""
    path = folder / name
    stack = RNG.integers(0, 4096, (3, 40, 50), dtype=np.uint16)
    tifffile.imwrite(path, stack, photometric="minisblack", metadata={} if shaped else None)
    with tifffile.TiffFile(path) as tf:
        offsets = [p.offset for p in tf.pages]
    data = bytearray(path.read_bytes())
    damage(data, offsets)
    path.write_bytes(bytes(data))
    return path


def _third_ifd_garbage(data: bytearray, offsets: list[int]) -> None:
    data[offsets[2] : offsets[2] + 2] = b"\xff\xff"  # 65535 tags


def _next_pointer(to: Callable[[bytearray, list[int]], int]) -> Callable[..., None]:
    """Point page 2's next-IFD offset somewhere else."""

    def damage(data: bytearray, offsets: list[int]) -> None:
        n = struct.unpack("<H", data[offsets[1] : offsets[1] + 2])[0]
        at = offsets[1] + 2 + 12 * n
        data[at : at + 4] = struct.pack("<I", to(data, offsets))

    return damage


def _damaged_stack(**kw: Any) -> Callable[[Path], Path]:
    damage = kw.pop("damage")
    return lambda folder: _stack(folder, "stack.tif", damage, **kw)


def _imagej_says_two(folder: Path) -> Path:
    """Three pages, but ImageJ's description says two slices (tifffile would read two)."""
    path = folder / "imagej.tif"
    stack = RNG.integers(0, 4096, (3, 40, 50), dtype=np.uint16)
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZYX"})
    data = path.read_bytes().replace(b"images=3", b"images=2").replace(b"slices=3", b"slices=2")
    path.write_bytes(data)
    return path


def _tiff_bytes(width: int, height: int, data: bytes, compression: int = 1) -> bytes:
    """A one-strip 8-bit grayscale TIFF whose header says ``width`` x ``height``."""
    tags = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, 8),
        (259, 3, compression),
        (262, 3, 1),
        (273, 4, 8 + 2 + 9 * 12 + 4),
        (277, 3, 1),
        (278, 4, height),
        (279, 4, len(data)),
    ]
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        ifd += struct.pack("<HHI", tag, kind, 1)
        ifd += struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00\x00\x00\x00" + data


def _mixed_sizes(folder: Path) -> Path:
    path = folder / "mixed.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(np.zeros((40, 50), np.uint8))
        tw.write(np.zeros((41, 50), np.uint8))
    return path


def _tif(name: str, array: np.ndarray) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        tifffile.imwrite(folder / name, array, photometric="minisblack")
        return folder / name

    return make


def _temporary(folder: Path) -> Path:
    tmp = folder / f".x_mask.tif{io.TEMP_MARK}abcd-99999999-0123abcd.tif"
    tifffile.imwrite(tmp, IMAGE)
    return tmp


def _folder_named_png(folder: Path) -> Path:
    (folder / "dir.png").mkdir()
    return folder / "dir.png"


def _zero_png_bomb(width: int, height: int) -> Callable[[Path], Path]:
    """An all-zero 8-bit PNG (876 KB for 30000 x 30000): deflate blocks ended by a full
    flush do not depend on what came before, so one block of 10 rows is repeated."""

    def make(folder: Path) -> Path:
        rows = bytes((width + 1) * 10)  # a filter byte and a zero row, ten times
        z = zlib.compressobj(9)
        first = z.compress(rows) + z.flush(zlib.Z_FULL_FLUSH)  # with the zlib header
        again = z.compress(rows) + z.flush(zlib.Z_FULL_FLUSH)
        end = z.flush()[:-4]  # the last (empty) block; the checksum is for all the data
        adler = (len(rows) * (height // 10) % 65521) << 16 | 1  # Adler-32 of zeros
        idat = first + again * (height // 10 - 1) + end + struct.pack(">I", adler)
        path = folder / "bomb.png"
        path.write_bytes(_png_bytes(width, height, idat))
        return path

    return make


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, what the API raises and the CLI says."""

    make: Callable[[Path], Path]
    error: type[UnetEdgeError]
    match: str
    args: tuple[str, ...] = ()  # extra CLI arguments
    kwargs: dict[str, Any] = field(default_factory=dict)  # the same for segment_file
    code: int = 1
    names: str | None = None  # what the line must name (default: the input file)


CASES: dict[str, Case] = {
    # -- not there, not an image ---------------------------------------------------------
    "missing": Case(lambda f: f / "missing.png", ImageReadError, "does not exist"),
    "empty-png": Case(_bytes("empty.png", b""), ImageReadError, "empty"),
    "text-as-png": Case(_bytes("text.png", b"not an image\n" * 4), ImageReadError, "not a PNG"),
    "gif-suffix": Case(_bytes("anim.gif", b"GIF89a" + bytes(30)), ImageReadError, "supported"),
    "folder-named-png": Case(_folder_named_png, InputError, "contains no images"),
    "temporary-file": Case(_temporary, InputError, "temporary file of an interrupted"),
    # -- damaged PNG / JPEG / BMP (the decoder's own words go into our line, not stderr) -
    "png-truncated": Case(_edited("cut.png", _cut(0.5)), ImageReadError, "truncated"),
    "png-header-cut": Case(
        _bytes("hdr.png", b"\x89PNG\r\n\x1a\n\x00\x00"), ImageReadError, "header cannot be read"
    ),
    "png-idat-crc": Case(_edited("crc.png", _flip_idat), ImageReadError, "libpng error"),
    "png-idat-zlib": Case(
        _edited("zlib.png", _flip_idat_fix_crc), ImageReadError, "incorrect data check"
    ),
    "png-zero-width": Case(
        _bytes("zero.png", _png_bytes(0, 10, zlib.compress(b""))), ImageReadError, "empty image"
    ),
    "png-bomb-30000": Case(
        _zero_png_bomb(30000, 30000),
        InputError,
        r"needs about 19\.3 GiB .* save it as a TIFF",
    ),
    "png-claims-40000": Case(
        _bytes("claims.png", _png_bytes(40000, 40000, zlib.compress(b"\x00" * 100))),
        ImageReadError,
        "1600 megapixels .* limit of 1000 megapixels",
    ),
    "png-over-max-pixels": Case(
        _edited("small.png", lambda d: None),
        ImageReadError,
        "70 x 60 = 4200 pixels per image, more than the limit of 1000 pixels",
        args=("--max-pixels", "1000"),
        kwargs={"max_pixels": 1000},
    ),
    "jpeg-truncated": Case(_edited("cut.jpg", _cut(0.5)), ImageReadError, "decoded as JPG"),
    "jpeg-corrupt-data": Case(
        _edited("noise.jpg", _scramble_jpeg), ImageReadError, "Corrupt JPEG data"
    ),
    "jpeg-no-frame": Case(
        _bytes("nosof.jpg", b"\xff\xd8\xff\xe0\x00\x04ab\xff\xd9"),
        ImageReadError,
        "header cannot be read",
    ),
    "jpeg-ends-before-frame": Case(
        _bytes("cutapp.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF"), ImageReadError, "header"
    ),
    "bmp-truncated": Case(_edited("cut.bmp", _cut(0.5)), ImageReadError, "decoded as BMP"),
    "bmp-header-cut": Case(_bytes("short.bmp", b"BM\x00\x01"), ImageReadError, "header"),
    # -- TIFF: never a page dropped, never data beyond the file ------------------------
    "tiff-garbage": Case(_bytes("bad.tif", b"II*\x00garbage"), ImageReadError, "not a readable"),
    "tiff-header-cut": Case(_bytes("hdr.tif", b"II*\x00"), ImageReadError, "cut short"),
    "tiff-page3-damaged": Case(
        _damaged_stack(damage=_third_ifd_garbage), ImageReadError, r"page 3 \(index 2\)"
    ),
    "tiff-page3-damaged-shaped": Case(
        _damaged_stack(damage=_third_ifd_garbage, shaped=True),
        ImageReadError,
        r"page 3 \(index 2\)",
    ),
    "tiff-page3-beyond-eof": Case(
        _damaged_stack(damage=_next_pointer(lambda d, o: len(d) + 1000)),
        ImageReadError,
        r"page 3 \(index 2\) .*beyond",
    ),
    "tiff-ifd-loop": Case(
        _damaged_stack(damage=_next_pointer(lambda d, o: o[0])),
        ImageReadError,
        r"page 3 \(index 2\) .*loops back",
    ),
    "tiff-imagej-describes-fewer-pages": Case(
        _imagej_says_two, ImageReadError, r"page 3 \(index 2\) .*metadata describes 2"
    ),
    "tiff-truncated": Case(_edited("cut.tif", _cut(0.5)), ImageReadError, "truncated"),
    "tiff-truncated-large": Case(
        _edited("cutl.tif", _cut(0.5)),
        ImageReadError,
        "truncated",
        args=("--large",),
        kwargs={"large": True},
    ),
    "tiff-claims-200000": Case(
        _bytes("lies.tif", _tiff_bytes(200000, 200000, bytes(64))),
        ImageReadError,
        "header lies",
    ),
    "tiff-claims-200000-large": Case(
        _bytes("liesl.tif", _tiff_bytes(200000, 200000, bytes(64))),
        ImageReadError,
        "header lies",
        args=("--large",),
        kwargs={"large": True},
    ),
    "tiff-compressed-claims-40000": Case(
        _bytes("zclaims.tif", _tiff_bytes(40000, 40000, zlib.compress(bytes(4096)), 8)),
        ImageReadError,
        "1600 megapixels",
    ),
    "tiff-mixed-page-sizes": Case(_mixed_sizes, ImageReadError, "different sizes"),
    "tiff-stack-large": Case(
        _tif("s.tif", np.zeros((2, 30, 30), np.uint8)),
        InputError,
        "not a stack",
        args=("--large",),
        kwargs={"large": True},
    ),
    "tiff-stack-over-memory": Case(
        _tif("s.tif", np.zeros((2, 30, 30), np.uint8)),
        InputError,
        "split it into one TIFF per slice",
        args=("--memory-limit", "1k"),
        kwargs={"memory_limit": 1024},
    ),
    "tiff-overlay-over-memory": Case(
        _tif("o.tif", IMAGE),
        InputError,
        "writes the mask, labels and object table only",
        args=("--memory-limit", "1k", "--overlay"),
        kwargs={"memory_limit": 1024, "overlay": True},
    ),
    # -- readable, but not pixels a model takes -----------------------------------------
    "tiff-uint32": Case(_tif("u32.tif", IMAGE.astype(np.uint32)), InputError, "pixel type uint32"),
    "tiff-complex": Case(
        _tif("c.tif", IMAGE.astype(np.complex64)), InputError, "pixel type complex64"
    ),
    "tiff-float-nan": Case(
        _tif("nan.tif", np.full((30, 30), np.nan, np.float32)), InputError, "NaN"
    ),
    "png-colour-for-gray-model": Case(
        lambda f: _png(f, "rgb.png", np.full((30, 30, 3), (200, 0, 0), np.uint8)),
        InputError,
        "1 channel",
    ),
    "large-on-png": Case(
        lambda f: _png(f), InputError, "is not a TIFF", args=("--large",), kwargs={"large": True}
    ),
}


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(tiny_onnx)


def _leftovers(out: Path) -> list[str]:
    """Anything in the output folder: after a failed single input there must be nothing."""
    return sorted(p.name for p in out.rglob("*")) if out.exists() else []


def _one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize("front", ["cli", "api"])
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, front: str, seg: Segmenter, tiny_onnx: Path, tmp_path: Path) -> None:
    case = CASES[name]
    src = tmp_path / "in"
    src.mkdir()
    bad = case.make(src)
    out = tmp_path / "out"
    if front == "cli":
        r = CliRunner().invoke(
            main, ["run", "-m", str(tiny_onnx), str(bad), "-o", str(out), *case.args]
        )
        assert r.exit_code == case.code, r.output
        message = _one_line(r.output)
        assert message.startswith("Error: ")
    else:
        with pytest.raises(case.error) as e:
            if name in ("missing", "folder-named-png", "temporary-file", "large-on-png"):
                files.plan_files([bad], out, **case.kwargs)  # decided while planning
            else:
                files.segment_file(seg, bad, out, **case.kwargs)
        message = _one_line(str(e.value))
    assert re.search(case.match, message), message
    assert bad.name in message
    assert _leftovers(out) == []


def test_at_least_35_bad_inputs() -> None:
    assert len(CASES) >= 35


def test_libpng_says_nothing_on_stderr(
    seg: Segmenter, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    bad = _edited("zlib.png", _flip_idat_fix_crc)(tmp_path)
    fds = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").is_dir() else None
    for _ in range(20):
        with pytest.raises(ImageReadError, match="incorrect data check"):
            io.read_image(bad)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    if fds is not None:  # no descriptor leaks from redirecting fd 2
        assert len(os.listdir("/proc/self/fd")) == fds
    # fd 2 works again afterwards, and a good file reads as before
    assert io.read_image(_png(tmp_path)).shape == IMAGE.shape


def test_output_under_a_file(tiny_onnx: Path, tmp_path: Path) -> None:
    img = _png(tmp_path)
    (tmp_path / "afile").write_text("x")
    r = CliRunner().invoke(
        main, ["run", "-m", str(tiny_onnx), str(img), "-o", str(tmp_path / "afile" / "out")]
    )
    assert r.exit_code == 1
    line = _one_line(r.output)
    assert "afile" in line and ("Not a directory" in line or "is a file" in line)
    with pytest.raises(OutputError, match="afile"):
        files.segment_file(Segmenter(tiny_onnx), img, tmp_path / "afile" / "out")
    assert (tmp_path / "afile").read_text() == "x"


def test_existing_output_untouched(tiny_onnx: Path, tmp_path: Path) -> None:
    img = _png(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "x_mask.png").write_bytes(b"old")
    r = CliRunner().invoke(main, ["run", "-m", str(tiny_onnx), str(img), "-o", str(out)])
    assert r.exit_code == 1 and "x_mask.png exists" in _one_line(r.output)
    with pytest.raises(OutputExistsError):
        files.segment_file(Segmenter(tiny_onnx), img, out)
    assert _leftovers(out) == ["x_mask.png"] and (out / "x_mask.png").read_bytes() == b"old"


def test_max_pixels_raised_lets_a_real_image_through(seg: Segmenter, tmp_path: Path) -> None:
    img = _png(tmp_path)
    with pytest.raises(ImageReadError, match="limit of 100 pixels") as e:
        files.segment_file(seg, img, tmp_path / "o", max_pixels=100)
    assert e.value.option == "max_pixels"
    assert files.segment_file(seg, img, tmp_path / "o", max_pixels=0).outputs
    old = io.MAX_PIXELS
    try:
        io.MAX_PIXELS = 100  # the process-wide setting
        with pytest.raises(ImageReadError, match="limit of 100 pixels"):
            io.read_image(img)
    finally:
        io.MAX_PIXELS = old


def test_batch_goes_on_and_lists_failures(tiny_onnx: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _png(src, "a.png")
    _edited("b.png", _flip_idat_fix_crc)(src)  # fails while decoding
    _damaged_stack(damage=_third_ifd_garbage)(src)  # fails at the header check
    _png(src, "c.png")
    (src / ".hidden.png").write_bytes(b"not even an image")  # never an input
    _temporary(src)  # never an input
    runner = CliRunner()
    r = runner.invoke(main, ["run", "-m", str(tiny_onnx), str(src), "-o", str(out)])
    assert r.exit_code == 3, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 3, r.output
    assert "stack.tif" in errors[0] and "page 3" in errors[0]  # header checks come first
    assert "b.png" in errors[1]
    assert errors[2].startswith("Error: 2 of 4 inputs failed:")
    assert _leftovers(out) == ["a_mask.png", "c_mask.png"]
    # --fail-fast stops at the first failure (the header check, before any compute)
    out2 = tmp_path / "out2"
    r = runner.invoke(main, ["run", "-m", str(tiny_onnx), str(src), "-o", str(out2), "--fail-fast"])
    assert r.exit_code == 1 and "stack.tif" in _one_line(r.output)
    assert not out2.exists()
    # every input failing is exit 1, and no folder is made
    out3 = tmp_path / "out3"
    r = runner.invoke(
        main,
        ["run", "-m", str(tiny_onnx), str(src / "b.png"), str(src / "stack.tif"), "-o", str(out3)],
    )
    assert r.exit_code == 1 and "all 2 inputs failed" in r.output.splitlines()[-1]
    assert not out3.exists()


def test_exit_codes_in_help() -> None:
    r = CliRunner().invoke(main, ["run", "--help"])
    assert r.exit_code == 0
    for code in ("0    every", "1    error", "2    usage", "3    some inputs failed", "130  "):
        assert f"  {code}" in r.output
    assert "143 SIGTERM" in r.output


def test_stale_temporaries_removed_only_when_their_process_is_gone(tmp_path: Path) -> None:
    dead_pid = subprocess.Popen([sys.executable, "-c", ""])
    dead_pid.wait()
    other_host = f"{(int(atomic._HOST, 16) + 1) % 65536:04x}"
    names = {
        "dead": f".a_mask.tif{io.TEMP_MARK}{atomic._HOST}-{dead_pid.pid}-0123abcd.tif",
        "alive": f".b_mask.tif{io.TEMP_MARK}{atomic._HOST}-{os.getpid()}-0123abcd.tif",
        "elsewhere": f".c_mask.tif{io.TEMP_MARK}{other_host}-{dead_pid.pid}-0123abcd.tif",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    removed, kept = io.clean_stale_temporaries(tmp_path)
    assert [p.name for p in removed] == [names["dead"]]
    assert sorted(p.name for p in kept) == sorted([names["alive"], names["elsewhere"]])
    with pytest.raises(InputError, match="matches no files"):  # hidden: never inputs
        io.collect_inputs([str(tmp_path / "*.tif")])


def test_live_temporaries_are_registered_and_removable(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="disappeared"), io.atomic_path(tmp_path / "m.png") as tmp:
        tmp.write_bytes(b"half a file")
        assert io.is_temporary(tmp) and tmp.name.startswith(".m.png.unet-edge-tmp-")
        assert tmp in io.remove_temporaries()  # what a signal handler does
        assert not tmp.exists()
    assert list(tmp_path.iterdir()) == [] and io.remove_temporaries() == []


def test_run_restores_signal_handlers(tiny_onnx: Path, tmp_path: Path) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    args = ["run", "-m", str(tiny_onnx), str(_png(tmp_path)), "-o", str(tmp_path / "o")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert {s: signal.getsignal(s) for s in before} == before


def test_jpeg_header_found_after_long_segments(tmp_path: Path) -> None:
    """ICC profiles and EXIF can put the frame header far into the file (here 180 KB)."""
    _, buf = cv2.imencode(".jpg", IMAGE)
    app2 = b"\xff\xe2" + struct.pack(">H", 60000) + bytes(59998)
    path = tmp_path / "icc.jpg"
    path.write_bytes(buf.tobytes()[:2] + app2 * 3 + buf.tobytes()[2:])
    assert io.image_header(path).shape == IMAGE.shape == io.read_image(path).shape
