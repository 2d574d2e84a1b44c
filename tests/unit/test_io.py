"""The io wing's public face (unet_edge/io/__init__.py): one name per verb re-exported, and
``unet_edge.io.MAX_PIXELS`` the one process-wide limit the header checks read."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from unet_edge import io
from unet_edge.errors import ImageReadError
from unet_edge.io import headers


def test_every_public_name_is_its_submodule_s_object() -> None:
    owners = ("atomic", "headers", "inputs", "read", "windows", "write")
    modules = [importlib.import_module(f"unet_edge.io.{m}") for m in owners]
    for name in io.__all__:
        if name == "MAX_PIXELS":
            continue  # a property of the package (below), not a copy
        found = [m.__name__ for m in modules if getattr(m, name, None) is getattr(io, name)]
        assert found, f"unet_edge.io.{name} is none of {owners}'s objects"


def test_max_pixels_set_on_the_package_is_the_one_headers_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(headers, "MAX_PIXELS", headers.MAX_PIXELS)  # restored afterwards
    path = io.write_png(tmp_path / "x.png", np.zeros((10, 20), np.uint8))
    io.MAX_PIXELS = 199
    assert headers.MAX_PIXELS == 199 and io.MAX_PIXELS == 199
    with pytest.raises(ImageReadError, match="20 x 10 = 200 pixels per image") as e:
        io.image_header(path)
    assert e.value.option == "max_pixels"
    assert io.image_header(path, max_pixels=200).shape == (10, 20)  # per call beats the setting
    headers.MAX_PIXELS = None
    assert io.MAX_PIXELS is None and io.read_image(path).shape == (10, 20)
