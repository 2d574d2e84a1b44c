"""The one place that catches what C libraries print: file descriptors 1 and 2 redirected.

ONNX Runtime's C++ logger (session creation, DLL preloading) and libpng /
libjpeg / OpenCV (image decoding) write to the process's file descriptors
directly, past Python's ``sys.stderr``. Both the engines and the image
readers turn that text into their own errors, so they share this helper and
its single lock: two captures can never interleave their ``dup2`` calls and
restore the descriptors in the wrong order. The lock is re-entrant, so a
capture inside a capture on the same thread nests correctly (last in, first
out). Another thread writing to the captured descriptors meanwhile is caught
too (and so not shown); captures are short (a decode, a session opening).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass

_LOCK = threading.RLock()
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Captured:
    """What was printed during a :func:`captured` block (filled in when it ends)."""

    text: str = ""


@contextlib.contextmanager
def captured(fds: tuple[int, ...] = (1, 2), python: bool = True) -> Iterator[Captured]:
    """Capture what is written to the descriptors ``fds`` (and, with ``python``, to
    ``sys.stdout``/``sys.stderr``) into the yielded :class:`Captured`, ANSI colours removed.

    A descriptor that does not exist (a GUI process without a console) is
    left alone: nothing written to it can be caught, and nothing fails.
    """
    out = Captured()
    py_buf = io.StringIO()
    with _LOCK, tempfile.TemporaryFile() as tmp:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        saved: list[tuple[int, int]] = []
        try:
            for fd in fds:
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(tmp.fileno(), fd)
                except OSError:  # no such descriptor: nothing to capture
                    continue
            if python:
                with contextlib.redirect_stdout(py_buf), contextlib.redirect_stderr(py_buf):
                    yield out
            else:
                yield out
        finally:
            for fd, copy in reversed(saved):
                with contextlib.suppress(OSError):
                    os.dup2(copy, fd)
                os.close(copy)
            tmp.seek(0)
            raw = tmp.read().decode("utf-8", errors="replace")
            out.text = _ANSI.sub("", raw + py_buf.getvalue()).strip()


def first_line(text: str) -> str:
    """The first non-blank line of ``text`` (colours removed, at most 300 characters)."""
    for line in _ANSI.sub("", text).splitlines():
        line = line.strip()
        if line:
            return line[:300]
    return ""
