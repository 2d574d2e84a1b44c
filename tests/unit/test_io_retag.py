"""io/retag.py: provenance known only after the last strip goes into a striped TIFF before it
is renamed into place (ImageJ hyperstack and OME-TIFF), pixels and calibration untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.errors import OutputError
from unet_edge.imagemeta import Calibration
from unet_edge.io.retag import replace_provenance


@pytest.mark.parametrize("ome", [False, True])
def test_late_provenance_is_written_with_the_strips(tmp_path: Path, ome: bool) -> None:
    bands = [np.full((16, 40), i, np.uint8) for i in range(4)]
    seen: list[int] = []

    def late() -> dict[str, object]:
        seen.append(len(bands))  # called once, after the bands
        reason = 'a "quoted" <tag> & ' + "x" * 3000  # longer than what was there
        return {"quality": [{"score": 7.5, "reason": reason}]}

    path = tmp_path / "m.tif"
    cal = Calibration(0.5, 0.5, "µm")
    prov = {"software": "t", "quality": None}
    io.write_tiff_strips(path, iter(bands), (64, 40), 16, prov, calibration=cal, ome=ome, late=late)
    assert seen == [4]
    got = io.read_provenance(path)
    assert got["software"] == "t" and got["quality"][0]["score"] == 7.5
    assert got["quality"][0]["reason"].startswith('a "quoted" <tag> & xxx')
    np.testing.assert_array_equal(tifffile.imread(path), np.concatenate(bands))
    found = io.read_calibration(path)
    assert found is not None and found.x == pytest.approx(0.5)
    with tifffile.TiffFile(path) as tf:  # still what ImageJ or Bio-Formats opens
        assert tf.is_imagej != ome and tf.is_ome == ome
        assert not list(tmp_path.glob("*.tmp*"))


def test_a_failing_late_provenance_leaves_no_file(tmp_path: Path) -> None:
    def late() -> dict[str, object]:
        raise RuntimeError("scoring failed")

    bands = [np.zeros((8, 8), np.uint8)]
    with pytest.raises(RuntimeError, match="scoring failed"):
        io.write_tiff_strips(tmp_path / "m.tif", bands, (8, 8), 8, {"a": 1}, late=late)
    assert list(tmp_path.iterdir()) == []


def test_a_tiff_without_unet_edge_provenance_is_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(OutputError, match="holds no unet-edge provenance"):
        replace_provenance(tmp_path / "plain.tif", {"a": 1})


def test_real_imagej_reads_the_replaced_provenance(tmp_path: Path) -> None:
    """ImageJ 1.x (no Bio-Formats) reads the Info property moved to the file's end."""
    import json
    import subprocess

    from imagej_runner import imagej_command

    command = imagej_command("IjProbe.java")  # skips without Java and ImageJ
    bands = [np.full((16, 40), i * 50, np.uint8) for i in range(4)]

    def late() -> dict[str, object]:
        return {"quality": [{"score": 7.5, "reason": "x" * 3000}]}

    cal = Calibration(0.5, 0.5, "µm")
    path = io.write_tiff_strips(
        tmp_path / "m.tif", bands, (64, 40), 16, {"quality": None}, calibration=cal, late=late
    )
    proc = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = next(line.split("\t") for line in proc.stdout.splitlines() if "\t" in line)
    assert row[0] == "OPENED" and row[2:4] == ["40", "64"] and float(row[9]) == 0.5
    assert json.loads(row[-1])["quality"][0]["score"] == 7.5  # Image > Show Info
