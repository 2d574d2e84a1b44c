"""The load-time graph check and the int8 note (unet_edge/models/check.py): a graph that
disagrees with its metadata is refused with what it gave; probabilities are checked for
shape, finiteness and sums; the int8 note only where it applies. (The note's wording for what
a file records is tested in test_precision.py, with the quantiser.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from unet_edge import cpu, metadata
from unet_edge.config import Precision
from unet_edge.engines.select import open_session
from unet_edge.errors import ModelError
from unet_edge.models import check
from unet_edge.runtime import Segmenter


def _probs(shape: tuple[int, ...]) -> np.ndarray:
    fg = np.random.default_rng(0).random((shape[0], 1, *shape[2:]))
    return np.concatenate([1 - fg, fg], axis=1).astype(np.float32)


def test_good_probabilities_pass() -> None:
    assert check.output_problem(_probs((1, 2, 4, 6)), (1, 2, 4, 6), 1e-3) is None


@pytest.mark.parametrize(
    ("out", "said"),
    [
        (np.zeros((2, 4, 6), np.float32), "3 axes instead of 4 (N, classes, H, W)"),
        (np.zeros((1, 3, 4, 6), np.float32), "3 classes instead of 2"),
        (np.zeros((1, 2, 6, 4), np.float32), "another output size"),
    ],
)
def test_a_wrong_shape_is_named(out: np.ndarray, said: str) -> None:
    problem = check.output_problem(out, (1, 2, 4, 6), 1e-3)
    assert problem is not None
    assert problem.startswith(f"its output has shape {out.shape}, expected (1, 2, 4, 6)")
    assert said in problem


def test_non_finite_values_and_logits_are_named() -> None:
    out = _probs((1, 2, 4, 6))
    out[0, 0, 1, 1] = np.nan
    out[0, 1, 2, 2] = np.inf
    assert check.output_problem(out, out.shape, 1e-3) == "its output holds 2 non-finite values"
    logits = _probs((1, 2, 4, 6)) * 4 - 2
    problem = check.output_problem(logits, logits.shape, 1e-3)
    assert problem is not None and problem.startswith("probabilities expected (values in 0..1")
    ones = np.ones((1, 2, 4, 6), np.float32)  # each in 0..1, but summing to 2
    assert "sums are off by up to 1" in (check.output_problem(ones, ones.shape, 1e-3) or "")
    slightly = _probs((1, 2, 4, 6)) * 1.004  # within the int8 tolerance, not fp32's
    tolerance = check.PROBABILITY_TOLERANCE
    assert check.output_problem(slightly, slightly.shape, tolerance["int8"]) is None
    assert check.output_problem(slightly, slightly.shape, tolerance["fp32"])


def test_zero_bands_of_a_package_layout() -> None:
    out = np.zeros((1, 2, 10, 12), np.float32)
    out[:, :, 2:8, 2:10] = 0.5  # 2 px of zeros on every side
    assert check._bands_problem(out, (2, 2)) is None
    said = check._bands_problem(out, (1, 3))
    assert said == (
        "its output's zero border is 2/2 px before and 2/2 px after (rows/columns), "
        "where its layout says 1 and 3"
    )


def test_the_real_graph_passes_its_own_check(tiny_onnx: Path) -> None:
    with Segmenter(tiny_onnx) as seg:
        check.check_graph(seg)  # also what opening it did


def test_a_graph_that_is_not_what_its_metadata_says_is_refused(
    tiny_onnx: Path, rgb_onnx: Path
) -> None:
    s = open_session(tiny_onnx, "cpu")
    info = metadata.read(tiny_onnx)
    other = metadata.read(rgb_onnx)  # depth 2, 3 classes, 3 channels
    with pytest.raises(ModelError, match=r"^tiny\.onnx: the graph fails on the smallest legal"):
        check.check_session(s, other, other.geometry, "tiny.onnx")
    three = replace(info, architecture=replace(info.architecture, classes=3),
                    class_names=("a", "b", "c"))  # fmt: skip
    with pytest.raises(ModelError) as e:
        check.check_session(s, three, info.geometry, "tiny.onnx", fix="export it again")
    said = str(e.value)
    assert said.startswith("tiny.onnx: its graph does not match its metadata: on a tile of shape")
    assert "2 classes instead of 3" in said and said.endswith("; export it again")


def test_no_int8_note_where_it_does_not_apply(
    tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu, "int8_saturates", lambda *a, **k: True)
    monkeypatch.setattr(cpu, "name", lambda: "AMD EPYC 7B13")
    fp32 = metadata.read(tiny_onnx)
    assert check.int8_note(fp32, "cpu") is None  # not an int8 file
    int8 = replace(fp32.with_precision(Precision.INT8), provenance={}, metrics={})
    assert check.int8_note(int8, "openvino") is None  # OpenVINO's kernels do not saturate
    note = check.int8_note(int8, "cpu")  # no weight_bits recorded: 8-bit weights
    assert note is not None and note.startswith("int8: this CPU (AMD EPYC 7B13) has no VNNI")
    seven = replace(int8, provenance={"quantization": {"weight_bits": 7}})
    assert check.int8_note(seven, "cpu") is None  # 7-bit weights cannot saturate
    monkeypatch.setattr(cpu, "int8_saturates", lambda *a, **k: False)
    assert check.int8_note(int8, "cpu") is None  # a CPU with VNNI
    assert issubclass(check.Int8Warning, RuntimeWarning)
