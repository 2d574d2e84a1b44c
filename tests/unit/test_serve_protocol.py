"""unet_edge.serve.protocol: query parsing, length checks, body decoding, reply encoding."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import tifffile

from unet_edge.errors import RequestError
from unet_edge.serve import protocol as p


def test_raw_request_parses_shape_dtype_and_output() -> None:
    r = p.parse_request("/segment?shape=3,4,5&dtype=int16&output=labels", None, 1000)
    assert (r.shape, r.dtype, r.output) == ((3, 4, 5), np.dtype("<i2"), "labels")
    assert r.content_type == p.RAW
    assert r.expected_bytes == 120 and r.pixel_size is None
    assert p.parse_request("/segment?shape=2,2&pixel_size=0.65", None, 10).pixel_size == 0.65
    assert p.parse_request("/segment?pixel_size=1e-3", p.PNG, 10).pixel_size == 0.001


@pytest.mark.parametrize(
    ("target", "status", "words"),
    [
        ("/segment?dtype=uint8", 400, "missing shape"),
        ("/segment?shape=", 400, "is not H,W"),
        ("/segment?shape=4", 400, "is not H,W"),
        ("/segment?shape=1,2,3,4", 400, "is not H,W"),
        ("/segment?shape=-4,4", 400, "is not H,W"),
        ("/segment?shape=4,0", 400, "empty axis"),
        ("/segment?shape=4,4&dtype=float64", 400, "unknown dtype"),
        ("/segment?shape=4,4&shape=4,4", 400, "given 2 times"),
        ("/segment?shape=100,100", 413, "limit of 1000"),
        ("/segment?shape=4,4&output=x", 400, "unknown output"),
        ("/segment?shape=4,4&pixel_size=0", 400, "not a positive number"),
        ("/segment?shape=4,4&pixel_size=nan", 400, "not a positive number"),
        ("/segment?shape=4,4&pixel_size=um", 400, "not a positive number"),
        ("/segment?shape=4,4&pixel_size=", 400, "not a positive number"),
        ("/segment?shape=4,4&scale=2", 400, "unknown query parameter 'scale'"),
    ],
)
def test_bad_queries_name_what_was_wrong(target: str, status: int, words: str) -> None:
    with pytest.raises(RequestError, match=words) as caught:
        p.parse_request(target, "application/octet-stream", 1000)
    assert caught.value.status == status and isinstance(caught.value, ValueError)


def test_media_types() -> None:
    assert p.parse_request("/segment", "image/png", 10).content_type == p.PNG
    assert p.parse_request("/segment", "image/tiff; charset=x", 10).shape is None
    with pytest.raises(RequestError, match="unsupported Content-Type") as caught:
        p.parse_request("/segment?shape=2,2", "text/html", 10)
    assert caught.value.status == 415


def test_length_is_checked_from_the_header() -> None:
    raw = p.parse_request("/segment?shape=2,3&dtype=uint16", None, 100)
    assert p.check_length(raw, "12", 100) == 12
    for length, status, words in [
        (None, 411, "missing Content-Length"),
        ("x", 400, "not a byte count"),
        ("13", 400, "does not match"),
    ]:
        with pytest.raises(RequestError, match=words) as caught:
            p.check_length(raw, length, 100)
        assert caught.value.status == status
    png = p.parse_request("/segment", "image/png", 100)
    with pytest.raises(RequestError, match="beyond") as caught:
        p.check_length(png, str(10**12), 100)
    assert caught.value.status == 413
    with pytest.raises(RequestError, match="empty body"):
        p.check_length(png, "0", 100)
    assert p.check_length(png, str(10**12), 0) == 10**12  # 0: no limit


def test_raw_body_is_little_endian() -> None:
    image = np.arange(6, dtype=np.uint16).reshape(2, 3) * 1000
    r = p.parse_request("/segment?shape=2,3&dtype=uint16", None, 100)
    got = p.decode(r, image.astype("<u2").tobytes(), 100)
    assert got.dtype == np.uint16 and got.dtype.isnative
    np.testing.assert_array_equal(got, image)


def test_png_and_tiff_bodies() -> None:
    image = np.arange(12, dtype=np.uint16).reshape(3, 4) * 300
    png = cv2.imencode(".png", image)[1].tobytes()
    np.testing.assert_array_equal(p.decode(p.SegmentRequest(p.PNG), png, 100), image)
    buf = io.BytesIO()
    tifffile.imwrite(buf, image)
    np.testing.assert_array_equal(p.decode(p.SegmentRequest(p.TIFF), buf.getvalue(), 100), image)
    with pytest.raises(RequestError, match="limit of 11") as caught:
        p.decode(p.SegmentRequest(p.PNG), png, 11)  # from the PNG header, before decoding
    assert caught.value.status == 413
    with pytest.raises(RequestError, match="limit of 11"):
        p.decode(p.SegmentRequest(p.TIFF), buf.getvalue(), 11)
    with pytest.raises(RequestError, match="not a readable PNG"):
        p.decode(p.SegmentRequest(p.PNG), png[:40], 100)
    with pytest.raises(RequestError, match="not a readable TIFF"):
        p.decode(p.SegmentRequest(p.TIFF), b"II*\0garbage", 100)


def test_encode_gives_shape_and_dtype_headers() -> None:
    labels = np.arange(6, dtype=np.uint32).reshape(2, 3)
    body, headers = p.encode(labels)
    assert headers["X-Shape"] == "2,3" and headers["X-Dtype"] == "uint32"
    np.testing.assert_array_equal(np.frombuffer(body, "<u4").reshape(2, 3), labels)
