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
    json.dumps(doc)  # all of it is JSON


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
