"""segment_file / plan_files: in memory or window by window, output planning, nothing partial."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

import unet_edge
from unet_edge import io, processing
from unet_edge.cli import main
from unet_edge.errors import ImageReadError, InputError, OutputError, OutputExistsError
from unet_edge.paths import files
from unet_edge.paths.windowed import segment_large
from unet_edge.runtime import Segmenter


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    # The shipped model with a tile smaller than the slice, so that both paths stitch tiles.
    return Segmenter(tile=300)


@pytest.fixture()
def slice_tif(isbi_image: np.ndarray, tmp_path: Path) -> Path:
    """ISBI 2012 slice 20 (512x512, uint8) as a TIFF."""
    path = tmp_path / "in" / "slice20.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, isbi_image)
    return path


def test_windowed_equals_in_memory_on_isbi_slice(
    seg: Segmenter, slice_tif: Path, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    mem = files.segment_file(seg, slice_tif, tmp_path / "mem", large=False)
    win = files.segment_file(seg, slice_tif, tmp_path / "win", large=True)
    assert not mem.windowed and win.windowed
    assert mem.outputs == {"mask": tmp_path / "mem" / "slice20_mask.tif"}
    a, b = io.read_image(mem.outputs["mask"]), io.read_image(win.outputs["mask"])
    assert a.shape == (512, 512) and set(np.unique(a)) == {0, 255}
    assert np.array_equal(a, b)
    assert np.array_equal(a, processing.mask_to_image(seg.segment(isbi_image), 2))
    for r in (mem, win):  # the provenance returned is the one written
        assert dict(r.provenance) == io.read_provenance(r.outputs["mask"])
        assert r.provenance["source"] == "slice20.tif" and len(r.provenance["normalization"]) == 1
        assert r.provenance["model_sha256"] == seg.provenance()["model_sha256"]
    with pytest.raises(FrozenInstanceError):
        mem.windowed = True  # type: ignore[misc]


def test_windowed_automatically_above_memory_limit(
    seg: Segmenter, slice_tif: Path, tmp_path: Path
) -> None:
    small = files.segment_file(seg, slice_tif, tmp_path / "a", memory_limit=1 << 20)
    assert small.windowed and "tile_plan" in small.provenance
    assert not files.segment_file(seg, slice_tif, tmp_path / "b").windowed  # default limit
    # The windowed path writes the mask only: asking for more above the limit is refused
    with pytest.raises(InputError, match="mask") as e:
        files.segment_file(seg, slice_tif, tmp_path / "c", overlay=True, memory_limit=1 << 20)
    assert e.value.option == "memory_limit" and not (tmp_path / "c").exists()
    # PNGs and stacks cannot be windowed: above the limit they are refused, before any compute
    png = tmp_path / "x.png"
    io.write_png(png, io.read_image(slice_tif)[:64, :64])
    with pytest.raises(InputError, match=r"x\.png needs about 92 KiB .* save it as a TIFF") as e:
        files.segment_file(seg, png, tmp_path / "d", memory_limit=1)
    assert e.value.option == "memory_limit" and not (tmp_path / "d").exists()
    assert not files.segment_file(seg, png, tmp_path / "d").windowed


def test_png_with_all_outputs_and_stack(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    png = tmp_path / "crop.png"
    io.write_png(png, isbi_image[:80, :96])
    r = files.segment_file(seg, png, tmp_path / "o", probabilities=True, overlay=True)
    assert set(r.outputs) == {"mask", "probabilities", "overlay"}
    assert io.read_image(r.outputs["mask"]).shape == (80, 96)
    assert r.outputs["mask"].suffix == ".png"
    assert io.read_image(r.outputs["overlay"]).shape == (80, 96, 3)
    probs = io.read_image(r.outputs["probabilities"])
    assert probs.shape == (2, 80, 96) and probs.dtype == np.float32
    assert io.read_provenance(r.outputs["probabilities"])["normalization"] == list(
        r.provenance["normalization"]
    )
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.stack([isbi_image[:40, :50]] * 3), photometric="minisblack")
    with pytest.raises(InputError, match="split it into one TIFF per slice"):
        files.segment_file(seg, stack, tmp_path / "o", memory_limit=1)
    s = files.segment_file(seg, stack, tmp_path / "o")
    assert io.read_image(s.outputs["mask"]).shape == (3, 40, 50)
    assert len(s.provenance["normalization"]) == 3 and not s.windowed


def test_plan_files_checks_every_output_before_any_compute(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a.png", "b.png"):
        io.write_png(src / name, np.zeros((8, 8), np.uint8))
    tifffile.imwrite(src / "a.tif", np.zeros((8, 8), np.uint8))
    plans = files.plan_files([src], out, probabilities=False)
    assert [p.input.name for p in plans] == ["a.png", "a.tif", "b.png"]
    assert plans[1].outputs == {"mask": out / "a_mask.tif"}
    plans = files.plan_files([src / "a.tif"], out, overlay=True)
    assert plans[0].outputs == {"mask": out / "a_mask.tif", "overlay": out / "a_overlay.png"}
    with pytest.raises(InputError, match="would both write") as e:  # a.png, a.tif -> a_overlay
        files.plan_files([src], out, overlay=True, overwrite=True)
    assert e.value.option == "output"
    out.mkdir()
    (out / "b_mask.png").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match=r"b_mask\.png exists") as e2:
        files.plan_files([src / "a.png", src / "b.png"], out)
    assert e2.value.option == "overwrite" and "--" not in str(e2.value)
    assert (out / "b_mask.png").read_bytes() == b"old"
    files.plan_files([src / "b.png"], out, overwrite=True)
    # an input is never an output, even with overwrite
    io.write_png(src / "a_mask.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(OutputExistsError, match="one of the inputs"):
        files.plan_files([src / "a.png", src / "a_mask.png"], src, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        files.plan_files([src / "a.png"], tmp_path / "file")


def test_forced_windowed_takes_tiff_and_mask_only(tmp_path: Path) -> None:
    io.write_png(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match=r"a\.png is not a TIFF") as e:
        files.plan_files([tmp_path / "a.png"], tmp_path / "o", large=True)
    assert e.value.option == "large"
    with pytest.raises(InputError, match="probabilities"):
        files.plan_files([tmp_path / "a.tif"], tmp_path / "o", large=True, probabilities=True)
    assert files.plan_files([tmp_path / "a.tif"], tmp_path / "o", large=True)


def test_nothing_written_on_failure(
    seg: Segmenter, isbi_image: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    bad = tmp_path / "bad.png"
    io.write_png(bad, isbi_image[:64, :64])
    bad.write_bytes(bad.read_bytes()[:-12])  # no IEND chunk
    with pytest.raises(ImageReadError, match="truncated"):
        files.segment_file(seg, bad, out, probabilities=True)
    assert not out.exists()  # not even the folder
    good = tmp_path / "good.png"
    io.write_png(good, isbi_image[:64, :64])

    def broken(*args: object) -> np.ndarray:
        raise OSError("disk full")

    monkeypatch.setattr(processing, "overlay", broken)  # fails after mask and probabilities
    with pytest.raises(OSError, match="disk full"):
        files.segment_file(seg, good, out, probabilities=True, overlay=True)
    assert not out.exists()  # the folder it made is removed again, empty


def test_exported_lazily_from_package() -> None:
    assert {"segment_file", "plan_files", "FileResult"} <= set(unet_edge.__all__)
    assert unet_edge.segment_file is files.segment_file
    code = "import sys, unet_edge; assert 'onnxruntime' not in sys.modules; unet_edge.segment_file"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- data flows one way: each input opened once for its header, once for its pixels

_COUNTERS: list[tuple[str, list[str]]] = []  # (real path, opens seen) of the counting blocks


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    # "open" is raised by every open of a file by name: open(), io.open, os.open, numpy,
    # tifffile; memory maps of a file already open raise no "open".
    if event != "open" or not _COUNTERS or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    name = os.path.realpath(os.fsdecode(args[0]))
    for path, seen in _COUNTERS:
        if name == path:
            seen.append(str(args[1]))


sys.addaudithook(_on_audit)  # hooks cannot be removed: this one is idle outside the blocks


@contextlib.contextmanager
def _opens_of(path: Path) -> Iterator[list[str]]:
    """The mode of each open of ``path`` inside the block, however it is made."""
    entry: tuple[str, list[str]] = (os.path.realpath(path), [])
    _COUNTERS.append(entry)
    try:
        yield entry[1]
    finally:
        _COUNTERS.remove(entry)


def _tiff(tmp_path: Path, compressed: bool = False) -> Path:
    """A 150 x 130 uint16 TIFF (tiled and zlib-compressed: read through zarr when windowed)."""
    path = tmp_path / "in" / "img.tif"
    path.parent.mkdir()
    image = np.random.default_rng(3).integers(0, 4096, (150, 130), dtype=np.uint16)
    kwargs = {"compression": "zlib", "tile": (64, 64)} if compressed else {}
    tifffile.imwrite(path, image, **kwargs)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize(
    "flags", [[], ["--large"], ["--large", "zarr"]], ids=["in-memory", "windowed", "zarr"]
)
def test_run_opens_a_tiff_twice(tiny_onnx: Path, tmp_path: Path, flags: list[str]) -> None:
    if "zarr" in flags:
        pytest.importorskip("zarr", reason="compressed TIFFs are windowed through zarr")
    src = _tiff(tmp_path, compressed="zarr" in flags)
    args = ["run", str(src), "-o", str(tmp_path / "out"), "-m", str(tiny_onnx)]
    with _opens_of(src) as opens:
        r = CliRunner().invoke(main, [*args, *flags[:1]])
    assert r.exit_code == 0, r.output
    assert len(opens) == 2, opens  # its header before any compute, then its pixels
    assert (tmp_path / "out" / "img_mask.tif").is_file()


def test_windowed_path_opens_its_source_once(tiny_onnx: Path, tmp_path: Path) -> None:
    src = _tiff(tmp_path)
    seg = Segmenter(tiny_onnx)
    with _opens_of(src) as opens:
        out = segment_large(seg, src, tmp_path / "mask.tif")
    assert len(opens) == 1, opens  # header, calibration and every window from one open
    with _opens_of(src) as opens:
        r = files.segment_file(seg, src, tmp_path / "o", large=True)
    assert len(opens) == 2, opens  # the header checked first, then the windows
    assert r.provenance == io.read_provenance(r.outputs["mask"])  # handed on, not read back
    assert np.array_equal(io.read_image(out), io.read_image(r.outputs["mask"]))


def test_a_file_changed_after_its_check_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    src = _tiff(tmp_path)
    seg = Segmenter(tiny_onnx)
    (plan,) = files.plan_files([src], tmp_path / "out")
    check = files.preflight(seg, plan)
    assert check.plan == plan and check.header == io.image_header(src) and not check.windowed
    tifffile.imwrite(src, np.zeros((90, 80), np.uint16))  # replaced between check and read
    with pytest.raises(ImageReadError, match=r"changed since its header was checked"):
        files.segment_checked(seg, check)
    assert not (tmp_path / "out").exists()
