"""The HTTP server of ``unet-edge serve``: one long-lived Segmenter, many clients.

The standard library's :class:`~http.server.ThreadingHTTPServer` (one thread
per connection, HTTP/1.0: one request per connection) is enough here: requests
are few and large (a frame each), the work is in ONNX Runtime, which releases
the GIL, and it adds no dependency and works offline. Admission is a bounded
count: at most ``max_queue`` requests are admitted (waiting or running) and the
rest get 503 with Retry-After at once; ``workers`` of them run the model at a
time (one model in memory, shared: :meth:`Segmenter.segment` is thread-safe).

An image is segmented at the model's pixel size as ``unet-edge run`` does
(:mod:`unet_edge.scale`): the pixel size is the query's ``pixel_size=``, else
the one a TIFF body states; the reply says which (``X-Pixel-Size``) and how it
was resampled (``X-Rescale``).
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import scale
from ..errors import ConfigError, MemoryLimitError, RequestError, UnetEdgeError
from . import protocol

if TYPE_CHECKING:
    from ..imagemeta import Calibration
    from ..runtime import Segmenter

#: Most pixels one request may carry by default (all planes together): a 64 Mpx stack.
DEFAULT_MAX_PIXELS = 1 << 26
#: What the X-Quality reply header gives of each frame's :class:`unet_edge.domain.Quality`
#: (its per-feature detail would make a stack's header too long).
QUALITY_KEYS = ("score", "in_domain", "threshold", "reason")
#: Loopback addresses, the only ones served without a token.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeConfig:
    """How the server admits requests: ``max_queue`` admitted at once (waiting or running,
    beyond that 503), ``workers`` running the model at once, ``max_pixels`` per request
    (0: no limit), ``token`` the Bearer token every request must carry (None: none),
    ``timeout`` seconds a client may take to send its request."""

    max_queue: int = 8
    workers: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    token: str | None = None
    timeout: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_queue", "workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.token is not None and not self.token:
            raise ConfigError("token is empty; give a non-empty token or None", option="token")


def model_description(seg: Segmenter) -> dict[str, Any]:
    """What ``GET /model`` answers: name, class names, the pixel size it was trained at
    (``{"y", "x", "unit": "µm"}``, null when the model does not say), legal input,
    normalisation (JSON-ready)."""
    info, geo = seg.info, seg.geometry
    norm = {k: getattr(v, "value", v) for k, v in dataclasses.asdict(info.normalization).items()}
    return {
        "name": info.name,
        "classes": list(info.class_names),
        "object_classes": [info.class_names[i] for i in info.object_classes],
        "pixel_size": info.pixel_size.to_dict() if info.pixel_size is not None else None,
        "channels": info.channels,
        "input": {
            "dtypes": list(protocol.DTYPES),
            "shapes": ["H,W", "Z,H,W"],
            "content_types": [protocol.RAW, protocol.TIFF, protocol.PNG],
            "tile_sizes": geo.legal_text,
            "min_size": geo.min_input,
        },
        "normalization": norm,
        "outputs": protocol.OUTPUTS,
        "provider": seg.provider,
    }


class SegmentServer(ThreadingHTTPServer):
    """A :class:`ThreadingHTTPServer` holding one Segmenter and the admission counts.

    ``server_close()`` waits for every request in flight (non-daemon threads), so a
    caller that stops ``serve_forever`` and closes finishes what it has accepted.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], seg: Segmenter, config: ServeConfig) -> None:
        super().__init__(address, Handler)
        self.segmenter, self.config = seg, config
        self.admitted = threading.BoundedSemaphore(config.max_queue)
        self.running = threading.BoundedSemaphore(config.workers)
        self.description = json.dumps(model_description(seg)).encode()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Drop the connection silently (a client gone or too slow): the library never
        prints, and the server goes on serving the others."""

    @property
    def url(self) -> str:
        """``http://host:port`` as bound (the real port when 0 was asked for)."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def compute(
        self, request: protocol.SegmentRequest, decoded: protocol.Decoded
    ) -> tuple[np.ndarray, dict[str, str]]:
        """The output ``request`` asks for, for one decoded body, and the reply headers that
        describe it (:func:`scale_headers`; ``X-Quality``: how the image compares with the
        model's training images, one record for a frame, a list for a stack, absent when the
        model has no domain statistics). Raises ScaleError (a UnetEdgeError) for a TIFF
        whose pixel size is more than :data:`unet_edge.scale.MAX_FACTOR` from the model's."""
        info = self.segmenter.info
        found = decoded.calibration if request.pixel_size is None else None  # the query wins
        rescale = scale.resolve(info.pixel_size, request.pixel_size, found)
        with self.running:
            pred = self.segmenter.analyze(decoded.image, rescale)
        if request.output == "probabilities":
            out = pred.probabilities
        else:
            labels = request.output == "labels"  # by the model's rule, as run --labels
            out = pred.labelled(info.labelling) if labels else pred.mask
        headers = scale_headers(request.pixel_size, found, pred.rescale, decoded.note)
        if pred.quality is not None:  # one line of ASCII JSON (json.dumps escapes the rest)
            brief = [{k: q.to_dict()[k] for k in QUALITY_KEYS} for q in pred.quality]
            stack = pred.probabilities.ndim == 4  # (Z, K, H, W)
            headers["X-Quality"] = json.dumps(brief if stack else brief[0])
        return out, headers


def scale_headers(
    stated: float | str | None,
    found: Calibration | None,
    rescale: dict[str, Any] | None,
    note: str | None = None,
) -> dict[str, str]:
    """The reply headers (one line of ASCII JSON each) that say at which scale an image was
    segmented. ``X-Pixel-Size``: the image's pixel size as taken, ``{"y", "x", "unit": "µm",
    "source": "query" | "tiff"}`` (absent when unknown: a raw or PNG body without
    ``pixel_size=``, a TIFF that states none, ``pixel_size=native``); ``X-Rescale``: the
    resampling to the model's pixel size (the provenance's ``rescale`` record: factor, both
    pixel sizes, resampling each way), ``null`` when the image was segmented as it is;
    ``X-Calibration-Note``: why a TIFF's stated pixel size was not taken (absent: nothing
    was dropped)."""
    headers = {"X-Rescale": json.dumps(rescale)}
    um = found.in_micrometres() if found is not None else None
    if isinstance(stated, float):
        size = {"y": stated, "x": stated, "unit": "µm", "source": "query"}
        headers["X-Pixel-Size"] = json.dumps(size)
    elif stated is None and um is not None:
        size = {"y": um.y, "x": um.x, "unit": "µm", "source": "tiff"}
        headers["X-Pixel-Size"] = json.dumps(size)
    if note is not None:
        headers["X-Calibration-Note"] = json.dumps(note)
    return headers


def make_server(
    seg: Segmenter, host: str = "127.0.0.1", port: int = 0, config: ServeConfig | None = None
) -> SegmentServer:
    """A bound (not yet serving) server; call ``serve_forever()``. Any host but loopback
    needs ``config.token`` (ConfigError otherwise, before anything listens)."""
    config = config or ServeConfig()
    if host not in LOCAL_HOSTS and config.token is None:
        raise ConfigError(
            f"listening on {host!r} lets other machines use this model; give a token "
            "(clients send Authorization: Bearer TOKEN) or listen on 127.0.0.1",
            option="token",
        )
    return SegmentServer((host, port), seg, config)


class Handler(BaseHTTPRequestHandler):
    """One request: route, authorise, admit, parse, compute, reply."""

    server: SegmentServer
    server_version = "unet-edge"

    def setup(self) -> None:
        super().setup()
        # a silent client cannot hold a thread (and a clean shutdown) forever
        self.connection.settimeout(self.server.config.timeout)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the library never prints; the CLI reports what it needs."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """JSON like every other refusal (malformed request line or headers, unknown method)."""
        self.close_connection = True
        self._json(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(doc).encode()
        self._reply(status, body, {"Content-Type": "application/json", **(headers or {})})

    def _authorised(self) -> bool:
        token = self.server.config.token
        if token is None:
            return True
        sent = self.headers.get("Authorization", "")
        if hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return True
        error = {"error": "missing or wrong Authorization: Bearer token"}
        self._json(401, error, {"WWW-Authenticate": "Bearer"})
        return False

    def do_GET(self) -> None:
        if not self._authorised():
            return
        path = self.path.partition("?")[0]
        if path == "/health":
            self._json(200, {"status": "ok"})
        elif path == "/model":
            self._reply(200, self.server.description, {"Content-Type": "application/json"})
        else:
            self._json(404, {"error": f"no such endpoint {path[:60]!r}; see GET /model"})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        path = self.path.partition("?")[0]
        if path != "/segment":
            self._json(404, {"error": f"no such endpoint {path[:60]!r}; POST /segment"})
            return
        if not self.server.admitted.acquire(blocking=False):
            self.close_connection = True
            self._json(503, {"error": "server busy: queue full; retry"}, {"Retry-After": "1"})
            return
        try:
            reply = self._segment()
        finally:  # freed before replying: a client holding its answer has freed its place
            self.server.admitted.release()
        reply()

    def _segment(self) -> Callable[[], None]:
        """Read, parse and compute one request; returns the reply to send (after the
        admission slot is freed)."""
        limit = self.server.config.max_pixels
        try:
            request = protocol.parse_request(self.path, self.headers.get("Content-Type"), limit)
            n = protocol.check_length(request, self.headers.get("Content-Length"), limit)
            body = self.rfile.read(n)
            if len(body) != n:
                raise RequestError(f"body ended after {len(body)} of {n} bytes")
            decoded = protocol.decode_body(request, body, limit)
            out, described = self.server.compute(request, decoded)
        except RequestError as e:
            self.close_connection = True  # an unread body would be taken for the next request
            return functools.partial(self._json, e.status, {"error": str(e)})
        except MemoryLimitError as e:
            return functools.partial(self._json, 413, {"error": str(e)})
        except UnetEdgeError as e:  # the Segmenter refused the image (size, dtype, values)
            return functools.partial(self._json, 422, {"error": str(e)})
        except OSError:
            raise  # the client went away or stopped sending: nobody to answer
        except Exception as e:  # a bug of ours: say so, and keep serving
            error = f"internal error: {type(e).__name__}: {str(e)[:200]}"
            return functools.partial(self._json, 500, {"error": error})
        body, headers = protocol.encode(out)
        return functools.partial(self._reply, 200, body, {**headers, **described})
