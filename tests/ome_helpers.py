"""What an OME-TIFF says about its pixels, read back from the file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import tifffile


def ome_pixels(path: Path) -> dict[str, str]:
    """The attributes of the first image's ``Pixels`` element of an OME-TIFF."""
    with tifffile.TiffFile(path) as tf:
        pixels = ET.fromstring(tf.ome_metadata or "").find(".//{*}Image/{*}Pixels")
    assert pixels is not None
    return dict(pixels.attrib)
