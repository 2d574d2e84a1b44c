"""Install paths: the CPU-only recipe of the README, and the GPU extras against PyPI.

The GPU tests resolve ``pip install --dry-run --report - -c constraints.txt ".[cuda]"``
(and ``".[tensorrt]"``) against PyPI: they need the network and take minutes, so
they run only with ``UNET_EDGE_NETWORK_TESTS=1`` (``make check-gpu-install``, which
CI runs); nothing is downloaded beyond package metadata and nothing is installed.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
network = pytest.mark.skipif(
    os.environ.get("UNET_EDGE_NETWORK_TESTS") != "1",
    reason="resolves against PyPI (network, minutes): UNET_EDGE_NETWORK_TESTS=1 or "
    "`make check-gpu-install`",
)
linux_x86 = pytest.mark.skipif(
    not (sys.platform == "linux" and platform.machine() == "x86_64"),
    reason="the GPU wheels are resolved for Linux x86_64",
)


def _pyproject() -> dict:  # type: ignore[type-arg]
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def test_readme_cpu_only_recipe_lists_every_dependency() -> None:
    """The docs' CPU-only install = the dependencies, with onnxruntime for onnxruntime-gpu."""
    deps = _pyproject()["project"]["dependencies"]
    wanted = {
        d.split(";")[0].strip() for d in deps if _name(d) not in ("onnxruntime", "onnxruntime-gpu")
    }
    readme = (REPO / "docs" / "getting-started" / "install.md").read_text(encoding="utf-8")
    line = next(ln for ln in readme.splitlines() if ln.startswith("pip install onnxruntime "))
    given = set(re.findall(r'"([^"]+)"', line))
    assert given == wanted, given ^ wanted
    assert "pip install --no-deps unet-edge" in readme


def test_gpu_extras_are_declared_and_pinned() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert any(d.startswith("onnxruntime-gpu[cuda,cudnn]>=") for d in extras["cuda"])
    assert "unet-edge[cuda]" in extras["tensorrt"]
    trt = next(d for d in extras["tensorrt"] if _name(d) == "tensorrt-cu13-libs")
    assert ",<11" in trt  # onnxruntime-gpu 1.31 links libnvinfer.so.10: TensorRT 11 cannot load
    pins = dict(
        ln.split("==") for ln in (REPO / "constraints.txt").read_text().splitlines() if "==" in ln
    )
    assert pins["tensorrt-cu13-libs"].startswith("10.")


def _resolve(extra: str) -> dict[str, str]:
    """{name: version} that pip would install for ``.[extra]`` with the constraints."""
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", "-", "-c", "constraints.txt", f".[{extra}]"]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in report["install"]}


def _major(version: str) -> int:
    return int(version.split(".")[0])


@pytest.mark.slow
@network
@linux_x86
def test_cuda_extra_resolves_to_cuda13_and_cudnn9() -> None:
    got = _resolve("cuda")
    pins = dict(
        ln.split("==") for ln in (REPO / "constraints.txt").read_text().splitlines() if "==" in ln
    )
    assert got["onnxruntime-gpu"] == pins["onnxruntime-gpu"]
    assert _major(got["nvidia-cuda-runtime"]) == 13, got
    assert _major(got["nvidia-cublas"]) == 13, got
    assert _major(got["nvidia-cudnn-cu13"]) == 9, got


def _nvidia_index_reason() -> str | None:
    """Why pypi.nvidia.com cannot be used here, or None."""
    import urllib.request

    try:
        urllib.request.urlopen("https://pypi.nvidia.com/", timeout=15).close()
    except OSError as e:
        return f"pypi.nvidia.com is unreachable here ({e})"
    return None


@pytest.mark.slow
@network
@linux_x86
def test_tensorrt_extra_resolves_to_tensorrt10_for_cuda13() -> None:
    # tensorrt-cu13-libs on PyPI is a stub (wheel-stub) whose build downloads the real wheel
    # from pypi.nvidia.com: without that host the extra cannot even be resolved.
    why = _nvidia_index_reason()
    if why:
        pytest.skip(f"{why}; tensorrt-cu13-libs is fetched from there by its PyPI stub")
    got = _resolve("tensorrt")
    assert _major(got["tensorrt-cu13-libs"]) == 10, got
    assert _major(got["nvidia-cuda-runtime"]) == 13 and _major(got["nvidia-cudnn-cu13"]) == 9
