"""Killed runs: ``unet-edge run`` in a real subprocess, stopped by SIGKILL and SIGTERM at
several moments, in memory (a 4096 x 4096 TIFF) and window by window (``--large``, a
5000 x 5000 TIFF).

After every kill: never a partial file under a final name (each file there reads
completely, at the right shape); after SIGTERM no temporary file and exit 143; after
SIGKILL the temporary file left behind is hidden, and the next run over the folder
removes it (it names no live process) and succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.config import UNetConfig

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny, fast model (same padding, depth 1, width 1) and the two images."""
    import onnx_models

    folder = tmp_path_factory.mktemp("kill")
    onnx_models.save(folder / "fast.onnx", UNetConfig(base_width=1, depth=1, padding="same"))
    rng = np.random.default_rng(0)
    tifffile.imwrite(folder / "in4096.tif", rng.integers(0, 256, (4096, 4096), dtype=np.uint8))
    tifffile.imwrite(folder / "in5000.tif", rng.integers(0, 256, (5000, 5000), dtype=np.uint8))
    return folder


def _start(work: Path, image: str, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["run", "-m", str(work / "fast.onnx"), str(work / image), "-o", str(out), "-v", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "unet_edge.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _temporaries(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if io.is_temporary(p)] if out.exists() else []


def _when_computing(proc: subprocess.Popen[bytes]) -> None:
    """Wait until the model is loaded (-v prints it): the signal handlers are in place."""
    assert proc.stderr is not None
    for line in iter(proc.stderr.readline, b""):
        if line.startswith(b"Segmenter("):
            return
    raise AssertionError("the run ended before it loaded the model")


def _when_writing(proc: subprocess.Popen[bytes], out: Path, timeout: float = 240) -> None:
    """Wait until a temporary file appears in ``out`` (the run is writing)."""
    t0 = time.monotonic()
    while not _temporaries(out):
        assert proc.poll() is None, "the run ended before it wrote anything"
        assert time.monotonic() - t0 < timeout, "no temporary file appeared"
        time.sleep(0.005)


def _stop(proc: subprocess.Popen[bytes], sig: int, after: float | None = None) -> str:
    if after is not None:
        time.sleep(after)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err.decode()
        assert "stopped by SIGTERM" in err.decode()
    else:
        assert proc.returncode == -signal.SIGKILL
    return err.decode()


def _finals_complete(out: Path, shape: tuple[int, ...]) -> list[str]:
    """Every file under a final name reads completely at ``shape``; their names."""
    names = []
    for p in sorted(out.iterdir()) if out.exists() else []:
        if io.is_temporary(p):
            continue
        got = io.read_image(p)
        assert got.shape[-2:] == shape, (p, got.shape)
        names.append(p.name)
    return names


def _next_run_succeeds(work: Path, image: str, out: Path, *extra: str) -> str:
    proc = _start(work, image, out, *extra)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    assert _temporaries(out) == []
    return err.decode()


def test_killed_in_memory_run(work: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    extra = ("--probabilities",)  # two outputs: a kill between them must not keep the first
    _stop(_start(work, "in4096.tif", out, *extra), signal.SIGKILL, after=0.5)  # starting
    assert _temporaries(out) == [] and _finals_complete(out, (4096, 4096)) == []
    proc = _start(work, "in4096.tif", out, *extra)
    _when_computing(proc)
    _stop(proc, signal.SIGTERM, after=1.0)  # computing
    assert _temporaries(out) == [] and _finals_complete(out, (4096, 4096)) == []
    proc = _start(work, "in4096.tif", out, *extra)
    _when_writing(proc, out)
    _stop(proc, signal.SIGTERM)
    assert _temporaries(out) == [] and _finals_complete(out, (4096, 4096)) == []
    proc = _start(work, "in4096.tif", out, *extra)
    _when_writing(proc, out)
    _stop(proc, signal.SIGKILL)
    stale = _temporaries(out)
    assert len(stale) == 1 and stale[0].name.startswith(".")
    assert _finals_complete(out, (4096, 4096)) == []
    said = _next_run_succeeds(work, "in4096.tif", out, *extra)
    assert "removed 1 temporary file(s) left by an interrupted run" in said
    assert _finals_complete(out, (4096, 4096)) == [
        "in4096_mask.tif",
        "in4096_probabilities.tif",
    ]


def test_killed_windowed_run(work: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _start(work, "in5000.tif", out, "--large")
    _when_writing(proc, out)  # the windowed path writes from its first tile to its last
    _stop(proc, signal.SIGTERM, after=0.5)
    assert _temporaries(out) == [] and _finals_complete(out, (5000, 5000)) == []
    proc = _start(work, "in5000.tif", out, "--large")
    _when_writing(proc, out)
    _stop(proc, signal.SIGKILL, after=0.5)
    assert len(_temporaries(out)) == 1 and _finals_complete(out, (5000, 5000)) == []
    said = _next_run_succeeds(work, "in5000.tif", out, "--large")
    assert "removed 1 temporary file(s)" in said
    assert _finals_complete(out, (5000, 5000)) == ["in5000_mask.tif"]


def test_a_signal_whose_exception_was_swallowed_still_stops_the_run(tmp_path: Path) -> None:
    """A SIGTERM landing in a finaliser has its exception swallowed ("Exception ignored");
    the write then fails on its removed temporary file: the run still exits as stopped."""
    import click

    from unet_edge.cli.run import _Stopped, _temporaries_removed_on_signals
    from unet_edge.errors import OutputError

    with (
        pytest.raises(click.exceptions.Exit) as e,
        _temporaries_removed_on_signals(),
        io.atomic_path(tmp_path / "mask.png") as tmp,
    ):
        tmp.write_bytes(b"partial")
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs here and raises
        except _Stopped:
            pass  # as if it had run inside a __del__
        raise OutputError("output folder disappeared while writing mask.png")
    assert e.value.exit_code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []
