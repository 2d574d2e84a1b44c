"""``unet-edge serve`` as a process: concurrent clients, bad requests, the host/token rule,
SIGTERM, and the Java and C# clients of examples/ (compiled when a JDK / Mono is installed;
the C# one also run against the server)."""

from __future__ import annotations

import http.client
import io
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from unet_edge import Segmenter

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (64, 80)


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    """``unet-edge serve ARGS --port 0`` and the URL it prints once listening."""
    cmd = [sys.executable, "-m", "unet_edge.cli", "serve", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    said = ""
    for line in proc.stderr:  # warnings may come first
        said += line
        found = re.search(r"serving .* on (http://\S+)", line)
        if found is not None:
            return proc, found.group(1)
    proc.kill()
    raise AssertionError(f"server did not start: {said}")


def _post(
    url: str, body: bytes, query: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("POST", f"/segment?{query}", body, headers or {})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def _mask(reply: tuple[int, dict[str, str], bytes]) -> np.ndarray:
    status, headers, body = reply
    assert status == 200, body
    assert headers["X-Dtype"] == "uint8"
    shape = tuple(int(n) for n in headers["X-Shape"].split(","))
    return np.frombuffer(body, np.uint8).reshape(shape)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(22)
    return [rng.integers(0, 4096, SHAPE, dtype=np.uint16) for _ in range(10)]


@pytest.fixture(scope="module")
def expected(tiny_onnx: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    with Segmenter(tiny_onnx) as seg:
        return [seg.segment(f) for f in frames]


@pytest.fixture(scope="module")
def server(tiny_onnx: Path) -> Iterator[str]:
    proc, url = _start("-m", str(tiny_onnx), "--max-pixels", "100000")
    yield url
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def _raw(frame: np.ndarray) -> tuple[bytes, str]:
    h, w = frame.shape
    return frame.astype("<u2").tobytes(), f"shape={h},{w}&dtype=uint16"


def test_four_clients_share_one_segmenter(
    server: str, frames: list[np.ndarray], expected: list[np.ndarray]
) -> None:
    latencies: list[float] = []
    wrong: list[int] = []

    def client() -> None:
        for i, frame in enumerate(frames):
            start = time.perf_counter()
            mask = _mask(_post(server, *_raw(frame)))
            latencies.append(time.perf_counter() - start)
            if not np.array_equal(mask, expected[i]):
                wrong.append(i)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(latencies) == 40 and wrong == []
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    print(f"\nserve, 4 clients x 10 frames {SHAPE}: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


def test_outputs_and_encoded_bodies(server: str, tiny_onnx: Path, frames: list[np.ndarray]) -> None:
    import cv2
    import tifffile

    frame = frames[0]
    with Segmenter(tiny_onnx) as seg:
        mask, probs, labels = seg.segment(frame), seg.predict(frame), seg.label(frame)
        stack = seg.segment(np.stack(frames[:2]))
    raw, query = _raw(frame)
    status, headers, body = _post(server, raw, query + "&output=probabilities")
    assert (status, headers["X-Dtype"], headers["X-Shape"]) == (200, "float32", "2,64,80")
    np.testing.assert_array_equal(np.frombuffer(body, "<f4").reshape(probs.shape), probs)
    status, headers, body = _post(server, raw, query + "&output=labels")
    assert (status, headers["X-Dtype"]) == (200, "uint32")
    np.testing.assert_array_equal(np.frombuffer(body, "<u4").reshape(labels.shape), labels)
    raw = np.stack(frames[:2]).astype("<u2").tobytes()
    assert np.array_equal(_mask(_post(server, raw, "shape=2,64,80&dtype=uint16")), stack)
    png = cv2.imencode(".png", frame)[1].tobytes()
    assert np.array_equal(_mask(_post(server, png, "", {"Content-Type": "image/png"})), mask)
    buf = io.BytesIO()
    tifffile.imwrite(buf, frame)
    tiff = {"Content-Type": "image/tiff"}
    assert np.array_equal(_mask(_post(server, buf.getvalue(), "", tiff)), mask)


def _raw_request(url: str, head: bytes) -> tuple[int, dict[str, str]]:
    """Send only a request head (no body) and read the reply: a server that waited for
    the body would time out here."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(head)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body)


BAD = [  # (query, body, headers, status, words of the error)
    ("shape=64,80&dtype=uint16", b"\0" * 100, {}, 400, "does not match"),
    ("shape=64,80&dtype=uint64", b"\0" * 100, {}, 400, "unknown dtype"),
    ("shape=&dtype=uint16", b"\0" * 100, {}, 400, "is not H,W"),
    ("shape=0,80&dtype=uint8", b"\0", {}, 400, "empty axis"),
    ("dtype=uint16", b"\0" * 100, {}, 400, "missing shape"),
    ("shape=1000,1000&dtype=uint8", b"\0" * 10, {}, 413, "limit"),
    ("shape=64,80&output=edges", b"\0" * 5120, {}, 400, "unknown output"),
    ("", b"garbage!", {"Content-Type": "image/tiff"}, 400, "not a readable TIFF"),
    ("", b"garbage!", {"Content-Type": "image/png"}, 400, "not a PNG"),
    ("", b"garbage!", {"Content-Type": "text/plain"}, 415, "Content-Type"),
    ("shape=2,2&bogus=1", b"\0" * 4, {}, 400, "unknown query parameter"),
]


@pytest.mark.parametrize(("query", "body", "headers", "status", "words"), BAD)
def test_bad_request_gets_4xx_and_the_server_keeps_serving(
    server: str,
    frames: list[np.ndarray],
    expected: list[np.ndarray],
    query: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    words: str,
) -> None:
    got, reply_headers, reply = _post(server, body, query, headers)
    assert got == status and reply_headers["Content-Type"] == "application/json"
    assert words in json.loads(reply)["error"]
    assert np.array_equal(_mask(_post(server, *_raw(frames[1]))), expected[1])


def test_oversized_content_length_refused_before_the_body(
    server: str, frames: list[np.ndarray], expected: list[np.ndarray]
) -> None:
    huge = b"Content-Length: 99999999999\r\n\r\n"
    head = b"POST /segment HTTP/1.1\r\nHost: x\r\nContent-Type: image/tiff\r\n" + huge
    status, error = _raw_request(server, head)
    assert status == 413 and "limit" in error["error"]
    head = b"POST /segment?shape=64,80&dtype=uint16 HTTP/1.1\r\nHost: x\r\n" + huge
    status, error = _raw_request(server, head)
    assert status == 400 and "does not match" in error["error"]
    status, error = _raw_request(server, b"BREW /segment HTTP/1.1\r\n\r\n")
    assert status == 501 and "BREW" in error["error"]
    assert np.array_equal(_mask(_post(server, *_raw(frames[2]))), expected[2])


def test_health_and_model(server: str) -> None:
    parts = urlsplit(server)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/health")
    assert json.loads(conn.getresponse().read()) == {"status": "ok"}
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/model")
    model = json.loads(conn.getresponse().read())
    assert model["name"] == "tiny" and len(model["classes"]) == 2
    assert model["input"]["dtypes"] == ["uint8", "uint16", "int16", "float32"]
    assert model["normalization"]["mode"]


def test_other_host_without_token_refuses_in_one_line() -> None:
    cmd = [sys.executable, "-m", "unet_edge.cli", "serve", "--host", "0.0.0.0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_no_token_env())
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--token" in lines[0], done.stderr


def _no_token_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "UNET_EDGE_TOKEN"}


def test_sigterm_finishes_the_request_in_flight_and_exits_0(tiny_onnx: Path) -> None:
    proc, url = _start("-m", str(tiny_onnx))
    frame = np.random.default_rng(1).integers(0, 4096, SHAPE, dtype=np.uint16)
    raw, query = _raw(frame)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest("POST", f"/segment?{query}")
    conn.putheader("Content-Length", str(len(raw)))
    conn.endheaders(raw[:1000])
    time.sleep(0.5)  # accepted: the server is reading the body
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the request is still in flight when the server is told to stop
    conn.send(raw[1000:])
    reply = conn.getresponse()
    result = (reply.status, dict(reply.getheaders()), reply.read())
    assert proc.wait(timeout=60) == 0
    with Segmenter(tiny_onnx) as seg:
        assert np.array_equal(_mask(result), seg.segment(frame))


def test_java_client_compiles(tmp_path: Path) -> None:
    javac = shutil.which("javac")
    if javac is None:
        pytest.skip("javac not installed (the Debian JDK: apt-get install default-jdk-headless)")
    source = ROOT / "examples" / "SegmentClient.java"
    done = subprocess.run([javac, "-d", str(tmp_path), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "SegmentClient.class").is_file()


def test_csharp_client_compiles_and_segments(
    server: str, frames: list[np.ndarray], expected: list[np.ndarray], tmp_path: Path
) -> None:
    """examples/SegmentClient.cs built with Mono's compiler, then run against the server."""
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    if mcs is None or mono is None:
        pytest.skip(
            "mcs/mono not installed (Debian: apt-get install mono-mcs "
            "libmono-system-net-http4.0-cil)"
        )
    source = ROOT / "examples" / "SegmentClient.cs"
    assert len(source.read_text().splitlines()) <= 30
    exe = tmp_path / "SegmentClient.exe"
    cmd = [mcs, "-r:System.Net.Http", f"-out:{exe}", str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    raw = tmp_path / "frame.raw"
    raw.write_bytes(frames[0].astype("<u2").tobytes())
    args = [mono, str(exe), str(raw), *(str(n) for n in SHAPE), server]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    cells = int((expected[0] == 1).sum())
    assert done.stdout.strip() == f"mask {SHAPE[0]},{SHAPE[1]}, {cells} pixels of class 1"


def test_openapi_page_matches_the_protocol() -> None:
    from unet_edge.serve import DTYPES, OUTPUTS

    doc = json.loads((ROOT / "docs" / "serve-openapi.json").read_text())
    assert set(doc["paths"]) == {"/health", "/model", "/segment"}
    params = {p["name"]: p for p in doc["paths"]["/segment"]["post"]["parameters"]}
    reply = doc["paths"]["/segment"]["post"]["responses"]["200"]["headers"]
    assert {"X-Shape", "X-Dtype", "X-Quality"} <= set(reply)
    assert params["dtype"]["schema"]["enum"] == list(DTYPES)
    assert params["output"]["schema"]["enum"] == list(OUTPUTS)
    assert set(params) == {"shape", "dtype", "output", "pixel_size"}
