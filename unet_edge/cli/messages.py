"""What the command line says about a library error: one line, with the flag that fixes it.

Library messages name no flag (:attr:`UnetEdgeError.option` names the
argument); :data:`HINTS` adds the flag here. Everything a model file or an
image says passes through :func:`printable` before it reaches a terminal.
"""

from __future__ import annotations

from ..errors import UnetEdgeError

#: What to add to a library error whose ``option`` is the key: the fix in flags.
HINTS = {
    "overwrite": "pass --overwrite to replace it",
    "output": "choose another -o/--output",
    "provider": "that is --provider cpu, or --provider auto",
    "device": "that is --device cpu, or --device auto",
    "precision": "that is --precision fp32",
    "large": "run non-TIFF inputs, --probabilities/--overlay, --rois and --geojson without "
    "--large or --dask (--labels and --measure work window by window)",
    "min_size": "that is --min-size 20px (pixels) or --min-size 2um2",
    "dask": "that is --dask tcp://HOST:PORT or --dask local:N",
    "split": "run with --split none, or without --large/--dask",
    "memory_limit": "that is --memory-limit SIZE",
    "max_pixels": "that is --max-pixels N (0: no limit)",
    "calibrate": "pass --calibrate IMAGES",
    "normalization": "pass --normalization SPEC (e.g. percentile:1,99.8)",
    "channel": "pick one with --channel N",
    "pixel_size": "state it with --pixel-size UM (e.g. 0.008), or --pixel-size native",
}


def printable(text: str) -> str:
    """``text`` with every non-printable character (ESC, other controls, newlines, bidi
    overrides) escaped as ``\\xNN``/``\\uNNNN``: what a model's metadata says reaches the
    terminal as text, never as a control sequence."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def error_line(e: UnetEdgeError) -> str:
    """The one line printed for a library error, with the CLI's hint for its ``option``."""
    msg = printable(str(e))
    hint = HINTS.get(e.option or "")
    if hint and msg.endswith("."):
        msg = f"{msg} {hint[0].upper()}{hint[1:]}."
    elif hint:
        msg = f"{msg}; {hint}"
    return f"Error: {msg}"
