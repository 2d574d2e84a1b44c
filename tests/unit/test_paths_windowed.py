"""Large images: window-by-window output equals the in-memory path; provenance; bad outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from unet_edge import io, processing
from unet_edge.cli import main
from unet_edge.errors import InputError, OutputError
from unet_edge.paths.windowed import segment_large
from unet_edge.runtime import Segmenter
from unet_edge.tiling import mirror_index


@pytest.fixture(scope="module")
def big16(isbi: Path) -> np.ndarray:
    """A 1500x1300 uint16 mosaic of real ISBI frames (12-bit range, flipped copies)."""
    frames = [io.read_image(isbi / "train" / "image" / f"{i:02d}.png") for i in range(6)]
    rows = [
        np.hstack([frames[3 * r], frames[3 * r + 1][:, ::-1], frames[3 * r + 2]]) for r in range(2)
    ]
    mosaic = np.vstack([*rows, rows[0][::-1]])[:1500, :1300]
    return mosaic.astype(np.uint16) * 16


@pytest.mark.parametrize(
    ("start", "stop", "size"), [(-5, 12, 7), (-20, 30, 7), (-92, 3, 1), (3, 40, 40), (-10, 60, 50)]
)
def test_mirror_index_matches_numpy_symmetric(start: int, stop: int, size: int) -> None:
    x = np.arange(size)
    before, after = max(0, -start), max(0, stop - size)
    ref = np.pad(x, (before, after), mode="symmetric")[start + before : stop + before]
    assert np.array_equal(x[mirror_index(start, stop, size)], ref)


@pytest.mark.parametrize(("tile", "compressed"), [(None, False), (300, True)])
def test_large_equals_in_memory(
    tiny_onnx: Path, big16: np.ndarray, tmp_path: Path, tile: int | None, compressed: bool
) -> None:
    if compressed:  # read window by window through tifffile's zarr store
        pytest.importorskip("zarr", reason="compressed TIFFs need zarr (the [dask] extra)")
    src = tmp_path / "big.tif"
    tifffile.imwrite(
        src,
        big16,
        compression="zlib" if compressed else None,
        tile=(256, 256) if compressed else None,
    )
    seg = Segmenter(tiny_onnx, tile=tile)
    ref = processing.mask_to_image(seg.segment(big16), seg.info.classes)
    seen: list[tuple[int, int]] = []
    out = segment_large(seg, src, tmp_path / "mask.tif", progress=lambda d, t: seen.append((d, t)))
    got = tifffile.imread(out)
    assert got.dtype == np.uint8 and np.array_equal(got, ref)
    assert seen and seen[-1][0] == seen[-1][1] == len(seen)
    with tifffile.TiffFile(out) as tf:  # strips of whole rows, top to bottom: ImageJ 1.x reads it
        page = tf.pages.first
        assert not page.is_tiled and tf.is_imagej
        assert len(page.dataoffsets) == -(-big16.shape[0] // page.rowsperstrip) > (tile is not None)
        assert list(page.dataoffsets) == sorted(page.dataoffsets)
    prov = io.read_provenance(out)
    sp = seg.provenance()
    for key in ("model_name", "model_sha256", "provider", "precision", "tile", "software"):
        assert prov[key] == sp[key]
    assert prov["software"].startswith("unet-edge ") and len(prov["model_sha256"]) == 64
    assert prov["source"] == "big.tif" and "TilePlan" in prov["tile_plan"]
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob(".*tmp*"))


def test_small_and_rgb_images(rgb_onnx: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    img = rng.integers(0, 65535, (37, 3), dtype=np.uint16)  # smaller than one tile and the halo
    tifffile.imwrite(tmp_path / "small.tif", img)
    seg = Segmenter(tiny_onnx)
    got = tifffile.imread(segment_large(seg, tmp_path / "small.tif", tmp_path / "s.tif"))
    assert np.array_equal(got, processing.mask_to_image(seg.segment(img), 2))
    rgb = rng.integers(0, 256, (300, 211, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    seg3 = Segmenter(rgb_onnx)
    got = tifffile.imread(segment_large(seg3, tmp_path / "rgb.tif", tmp_path / "r.tif"))
    assert np.array_equal(got, seg3.segment(rgb))  # 3 classes: class indices


def test_output_folder_vanishes_mid_run(tiny_onnx: Path, big16: np.ndarray, tmp_path: Path) -> None:
    src = tmp_path / "big.tif"
    tifffile.imwrite(src, big16[:700, :900])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    seg = Segmenter(tiny_onnx, tile=300)

    def vanish(done: int, total: int) -> None:
        if done == 2:
            shutil.rmtree(out_dir)

    with pytest.raises(OutputError, match="disappeared"):
        segment_large(seg, src, out_dir / "mask.tif", progress=vanish)
    assert not out_dir.exists()
    with pytest.raises(OutputError, match="does not exist"):
        segment_large(seg, src, tmp_path / "missing" / "mask.tif")


def test_stack_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    tifffile.imwrite(
        tmp_path / "stack.tif", np.zeros((3, 40, 50), np.uint16), photometric="minisblack"
    )
    with pytest.raises(InputError, match="stack"):
        segment_large(Segmenter(tiny_onnx), tmp_path / "stack.tif", tmp_path / "m.tif")


def test_cli_large(tiny_onnx: Path, big16: np.ndarray, tmp_path: Path) -> None:
    src = tmp_path / "big.tif"
    tifffile.imwrite(src, big16[:600, :500])
    out = tmp_path / "out"
    r = CliRunner().invoke(
        main,
        ["run", str(src), "-o", str(out), "--model", str(tiny_onnx), "--tile", "300", "--large"],
    )
    assert r.exit_code == 0, r.output
    got = tifffile.imread(out / "big_mask.tif")
    seg = Segmenter(tiny_onnx, tile=300)
    assert np.array_equal(got, processing.mask_to_image(seg.segment(big16[:600, :500]), 2))
    assert (
        io.read_provenance(out / "big_mask.tif")["model_sha256"] == seg.provenance()["model_sha256"]
    )
    r = CliRunner().invoke(
        main,
        [
            "run",
            str(src),
            "-o",
            str(out),
            "--model",
            str(tiny_onnx),
            "--large",
            "--overlay",
            "--overwrite",
        ],
    )
    assert r.exit_code != 0 and "--large" in r.output
