"""Atomic writes: every output goes to a temporary file beside it and is renamed when complete.

Every temporary file is named ``.NAME.unet-edge-tmp-HOST-PID-RANDOM.SUFFIX``
(:func:`is_temporary`): hidden, never taken as an input, and, while it is
being written, listed in a registry that :func:`remove_temporaries` empties
(the CLI calls it on SIGTERM, SIGINT and SIGHUP). One left by a killed
process (SIGKILL) is recognised by its host and process id and removed by
:func:`clean_stale_temporaries`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import OutputError

#: Every temporary file holds this in its name: ``.NAME.unet-edge-tmp-HOST-PID-RANDOM.SUFFIX``.
TEMP_MARK = ".unet-edge-tmp-"
_TEMP_NAME = re.compile(
    r"^\.(?P<target>.+)" + re.escape(TEMP_MARK) + r"(?P<host>[0-9a-f]{4})-(?P<pid>\d+)-[0-9a-f]{8}"
)
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:4]
_LIVE: set[Path] = set()  # temporary files being written by this process
_LIVE_LOCK = threading.Lock()


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named like a unet-edge temporary file (never an input)."""
    return _TEMP_NAME.match(Path(path).name) is not None


def remove_temporaries() -> list[Path]:
    """Delete the temporary files this process is writing now (for a signal handler).

    The writes they belong to fail afterwards; the final files are untouched.
    """
    with _LIVE_LOCK:
        live = list(_LIVE)
    for tmp in live:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return live


def clean_stale_temporaries(folder: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """Remove temporary files in ``folder`` left by unet-edge processes that no longer run.

    A file is stale when its name says it was written on this host by a process
    id that is gone (killed with SIGKILL, power cut). Returns (removed, kept):
    kept are those of running processes or other hosts, which are left alone.
    """
    folder = Path(folder)
    removed: list[Path] = []
    kept: list[Path] = []
    if not folder.is_dir():
        return removed, kept
    for p in sorted(folder.iterdir()):
        m = _TEMP_NAME.match(p.name)
        if m is None or not p.is_file():
            continue
        pid = int(m["pid"])
        if m["host"] == _HOST and pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            removed.append(p)
        else:
            kept.append(p)
    return removed, kept


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` may still run (True when we cannot tell)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or we cannot tell: keep its files
    return True


def _create_temporary(path: Path) -> Path:
    """An empty new file beside ``path``, registered as live, with the permissions a plain
    open would give.

    (``tempfile.mkstemp`` would make it 0600, and the rename would keep that: results
    that colleagues in the lab cannot read.) The name keeps ``path``'s suffix, for
    writers that choose the format by it.
    """
    for _ in range(100):
        tag = f"{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp = path.with_name(f".{path.name}{TEMP_MARK}{tag}{path.suffix}")
        with _LIVE_LOCK:
            _LIVE.add(tmp)  # before it exists: a signal right after the open still finds it
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        except FileExistsError:
            _forget(tmp)
            continue
        except OSError as e:
            _forget(tmp)
            raise OutputError(f"cannot write in {path.parent}: {e.strerror}") from None
        os.close(fd)
        return tmp
    raise OutputError(f"cannot create a temporary file in {path.parent}")


def _forget(tmp: Path) -> None:
    """Drop ``tmp`` from the registry of live temporary files."""
    with _LIVE_LOCK:
        _LIVE.discard(tmp)


_SPECIAL = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_replaceable(path: Path) -> None:
    """Refuse an output ``path`` that exists and is not a regular file (a folder, a FIFO, a
    device, a socket, or a link to one): renaming over it would replace it, overwriting
    allowed or not (``/dev/full`` by a zip)."""
    try:
        mode = os.stat(path).st_mode  # follows links: what the name leads to
    except OSError:
        return  # nothing there (or a dangling link, which the rename replaces)
    kind = next((what for test, what in _SPECIAL if test(mode)), None)
    if kind is not None or not stat.S_ISREG(mode):
        raise OutputError(
            f"output {path} exists and is {kind or 'not a regular file'}; only regular files "
            "are replaced, even when overwriting: remove it or write elsewhere",
            option="output",
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` if the block succeeds.

    An existing ``path`` that is not a regular file is never replaced
    (:func:`check_replaceable`, checked again just before the rename).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"output folder {path.parent} does not exist (was it removed?)")
    check_replaceable(path)
    tmp = _create_temporary(path)
    try:
        yield tmp
        check_replaceable(path)
        os.replace(tmp, path)
    except FileNotFoundError:
        raise OutputError(
            f"output folder {path.parent} disappeared while writing {path.name}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
        _forget(tmp)


def write_atomically(path: Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer`` on a temporary path beside ``path``, then rename it to ``path``;
    returns ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return path
