"""``unet-edge serve``: segment frames sent over HTTP by any program, from one loaded model."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from . import options as o


def _stop_on_signals(server: object) -> None:
    """SIGTERM and SIGINT stop accepting; requests in flight finish (server_close joins)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever, which runs in this (the main) thread: call it
        # from another, or the handler would wait for itself
        threading.Thread(target=server.shutdown, daemon=True).start()  # type: ignore[attr-defined]

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


@click.command(short_help="Serve segmentation over local HTTP (any language).")
@o.segmenter_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port, printed at start).",
)
@click.option(
    "--token",
    envvar="UNET_EDGE_TOKEN",
    default=None,
    help="Bearer token every request must carry; required off 127.0.0.1 [env UNET_EDGE_TOKEN].",
)
@click.option(
    "--max-queue",
    default=8,
    show_default=True,
    type=click.IntRange(1),
    help="Requests admitted at once; more get 503 with Retry-After.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Requests running the model at once (one model in memory).",
)
@click.option(
    "--max-pixels",
    default=None,
    type=o.PixelCount(),
    help="Most pixels per request, all planes, e.g. 100000 or 50M (0: no limit) [default: 64Mi].",
)
@o.verbosity_options
def serve(
    segmenter: o.SegmenterArgs,
    host: str,
    port: int,
    token: str | None,
    max_queue: int,
    workers: int,
    max_pixels: int | None,
    out: o.Reporter,
) -> None:
    """Load the model once and answer GET /health, GET /model and POST /segment.

    POST raw little-endian pixels (uint8, uint16, int16, float32) to
    /segment?shape=H,W&dtype=uint16 (Z,H,W for a stack), or a TIFF/PNG body;
    the reply is uint8 class indices (output=probabilities: float32,
    output=labels: uint32) with X-Shape and X-Dtype headers. The image is
    segmented at the model's pixel size from pixel_size=UM in the query, else
    a TIFF body's own calibration (X-Pixel-Size and X-Rescale say which and
    how). The API: docs/serve-openapi.json.

    \b
    Example (a 512x512 16-bit frame, from another terminal):
      unet-edge serve --port 8765
      curl -s --data-binary @frame.raw -o mask.raw \\
        -H 'Content-Type: application/octet-stream' \\
        'localhost:8765/segment?shape=512,512&dtype=uint16'
    """
    from ..runtime import Segmenter
    from ..serve import DEFAULT_MAX_PIXELS, LOCAL_HOSTS, ServeConfig, make_server

    if host not in LOCAL_HOSTS and not token:
        raise click.exceptions.Exit(_refuse(host))
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    config = ServeConfig(max_queue=max_queue, workers=workers, max_pixels=limit, token=token)
    with Segmenter(segmenter.model, **segmenter.kwargs()) as seg:
        try:
            server = make_server(seg, host, port, config)
        except OSError as e:  # port taken, address not on this machine
            click.echo(f"Error: cannot listen on {host}:{port}: {e.strerror or e}", err=True)
            raise click.exceptions.Exit(1) from None
        _stop_on_signals(server)
        out.info(f"serving {seg.info.name} ({seg.provider}) on {server.url}")
        try:
            server.serve_forever()
        finally:
            server.server_close()  # waits for the requests in flight
        out.info("stopped")


def _refuse(host: str) -> int:
    click.echo(
        f"Error: --host {host} lets other machines use the server; pass --token TOKEN "
        "(or set UNET_EDGE_TOKEN), or listen on 127.0.0.1",
        err=True,
    )
    return 2
