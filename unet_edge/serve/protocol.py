"""The wire format of ``unet-edge serve``: query parsing, body decoding, reply encoding.

Pure functions over bytes and strings (no sockets), so every rule is testable
without a server. A request body is either raw little-endian pixels
(``application/octet-stream``) described by ``shape`` and ``dtype`` in the
query, or an encoded image (``image/tiff``, ``image/png``); a TIFF's pixel size
comes from its metadata, read as ``unet-edge run`` reads it
(:func:`unet_edge.imagemeta.calibration_and_note`). Every refusal is a
:class:`~unet_edge.errors.RequestError` carrying the HTTP status to answer.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from urllib.parse import parse_qs

import numpy as np

from ..capture import captured
from ..errors import RequestError
from ..imagemeta import Calibration, calibration_and_note

#: Raw pixel dtypes a client may send, by query name: always little-endian on the wire.
DTYPES: dict[str, np.dtype] = {
    "uint8": np.dtype("<u1"),
    "uint16": np.dtype("<u2"),
    "int16": np.dtype("<i2"),
    "float32": np.dtype("<f4"),
}
#: What ``output=`` selects: the reply's dtype.
OUTPUTS = {"mask": "uint8", "probabilities": "float32", "labels": "uint32"}
RAW, TIFF, PNG = "application/octet-stream", "image/tiff", "image/png"
#: Most bytes one pixel of an encoded body may take (a TIFF of float32 with its header).
_ENCODED_BYTES_PER_PIXEL = 8


@dataclass(frozen=True)
class SegmentRequest:
    """What a ``POST /segment`` asks for, parsed from its query and headers (no body yet).

    ``shape`` is (H, W) or (Z, H, W) (None for an encoded body, which carries its own);
    ``dtype`` the raw pixels' little-endian dtype; ``output`` a key of :data:`OUTPUTS`;
    ``content_type`` one of :data:`RAW`, :data:`TIFF`, :data:`PNG`; ``pixel_size`` the
    image's pixel size in µm, to segment it at the model's (None: a TIFF's own, else as
    it is; ``"native"``: as it is, whatever a TIFF states).
    """

    content_type: str
    output: str = "mask"
    shape: tuple[int, ...] | None = None
    dtype: np.dtype | None = None
    pixel_size: float | str | None = None

    @property
    def expected_bytes(self) -> int | None:
        """The exact body length of a raw request (None for an encoded one)."""
        if self.shape is None or self.dtype is None:
            return None
        return math.prod(self.shape) * self.dtype.itemsize


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    if values is None:
        return None
    if len(values) != 1:
        raise RequestError(f"{key} given {len(values)} times; give it once")
    return values[0]


def parse_shape(text: str | None) -> tuple[int, ...]:
    """``"H,W"`` or ``"Z,H,W"`` as a tuple of positive ints; RequestError otherwise."""
    if text is None:
        raise RequestError("missing shape: a raw body needs ?shape=H,W (or Z,H,W for a stack)")
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or not all(p.isdigit() for p in parts) or len(parts) not in (2, 3):
        raise RequestError(
            f"shape {text[:40]!r} is not H,W or Z,H,W (positive integers), e.g. shape=512,512"
        )
    shape = tuple(int(p) for p in parts)
    if min(shape) < 1:
        raise RequestError(f"shape {text!r} has an empty axis; every size must be at least 1")
    return shape


def parse_request(target: str, content_type: str | None, max_pixels: int) -> SegmentRequest:
    """The :class:`SegmentRequest` of a request line's query and its Content-Type.

    Refuses (RequestError) an unknown dtype or output, a missing or malformed
    shape, a media type other than raw/TIFF/PNG, and a shape of more than
    ``max_pixels`` pixels (413).
    """
    query = parse_qs(target.partition("?")[2], keep_blank_values=True)
    unknown = sorted(set(query) - {"shape", "dtype", "output", "pixel_size"})
    if unknown:
        raise RequestError(
            f"unknown query parameter {unknown[0]!r}; known: shape, dtype, output, pixel_size"
        )
    output = _one(query, "output") or "mask"
    if output not in OUTPUTS:
        raise RequestError(f"unknown output {output[:40]!r}; expected one of {', '.join(OUTPUTS)}")
    pixel_size = parse_pixel_size(_one(query, "pixel_size"))
    media = (content_type or RAW).split(";")[0].strip().lower()
    if media in (TIFF, PNG):
        return SegmentRequest(media, output, pixel_size=pixel_size)
    if media != RAW:
        raise RequestError(
            f"unsupported Content-Type {media[:60]!r}; send {RAW}, {TIFF} or {PNG}", status=415
        )
    name = _one(query, "dtype") or "uint8"
    if name not in DTYPES:
        raise RequestError(f"unknown dtype {name[:40]!r}; expected one of {', '.join(DTYPES)}")
    shape = parse_shape(_one(query, "shape"))
    check_pixels(shape, max_pixels)
    return SegmentRequest(RAW, output, shape, DTYPES[name], pixel_size)


def parse_pixel_size(text: str | None) -> float | str | None:
    """``pixel_size=0.65`` (µm per pixel) as a positive finite float, ``pixel_size=native``
    as ``"native"`` (segment as it is); None when absent."""
    if text is None or text == "native":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise RequestError(
            f"pixel_size {text[:40]!r} is not a positive number of micrometres per pixel, "
            "e.g. pixel_size=0.65, or native"
        )
    return value


def check_pixels(shape: tuple[int, ...], max_pixels: int) -> None:
    """Refuse (413) an image of more than ``max_pixels`` pixels in all (0: no limit)."""
    if max_pixels and math.prod(shape) > max_pixels:
        raise RequestError(
            f"image of shape {shape} has {math.prod(shape)} pixels, more than this server's "
            f"limit of {max_pixels}; send smaller images or tiles",
            status=413,
        )


def check_length(request: SegmentRequest, length: str | None, max_pixels: int) -> int:
    """The body length from the Content-Length header, checked before the body is read:
    411 when missing, 400 when not a number or not what a raw shape and dtype need,
    413 when an encoded body is larger than ``max_pixels`` pixels could need."""
    if length is None:
        raise RequestError("missing Content-Length; send the body with its length", status=411)
    if not length.strip().isdigit():
        raise RequestError(f"Content-Length {length[:40]!r} is not a byte count")
    n = int(length)
    expected = request.expected_bytes
    if expected is not None and n != expected:
        assert request.dtype is not None  # a raw request has both
        raise RequestError(
            f"body of {n} bytes does not match shape {request.shape} of {request.dtype.name} "
            f"({expected} bytes); send exactly shape x itemsize bytes, little-endian"
        )
    if expected is None and max_pixels and n > max_pixels * _ENCODED_BYTES_PER_PIXEL + 4096:
        raise RequestError(
            f"body of {n} bytes is beyond this server's limit of {max_pixels} pixels",
            status=413,
        )
    if n == 0:
        raise RequestError("empty body; send the image's pixels")
    return n


@dataclass(frozen=True)
class Decoded:
    """What a body holds: ``image`` in native byte order ((H, W), (Z, H, W) or what the
    file holds), the pixel size a TIFF states (``calibration``, None: none, or one not
    taken) and why what it states was not taken (``note``, None: nothing dropped)."""

    image: np.ndarray
    calibration: Calibration | None = None
    note: str | None = None


def decode(request: SegmentRequest, body: bytes, max_pixels: int) -> np.ndarray:
    """The image a body holds, native byte order: (H, W), (Z, H, W) or what the file holds."""
    return decode_body(request, body, max_pixels).image


def decode_body(request: SegmentRequest, body: bytes, max_pixels: int) -> Decoded:
    """The image a body holds (:func:`decode`) and, for a TIFF, the pixel size it states."""
    if request.content_type == RAW:
        assert request.dtype is not None and request.shape is not None
        raw = np.frombuffer(body, request.dtype).reshape(request.shape)
        return Decoded(raw.astype(request.dtype.newbyteorder("="), copy=True))
    if request.content_type == PNG:
        return Decoded(_decode_png(body, max_pixels))
    return _decode_tiff(body, max_pixels)


def _decode_png(body: bytes, max_pixels: int) -> np.ndarray:
    import cv2

    # the size from the IHDR chunk before decoding: a small PNG can inflate to gigabytes
    if len(body) < 24 or body[:8] != b"\x89PNG\r\n\x1a\n" or body[12:16] != b"IHDR":
        raise RequestError("body is not a PNG image (no PNG signature and header)")
    width, height = struct.unpack(">II", body[16:24])
    check_pixels((height, width), max_pixels)
    # OpenCV decodes a truncated PNG in part and says so only on stderr: check the end here
    if body[-12:-4] != b"\0\0\0\0IEND":
        raise RequestError("body is not a readable PNG image (truncated: no IEND chunk)")
    with captured((2,), python=False):  # the library never prints; the decoder would
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise RequestError("body is not a readable PNG image (truncated or damaged)")
    if image.ndim == 3:  # OpenCV decodes colour as BGR(A); clients send RGB(A)
        code = cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    return np.asarray(image)


def _decode_tiff(body: bytes, max_pixels: int) -> Decoded:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(body)) as tif:
            series = tif.series[0]
            check_pixels(tuple(series.shape), max_pixels)
            image = np.asarray(series.asarray())
            return Decoded(image, *calibration_and_note(tif))  # as unet-edge run reads it
    except RequestError:
        raise
    except Exception as e:  # tifffile raises many kinds on damaged bytes
        raise RequestError(f"body is not a readable TIFF image: {str(e)[:120]}") from None


def encode(array: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """The reply body (C order, little-endian) and its headers (X-Shape, X-Dtype)."""
    wire = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
    headers = {
        "Content-Type": RAW,
        "X-Shape": ",".join(str(n) for n in array.shape),
        "X-Dtype": array.dtype.name,
    }
    return wire.tobytes(), headers
