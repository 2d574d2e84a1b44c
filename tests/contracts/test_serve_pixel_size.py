"""The server's pixel size: a TIFF body's own calibration (ImageJ or OME, read as ``unet-edge
run`` reads it) rescales the image to the model's pixel size unless the query states one, and
the reply says which pixel size was taken (``X-Pixel-Size``) and how it was resampled
(``X-Rescale``). Real HTTP requests to a server in this process."""

from __future__ import annotations

import http.client
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import Segmenter
from unet_edge.serve.app import SegmentServer, ServeConfig, make_server

ROOT = Path(__file__).resolve().parents[2]
SIDE = 128


@pytest.fixture(scope="module")
def shipped() -> Iterator[Segmenter]:
    with Segmenter() as seg:  # the ISBI model, trained at 4 nm per pixel
        yield seg


@pytest.fixture(scope="module")
def crop(isbi_image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(isbi_image[:SIDE, :SIDE])


def _serving(seg: Segmenter) -> Iterator[SegmentServer]:
    server = make_server(seg, "127.0.0.1", 0, ServeConfig())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server(shipped: Segmenter) -> Iterator[SegmentServer]:
    yield from _serving(shipped)


def _post(server: SegmentServer, query: str, body: bytes, media: str):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), port, timeout=60)
    try:
        conn.request("POST", f"/segment?{query}", body, {"Content-Type": media})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def _mask(reply) -> np.ndarray:
    status, headers, body = reply
    assert status == 200, body
    shape = tuple(int(n) for n in headers["X-Shape"].split(","))
    return np.frombuffer(body, np.uint8).reshape(shape)


def _imagej(image: np.ndarray, um: float | None, unit: str = "micron") -> bytes:
    buf = io.BytesIO()
    extra = {} if um is None else {"resolution": (1 / um, 1 / um)}
    tifffile.imwrite(buf, image, imagej=True, metadata={"unit": unit}, **extra)
    return buf.getvalue()


def _ome(image: np.ndarray, size: float, unit: str) -> bytes:
    buf = io.BytesIO()
    meta = {"axes": "YX", "PhysicalSizeX": size, "PhysicalSizeY": size}
    meta |= {"PhysicalSizeXUnit": unit, "PhysicalSizeYUnit": unit}
    tifffile.imwrite(buf, image, ome=True, metadata=meta)
    return buf.getvalue()


@pytest.mark.parametrize("body", ["imagej", "ome"])
def test_a_tiff_bodys_pixel_size_rescales_it_as_run_does(
    server: SegmentServer, shipped: Segmenter, crop: np.ndarray, body: str
) -> None:
    """An 8 nm image (ImageJ in µm, OME in nm) is segmented at the model's 4 nm and the mask
    comes back on its own grid: Segmenter.segment(crop, pixel_size=0.008), pixel for pixel."""
    data = _imagej(crop, 0.008) if body == "imagej" else _ome(crop, 8.0, "nm")
    reply = _post(server, "", data, "image/tiff")
    assert np.array_equal(_mask(reply), shipped.segment(crop, pixel_size=0.008))
    headers = reply[1]
    size = json.loads(headers["X-Pixel-Size"])
    assert size["source"] == "tiff" and size["unit"] == "µm"
    assert size["y"] == pytest.approx(0.008) and size["x"] == pytest.approx(0.008)
    rescale = json.loads(headers["X-Rescale"])
    assert rescale["factor"] == [2.0, 2.0] and rescale["pixel_size_stated"] is False
    assert rescale["model_pixel_size_um"] == [0.004, 0.004]
    assert "X-Calibration-Note" not in headers


def test_the_query_wins_over_the_tiff(
    server: SegmentServer, shipped: Segmenter, crop: np.ndarray
) -> None:
    """pixel_size=0.004 (the model's own) on a TIFF that says 8 nm: segmented as it is;
    pixel_size=native: as it is too, and no pixel size is reported."""
    data = _imagej(crop, 0.008)
    as_is = shipped.segment(crop)
    reply = _post(server, "pixel_size=0.004", data, "image/tiff")
    assert np.array_equal(_mask(reply), as_is)
    assert json.loads(reply[1]["X-Rescale"]) is None
    assert json.loads(reply[1]["X-Pixel-Size"]) == {
        "y": 0.004,
        "x": 0.004,
        "unit": "µm",
        "source": "query",
    }
    reply = _post(server, "pixel_size=native", data, "image/tiff")
    assert np.array_equal(_mask(reply), as_is)
    assert json.loads(reply[1]["X-Rescale"]) is None and "X-Pixel-Size" not in reply[1]


def test_stated_query_on_a_tiff_rescales_by_the_query(
    server: SegmentServer, shipped: Segmenter, crop: np.ndarray
) -> None:
    """A 4 nm TIFF sent with pixel_size=0.002: rescaled by the query (factor 1/2, stated)."""
    reply = _post(server, "pixel_size=0.002", _imagej(crop, 0.004), "image/tiff")
    assert np.array_equal(_mask(reply), shipped.segment(crop, pixel_size=0.002))
    rescale = json.loads(reply[1]["X-Rescale"])
    assert rescale["factor"] == [0.5, 0.5] and rescale["pixel_size_stated"] is True


def test_a_placeholder_or_missing_calibration_is_run_as_it_is(
    server: SegmentServer, shipped: Segmenter, crop: np.ndarray
) -> None:
    """A plain TIFF at 72 dpi (a desktop default, not a pixel size) and an ImageJ TIFF in
    pixels are segmented as they are; the first says why in X-Calibration-Note."""
    as_is = shipped.segment(crop)
    buf = io.BytesIO()
    tifffile.imwrite(buf, crop, resolution=(72, 72), resolutionunit=2)
    reply = _post(server, "", buf.getvalue(), "image/tiff")
    assert np.array_equal(_mask(reply), as_is)
    assert "72 dpi" in json.loads(reply[1]["X-Calibration-Note"])
    assert "X-Pixel-Size" not in reply[1] and json.loads(reply[1]["X-Rescale"]) is None
    reply = _post(server, "", _imagej(crop, None, unit="pixel"), "image/tiff")
    assert np.array_equal(_mask(reply), as_is)
    assert "X-Pixel-Size" not in reply[1] and "X-Calibration-Note" not in reply[1]


def test_a_raw_body_has_no_pixel_size_of_its_own(
    server: SegmentServer, shipped: Segmenter, crop: np.ndarray
) -> None:
    reply = _post(server, f"shape={SIDE},{SIDE}", crop.tobytes(), "application/octet-stream")
    assert np.array_equal(_mask(reply), shipped.segment(crop))
    assert json.loads(reply[1]["X-Rescale"]) is None and "X-Pixel-Size" not in reply[1]


def test_a_tiff_far_from_the_models_pixel_size_is_refused_unless_stated(
    server: SegmentServer, crop: np.ndarray
) -> None:
    """0.1 µm is 25x the model's 4 nm: as from `run`, a 422 naming both pixel sizes; the
    query can state it, or turn rescaling off."""
    data = _imagej(crop, 0.1)
    status, _, body = _post(server, "", data, "image/tiff")
    error = json.loads(body)["error"]
    assert status == 422 and "0.1 µm" in error and "0.004 µm" in error
    status, headers, _ = _post(server, "pixel_size=native", data, "image/tiff")
    assert status == 200 and json.loads(headers["X-Rescale"]) is None


def test_a_model_without_a_pixel_size_runs_a_calibrated_tiff_as_it_is(
    tiny_onnx: Path, crop: np.ndarray
) -> None:
    """The tiny model records no pixel size: the TIFF's is reported, nothing is resampled
    (a stated pixel_size= would be a 422, as before)."""
    with Segmenter(tiny_onnx) as tiny:
        for server in _serving(tiny):
            reply = _post(server, "", _imagej(crop, 0.008), "image/tiff")
            assert np.array_equal(_mask(reply), tiny.segment(crop))
            assert json.loads(reply[1]["X-Pixel-Size"])["source"] == "tiff"
            assert json.loads(reply[1]["X-Rescale"]) is None


def test_the_openapi_page_documents_the_scale_headers() -> None:
    doc = json.loads((ROOT / "docs" / "serve-openapi.json").read_text())
    post = doc["paths"]["/segment"]["post"]
    reply = post["responses"]["200"]["headers"]
    assert {"X-Pixel-Size", "X-Rescale", "X-Calibration-Note"} <= set(reply)
    params = {p["name"]: p for p in post["parameters"]}
    assert "native" in json.dumps(params["pixel_size"]["schema"])
    assert "TIFF" in params["pixel_size"]["description"]


def test_the_protocol_decodes_a_tiffs_calibration_and_native(crop: np.ndarray) -> None:
    from unet_edge.imagemeta import Calibration
    from unet_edge.serve import protocol as p

    tiff = p.SegmentRequest(p.TIFF)
    got = p.decode_body(tiff, _ome(crop, 8.0, "nm"), 1 << 20)
    assert np.array_equal(got.image, crop) and got.note is None
    assert got.calibration == Calibration(8.0, 8.0, "nm")
    raw = p.parse_request(f"/segment?shape={SIDE},{SIDE}", p.RAW, 1 << 20)
    assert p.decode_body(raw, crop.tobytes(), 1 << 20).calibration is None
    assert p.parse_request("/segment?pixel_size=native", p.TIFF, 10).pixel_size == "native"
    assert np.array_equal(p.decode(tiff, _imagej(crop, 0.008), 1 << 20), crop)
