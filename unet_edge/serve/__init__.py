"""``unet-edge serve``: a local HTTP server around one long-lived Segmenter, for
acquisition software in any language (Java, LabVIEW, MATLAB, C#).

:mod:`.protocol` is the wire format (query, body, reply), :mod:`.app` the server.
"""

from __future__ import annotations

from .app import DEFAULT_MAX_PIXELS, LOCAL_HOSTS, SegmentServer, ServeConfig, make_server
from .protocol import DTYPES, OUTPUTS

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DTYPES",
    "LOCAL_HOSTS",
    "OUTPUTS",
    "SegmentServer",
    "ServeConfig",
    "make_server",
]
