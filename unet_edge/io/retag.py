"""Replace the provenance of a TIFF just written, in place: for what is known only at the end.

A striped TIFF (:func:`unet_edge.io.write_tiff_strips`) has its tags, the
provenance among them, written before its first strip; what the windowed path
learns while it writes the strips (the image's quality against the model's
training data, :mod:`unet_edge.domain`) is put in afterwards, into the
temporary file, before it is renamed into place. Where
:func:`unet_edge.imagemeta.tiff_kwargs` put the provenance, it is replaced:

- ImageJ hyperstack: the ``Info`` property (tags IJMetadata and
  IJMetadataByteCounts, rewritten by tifffile, appended at the file's end when
  longer; the strips are not touched);
- OME-TIFF: the text of the MapAnnotation entry :data:`~unet_edge.imagemeta.PROVENANCE_KEY`
  in the OME-XML ImageDescription (replaced by ``tifffile.tiffcomment``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

import tifffile

from ..errors import OutputError
from ..imagemeta import PROVENANCE_KEY

#: The OME-XML element holding the provenance JSON (as ``imagemeta`` writes it).
_OME_ENTRY = re.compile(r'(<M K="' + re.escape(PROVENANCE_KEY) + r'">)(.*?)(</M>)', re.DOTALL)
#: Tag codes of ImageJ's metadata and its byte counts.
_IJ_TAGS = (50838, 50839)
#: The other entries of those tags, kept (unet-edge writes none of them today).
_IJ_KEPT = ("Labels", "Ranges", "LUTs", "Plot", "ROI", "Overlays", "Properties")


def replace_provenance(path: str | os.PathLike[str], provenance: Mapping[str, Any]) -> None:
    """Write ``provenance`` over the provenance of the unet-edge TIFF at ``path`` (first page).

    Only for a file being written (a temporary file): the change is in place.
    Raises :class:`~unet_edge.OutputError` for a TIFF without unet-edge provenance.
    """
    text = json.dumps(dict(provenance))  # ASCII, as imagemeta.tiff_kwargs writes it
    with tifffile.TiffFile(path, mode="r+") as tf:
        imagej = (tf.imagej_metadata or {}) if tf.is_imagej else {}
        if "Info" in imagej:
            tags = tf.pages.first.tags
            if not all(code in tags for code in _IJ_TAGS):
                raise OutputError(f"{path}: its ImageJ metadata tags are incomplete")
            kept = {k: v for k, v in imagej.items() if k in _IJ_KEPT}
            for code, dtype, _, value, _ in tifffile.imagej_metadata_tag(
                {**kept, "Info": text}, tf.byteorder
            ):
                tags[code].overwrite(value, dtype=dtype)
            return
        description = tf.pages.first.description if tf.is_ome else ""
    quoted = escape(text, {'"': "&quot;"})
    replaced, n = _OME_ENTRY.subn(lambda m: m[1] + quoted + m[3], description, count=1)
    if not n:
        raise OutputError(
            f"{path} holds no unet-edge provenance to replace (neither an ImageJ Info "
            "property nor an OME MapAnnotation); expected a file unet-edge is writing"
        )
    tifffile.tiffcomment(path, replaced.encode())  # UTF-8, as tifffile writes OME-XML (µm)
