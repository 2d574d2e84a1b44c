"""All file I/O of the runtime: images in, masks and probabilities out.

One module per verb, their public names re-exported here:

- :mod:`~unet_edge.io.headers`: what a header says (:class:`ImageHeader`),
  parsed without decoding a pixel; magic bytes, the TIFF page walk, the pixel
  limit :data:`MAX_PIXELS`;
- :mod:`~unet_edge.io.read`: each input opened once (:func:`open_image`), its
  header checked, then its calibration and pixels from that open
  (:func:`read_file`, :func:`read_image`); calibration and provenance of outputs;
- :mod:`~unet_edge.io.write`: PNG and TIFF (ImageJ hyperstack, OME-TIFF) writers;
- :mod:`~unet_edge.io.windows`: windows of a TIFF larger than memory
  (:class:`TiffWindows`) and the mask written strip by strip (:func:`write_tiff_strips`);
- :mod:`~unet_edge.io.atomic`: every write to a temporary file, renamed when
  complete; the registry of temporary files and their clean-up;
- :mod:`~unet_edge.io.inputs`: input specs expanded to files, outputs checked.

``unet_edge.io.MAX_PIXELS`` is the process-wide pixel limit: setting it here sets
the one the header checks read (:data:`unet_edge.io.headers.MAX_PIXELS`).
"""

from __future__ import annotations

import sys
import types

from . import headers
from .atomic import (
    TEMP_MARK,
    atomic_path,
    clean_stale_temporaries,
    is_temporary,
    remove_temporaries,
)
from .headers import MAX_PIXELS, OPENCV_SUFFIXES, SUFFIXES, TIFF_SUFFIXES, ImageHeader
from .inputs import as_path, check_output, collect_inputs
from .read import (
    Image,
    OpenImage,
    image_header,
    is_stack,
    open_image,
    read_calibration,
    read_file,
    read_image,
    read_provenance,
    read_tiff_lazy,
)
from .windows import BIGTIFF_ABOVE, TiffWindows, write_tiff_strips
from .write import write_labels, write_png, write_tiff

__all__ = [
    "BIGTIFF_ABOVE",
    "MAX_PIXELS",
    "OPENCV_SUFFIXES",
    "SUFFIXES",
    "TEMP_MARK",
    "TIFF_SUFFIXES",
    "Image",
    "ImageHeader",
    "OpenImage",
    "TiffWindows",
    "as_path",
    "atomic_path",
    "check_output",
    "clean_stale_temporaries",
    "collect_inputs",
    "image_header",
    "is_stack",
    "is_temporary",
    "open_image",
    "read_calibration",
    "read_file",
    "read_image",
    "read_provenance",
    "read_tiff_lazy",
    "remove_temporaries",
    "write_labels",
    "write_png",
    "write_tiff",
    "write_tiff_strips",
]


class _Io(types.ModuleType):
    """This package, whose ``MAX_PIXELS`` is the one in :mod:`~unet_edge.io.headers`.

    The limit is a documented process-wide setting (``unet_edge.io.MAX_PIXELS = N``)
    but is read where the headers are checked; a property on the module's class
    makes both names one value (the copy imported above is shadowed by it).
    """

    @property
    def MAX_PIXELS(self) -> int | None:
        """Most pixels one image plane may have (:data:`unet_edge.io.headers.MAX_PIXELS`)."""
        return headers.MAX_PIXELS

    @MAX_PIXELS.setter
    def MAX_PIXELS(self, value: int | None) -> None:
        headers.MAX_PIXELS = value


sys.modules[__name__].__class__ = _Io
