"""unet_edge.serve.app in process: the model page, the token, the bounded queue, shutdown."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from unet_edge import Segmenter
from unet_edge.errors import ConfigError
from unet_edge.serve.app import SegmentServer, ServeConfig, make_server, model_description


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Iterator[Segmenter]:
    with Segmenter(tiny_onnx) as s:
        yield s


def _serving(seg: Segmenter, config: ServeConfig) -> SegmentServer:
    server = make_server(seg, "127.0.0.1", 0, config)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _connect(server: SegmentServer) -> http.client.HTTPConnection:
    host, port = server.server_address[:2]
    return http.client.HTTPConnection(str(host), port, timeout=30)


def _request(server: SegmentServer, method: str, path: str, body: bytes = b"", **headers: str):
    conn = _connect(server)
    conn.request(method, path, body or None, headers)
    reply = conn.getresponse()
    return reply.status, dict(reply.getheaders()), reply.read()


def test_model_description(seg: Segmenter) -> None:
    doc = model_description(seg)
    assert doc["name"] == "tiny" and doc["classes"] == list(seg.info.class_names)
    assert doc["input"]["min_size"] == seg.geometry.min_input
    assert doc["normalization"]["mode"] == seg.info.normalization.mode.value
    assert doc["pixel_size"] is None  # the tiny model records none
    json.dumps(doc)  # all of it is JSON
    page = json.loads((Path(__file__).parents[2] / "docs" / "serve-openapi.json").read_text())
    schema = page["paths"]["/model"]["get"]["responses"]["200"]["content"]["application/json"]
    assert sorted(schema["schema"]["properties"]) == sorted(doc)  # the page names every key


def test_model_description_gives_the_pixel_size_the_model_records(tmp_path: Path) -> None:
    from onnx_models import save_edited

    from unet_edge.config import UNetConfig

    def edit(meta: dict) -> None:
        meta["pixel_size"] = {"y": 4, "x": 4, "unit": "nm"}

    model = save_edited(tmp_path / "scaled.onnx", UNetConfig(base_width=2), edit)
    with Segmenter(model) as scaled:
        assert model_description(scaled)["pixel_size"] == {"y": 0.004, "x": 0.004, "unit": "µm"}


def test_token_is_required_and_checked(seg: Segmenter) -> None:
    with pytest.raises(ConfigError, match="token"):
        make_server(seg, "0.0.0.0", 0)
    server = _serving(seg, ServeConfig(token="s3cret"))
    try:
        status, headers, body = _request(server, "GET", "/health")
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
        assert "Bearer" in json.loads(body)["error"]
        assert _request(server, "GET", "/health", Authorization="Bearer wrong")[0] == 401
        assert _request(server, "GET", "/health", Authorization="Bearer s3cret")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_full_queue_answers_503_with_retry_after(seg: Segmenter) -> None:
    server = _serving(seg, ServeConfig(max_queue=1))
    frame = np.zeros((40, 40), np.uint8)
    try:
        holder = _connect(server)  # admitted, then holds its slot while its body is unsent
        holder.putrequest("POST", "/segment?shape=40,40")
        holder.putheader("Content-Length", "1600")
        holder.endheaders(b"\0" * 10)
        time.sleep(0.3)
        status, headers, body = _request(server, "POST", "/segment?shape=40,40", frame.tobytes())
        assert status == 503 and headers["Retry-After"] == "1" and "busy" in body.decode()
        holder.send(b"\0" * 1590)
        assert holder.getresponse().status == 200
        status, _, body = _request(server, "POST", "/segment?shape=40,40", frame.tobytes())
        assert status == 200 and np.array_equal(
            np.frombuffer(body, np.uint8), seg.segment(frame).ravel()
        )
    finally:
        server.shutdown()
        server.server_close()


def test_unknown_endpoints_and_images_the_model_refuses(seg: Segmenter) -> None:
    server = _serving(seg, ServeConfig())
    try:
        assert _request(server, "GET", "/nope")[0] == 404
        assert _request(server, "POST", "/nope", b"x")[0] == 404
        nan = np.full((8, 8), np.nan, "<f4").tobytes()
        status, _, body = _request(server, "POST", "/segment?shape=8,8&dtype=float32", nan)
        assert status == 422 and json.loads(body)["error"]
        assert _request(server, "GET", "/health")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("field", ["max_queue", "workers"])
def test_config_is_validated(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        ServeConfig(**{field: 0})
    with pytest.raises(ConfigError, match="empty"):
        ServeConfig(token="")


def test_silent_client_times_out_quietly(seg: Segmenter, capfd: pytest.CaptureFixture[str]) -> None:
    server = _serving(seg, ServeConfig(timeout=0.3))
    try:
        slow = _connect(server)
        slow.putrequest("POST", "/segment?shape=40,40")
        slow.putheader("Content-Length", "1600")
        slow.endheaders(b"\0" * 10)
        time.sleep(0.8)  # past the timeout: the server dropped it
        assert _request(server, "GET", "/health")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
    assert capfd.readouterr().err == ""


def test_reply_says_how_the_image_compares_with_the_training_images(isbi_image) -> None:
    """X-Quality: the shipped model's domain guard, one record per frame, a list per stack;
    no header for a model without domain statistics."""
    crop = isbi_image[:256, :256]
    with Segmenter() as shipped:
        want = shipped.analyze(crop).quality
        server = _serving(shipped, ServeConfig())
        try:
            status, headers, _ = _request(server, "POST", "/segment?shape=256,256", crop.tobytes())
            assert status == 200 and want is not None
            assert json.loads(headers["X-Quality"]) == {
                "score": round(want[0].score, 3),
                "in_domain": want[0].in_domain,
                "threshold": want[0].threshold,
                "reason": want[0].reason,
            }
            stack = np.stack([crop, np.full_like(crop, 255)])  # the second: one flat colour
            query = "/segment?shape=2,256,256&output=labels"
            status, headers, _ = _request(server, "POST", query, stack.tobytes())
            records = json.loads(headers["X-Quality"])
            assert status == 200 and [r["in_domain"] for r in records] == [True, False]
        finally:
            server.shutdown()
            server.server_close()


def test_no_quality_header_without_domain_statistics(seg: Segmenter) -> None:
    server = _serving(seg, ServeConfig())
    try:
        frame = np.zeros((40, 40), np.uint8)
        status, headers, _ = _request(server, "POST", "/segment?shape=40,40", frame.tobytes())
        assert status == 200 and "X-Quality" not in headers
    finally:
        server.shutdown()
        server.server_close()


def test_pixel_size_segments_at_the_models_scale(isbi_image, seg: Segmenter) -> None:
    """?pixel_size= as Segmenter.segment(image, pixel_size=...): the shipped model was
    trained at 4 nm; a model that records no pixel size refuses it with a 422."""
    crop = isbi_image[:128, :128]
    with Segmenter() as shipped:
        server = _serving(shipped, ServeConfig())
        try:
            query = "/segment?shape=128,128&pixel_size=0.008"
            status, headers, body = _request(server, "POST", query, crop.tobytes())
            assert status == 200 and headers["X-Shape"] == "128,128"
            got = np.frombuffer(body, np.uint8).reshape(128, 128)
            assert np.array_equal(got, shipped.segment(crop, pixel_size=0.008))
        finally:
            server.shutdown()
            server.server_close()
    server = _serving(seg, ServeConfig())
    try:
        query = "/segment?shape=128,128&pixel_size=0.008"
        status, _, body = _request(server, "POST", query, crop.tobytes())
        assert status == 422 and "does not record the pixel size" in json.loads(body)["error"]
        assert _request(server, "GET", "/health")[0] == 200  # still serving
    finally:
        server.shutdown()
        server.server_close()
