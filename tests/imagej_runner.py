"""Running a Java probe (tests/imagej/*.java) inside a real, headless ImageJ 1.x."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROBES = Path(__file__).parent / "imagej"


def imagej_command(probe: str) -> list[str]:
    """The command that runs ``tests/imagej/PROBE`` with ImageJ, or a skip saying why not."""
    java = shutil.which("java")
    jar = Path(os.environ.get("UNET_EDGE_IJ_JAR", "/usr/share/java/ij.jar"))
    if java is None or not jar.is_file():
        pytest.skip(f"needs Java and ImageJ 1.x at {jar} (Debian: apt-get install imagej)")
    modules = subprocess.run([java, "--list-modules"], capture_output=True, text=True).stdout
    if "jdk.compiler" not in modules:
        pytest.skip(f"{probe} needs a JDK (Debian: apt-get install default-jdk-headless)")
    return [java, "-Djava.awt.headless=true", "-cp", str(jar), str(PROBES / probe)]
