"""When the model is at fault, the message names the model file, never the image being
segmented, and is one line: through the API, ``unet-edge run`` and ``unet-edge info``
(unet_edge/models: open, probe, metadata, check; unet_edge/cli).

The foreign graphs are built with ``onnx.helper`` (no torch): a classifier, two inputs, a
3-D input, a global (non-local) operation; then damaged files, lying metadata and a
package description with a YAML python tag (which must never run).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnx_models
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from unet_edge import ModelError, Normalization, Segmenter
from unet_edge.cli import main
from unet_edge.config import UNetConfig

RNG = np.random.default_rng(0)


def _graph(nodes: list[onnx.NodeProto], inputs: list[str], dims: list[list[object]]) -> Callable:
    """A maker of a float graph: ``inputs`` with the first ``len(inputs)`` of ``dims``,
    output ``y`` with the last, a (2, 1, 3, 3[, 3]) weight ``w``."""

    def make(path: Path) -> Path:
        vi = [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, d)
            for n, d in zip(inputs, dims, strict=False)
        ]
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims[-1])
        kernel = (3,) * (len(dims[0]) - 2)
        w = numpy_helper.from_array(RNG.normal(size=(2, 1, *kernel)).astype(np.float32), "w")
        graph = helper.make_graph(nodes, "g", vi, [out], initializer=[w])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(path))
        return path

    return make


def _conv(x: str, out: str, k: int = 2, pad: int = 0) -> onnx.NodeProto:
    return helper.make_node("Conv", [x, "w"], [out], kernel_shape=[3] * k, pads=[pad] * 2 * k)


def _softmax(x: str) -> onnx.NodeProto:
    return helper.make_node("Softmax", [x], ["y"], axis=1)


CLASSIFIER = _graph(
    [
        _conv("x", "c"),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        _softmax("f"),
    ],
    ["x"],
    [["n", 1, "h", "w"], ["n", 2]],
)
TWO_INPUTS = _graph(
    [helper.make_node("Add", ["x", "z"], ["a"]), _conv("a", "c"), _softmax("c")],
    ["x", "z"],
    [["n", 1, "h", "w"], ["n", 1, "h", "w"], ["n", 2, "h2", "w2"]],
)
THREE_D = _graph(
    [_conv("x", "c", k=3), _softmax("c")], ["x"], [["n", 1, "d", "h", "w"], ["n", 2, "d", "h", "w"]]
)
NON_LOCAL = _graph(  # each pixel minus the image's mean: the output depends on every pixel
    [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=1),
        helper.make_node("Sub", ["x", "m"], ["d"]),
        _conv("d", "c", pad=1),
        _softmax("c"),
    ],
    ["x"],
    [["n", 1, "h", "w"], ["n", 2, "h", "w"]],
)


def _bytes(data: Callable[[], bytes]) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        path.write_bytes(data())
        return path

    return make


def _truncated() -> bytes:
    raw = onnx_models.make_model().SerializeToString()
    return raw[: len(raw) // 2]


def _metadata(edit: Callable[[dict], None]) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        return onnx_models.save_edited(path, UNetConfig(base_width=2), edit)

    return make


def _three_classes(d: dict) -> None:
    d["architecture"]["classes"] = 3
    d["output"]["classes"] = ["a", "b", "c"]


def _python_tag(path: Path) -> Path:
    marker = path.parent / "EXECUTED"
    yaml = path.with_name("rdf.yaml")
    yaml.write_text(
        "format_version: 0.5.3\ntype: model\n"
        f"name: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    return yaml


# (id, maker, what the one line says besides the model's path, whether info refuses it)
MODELS = [
    ("classifier", CLASSIFIER, "a classifier or detector output cannot be tiled", True),
    ("two-inputs", TWO_INPUTS, "the graph has 2 inputs ['x', 'z']", True),
    ("3d-input", THREE_D, "a 3-D or 1-D network cannot be tiled in 2-D", True),
    ("non-local", NON_LOCAL, "not a local convolutional network", True),
    ("garbage", _bytes(lambda: b"\x08\x07garbage" * 100), "is not an ONNX model", True),
    ("truncated", _bytes(_truncated), "is not an ONNX model", True),
    ("empty", _bytes(lambda: b""), "is empty (0 bytes)", True),
    ("depth-99", _metadata(lambda d: d["architecture"].update(depth=99)), "depth", True),
    ("three-classes-declared", _metadata(_three_classes), "2 classes instead of 3", False),
    ("yaml-python-tag", _python_tag, "python/object/apply:os.system", True),
]
IDS = [m[0] for m in MODELS]


@pytest.fixture()
def bad(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, bool]:
    make, said, info_refuses = request.param
    if make is _python_tag and importlib.util.find_spec("ruyaml") is None:
        pytest.skip("reading packages needs the [bioimageio] extra (ruyaml), not installed")
    folder = tmp_path / "models"
    folder.mkdir()
    return make(folder / "bad.onnx"), said, info_refuses


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "cells.png"
    cv2.imwrite(str(path), RNG.integers(0, 255, (64, 64), np.uint8))
    return path


def _one_line_naming(text: str, model: Path, said: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    line = lines[0]
    assert str(model) in line and said in line, line
    return line


PARAMS = [(m, s, i) for _, m, s, i in MODELS]


@pytest.mark.parametrize("bad", PARAMS, ids=IDS, indirect=True)
def test_the_api_error_names_the_model(bad: tuple[Path, str, bool]) -> None:
    model, said, _ = bad
    with pytest.raises(ModelError) as e:
        Segmenter(model, normalization=Normalization())
    _one_line_naming(str(e.value), model, said)
    assert not (model.parent / "EXECUTED").exists()


@pytest.mark.parametrize("bad", PARAMS, ids=IDS, indirect=True)
def test_run_names_the_model_not_the_image(
    bad: tuple[Path, str, bool], image: Path, tmp_path: Path
) -> None:
    model, said, _ = bad
    out = tmp_path / "out"
    args = ["run", str(image), "-m", str(model), "-o", str(out)]
    r = CliRunner().invoke(main, [*args, "--normalization", "percentile:1,99.8"])
    assert r.exit_code == 1
    line = _one_line_naming(r.output, model, said)
    assert line.startswith("Error: ") and image.name not in line
    assert not out.exists() or not any(out.iterdir())
    assert not (model.parent / "EXECUTED").exists()


@pytest.mark.parametrize("bad", PARAMS, ids=IDS, indirect=True)
def test_info_names_the_model(bad: tuple[Path, str, bool]) -> None:
    model, said, info_refuses = bad
    r = CliRunner().invoke(main, ["info", "-m", str(model)])
    if not info_refuses:  # info reads metadata; the graph check runs when a Segmenter opens it
        assert r.exit_code == 0 and "Traceback" not in r.output
        return
    assert r.exit_code == 1
    assert _one_line_naming(r.output, model, said).startswith("Error: ")
