"""The model record the Segmenter runs (unet_edge/models/source.py): what probing measured
becomes a description, and a model file's hash is cached by path and modification time."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import onnx
import onnx_models

from unet_edge.config import Normalization, Padding, UNetConfig
from unet_edge.models import model_hash
from unet_edge.models.source import probed_source


def test_model_hash_is_the_file_s_sha256_and_follows_changes(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"first")
    assert model_hash(path) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"second")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later modification
    assert model_hash(path) == hashlib.sha256(b"second").hexdigest()


def test_a_probed_graph_becomes_a_description(tmp_path: Path) -> None:
    config = UNetConfig(base_width=2, depth=2, classes=3)  # valid padding
    path = tmp_path / "valid.onnx"
    onnx.save_model(onnx_models.build(config, onnx_models.random_weights(config)), str(path))
    norm = Normalization(mode="fixed_range", low=0, high=255)
    src = probed_source(path, norm, "valid", origin="bioimage.io")
    assert src.origin == "bioimage.io" and src.onnx == path
    assert src.postprocess is None  # its output is softmax probabilities: used as it is
    arch = src.info.architecture
    assert (arch.in_channels, arch.classes, arch.depth) == (1, 3, 2)
    assert arch.padding is Padding.VALID and "probed" in arch.extra
    assert src.info.class_names == ("class_0", "class_1", "class_2")
    assert src.info.normalization == norm and src.info.name == "valid"
    assert src.geometry.shrink > 0 and src.batch is None  # a dynamic batch axis
