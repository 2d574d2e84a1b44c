"""Lying and damaged models, crafted metadata and wrong API arguments: each is one typed error.

Every case asserts the exception type and a one-line message that names the
model file or the argument; the CLI cases also assert the exit code and that
the output folder holds no file (no partial result, no temporary file). The
models are tiny graphs built with ``onnx.helper`` (tests/onnx_models.py), so
this module runs without torch (but for the pickled checkpoint).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_models
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from unet_edge import (
    ConfigError,
    InputError,
    ModelError,
    NonFiniteError,
    Segmenter,
    UnetEdgeError,
    metadata,
)
from unet_edge.cli import main
from unet_edge.config import UNetConfig
from unet_edge.metadata import ModelInfo
from unet_edge.paths.files import plan_files, segment_file
from unet_edge.paths.windowed import segment_large

TINY = UNetConfig(base_width=2)


def _stamp(graph: onnx.ModelProto, meta: UNetConfig, path: Path, **info: Any) -> Path:
    names = tuple(f"c{i}" for i in range(meta.classes))
    metadata.write(graph, ModelInfo(meta, onnx_models.PERCENTILE, names, **info))
    onnx.save(graph, str(path))
    return path


def _lying(graph: UNetConfig, meta: UNetConfig, *, head: int | None = None, **kw: Any) -> Any:
    """A graph built for ``graph`` whose metadata describes ``meta`` (``head``: output classes)."""

    def make(path: Path) -> Path:
        w = onnx_models.random_weights(graph)
        if head is not None:
            w["head.weight"], w["head.bias"] = w["head.weight"][:head], w["head.bias"][:head]
        return _stamp(onnx_models.build(graph, w, **kw), meta, path)

    return make


def _crafted(edit: Callable[[dict[str, Any]], object]) -> Any:
    """The tiny model with its metadata JSON edited in place by ``edit`` (no validation)."""

    def make(path: Path) -> Path:
        return onnx_models.save_edited(path, TINY, edit)

    return make


def _raw_metadata(text: str) -> Any:
    def make(path: Path) -> Path:
        model = onnx_models.make_model(TINY)
        next(p for p in model.metadata_props if p.key == metadata.KEY).value = text
        onnx.save(model, str(path))
        return path

    return make


def _external(location: Callable[[Path], str]) -> Any:
    """The tiny model with one initializer's data in an external file at ``location(folder)``."""

    def make(path: Path) -> Path:
        model = onnx_models.make_model(TINY)
        t = model.graph.initializer[0]
        secret = path.parent.parent / "outside.bin"
        secret.write_bytes(numpy_helper.to_array(t).tobytes())
        t.ClearField("raw_data")
        del t.float_data[:]
        t.data_location = onnx.TensorProto.EXTERNAL
        entry = t.external_data.add()
        entry.key, entry.value = "location", location(path.parent)
        onnx.save(model, str(path))
        return path

    return make


def _link_outside(folder: Path) -> str:
    (folder / "weights.bin").symlink_to(folder.parent / "outside.bin")
    return "weights.bin"


def _set(*keys: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return edit


# (id, model maker, what the one-line message must contain)
BAD_MODELS = [
    ("halo-overstated", _lying(TINY, UNetConfig(base_width=2, depth=5)), "halo or depth"),
    ("halo-understated", _lying(TINY, UNetConfig(base_width=2, depth=3)), "smallest legal tile"),
    ("one-class-head", _lying(TINY, TINY, head=1), "1 classes instead of 2"),
    ("three-classes-as-two", _lying(UNetConfig(base_width=2, classes=3), TINY), "3 classes"),
    ("two-classes-as-three", _lying(TINY, UNetConfig(base_width=2, classes=3)), "2 classes"),
    ("logits", _lying(TINY, TINY, softmax=False), "probabilities expected"),
    ("same-as-valid", _lying(UNetConfig(base_width=2, padding="same"), TINY), "legal tile"),
    (
        "convs-understated",
        _lying(
            UNetConfig(base_width=2, convs_per_level=3, depth=2), UNetConfig(base_width=2, depth=2)
        ),
        "graph",
    ),
    ("input-renamed", _lying(TINY, TINY, input_name="x"), "image"),
    ("output-renamed", _lying(TINY, TINY, output_name="y"), "probabilities"),
    ("channels-lie", _lying(TINY, UNetConfig(base_width=2, in_channels=3)), "legal tile"),
    (
        "convs-10000000",
        _crafted(_set("architecture", "convs_per_level", value=10_000_000)),
        "convs_per_level",
    ),
    ("depth-100", _crafted(_set("architecture", "depth", value=100)), "depth"),
    ("classes-100000", _crafted(_set("architecture", "classes", value=100_000)), "classes"),
    ("width-1e9", _crafted(_set("architecture", "base_width", value=10**9)), "base_width"),
    ("kernel-4", _crafted(_set("architecture", "kernel_size", value=4)), "kernel_size"),
    ("channels-0", _crafted(_set("architecture", "in_channels", value=0)), "in_channels"),
    ("mean-nan", _crafted(_set("input", "normalization", "mean", value=float("nan"))), "mean"),
    ("std-0", _crafted(_set("input", "normalization", "std", value=0)), "std"),
    ("std-inf", _crafted(_set("input", "normalization", "std", value=float("inf"))), "std"),
    ("low-string", _crafted(_set("input", "normalization", "low", value="0")), "low"),
    (
        "percentiles-reversed",
        _crafted(_set("input", "normalization", "low", value=99.9)),
        "high > low",
    ),
    ("percentile-101", _crafted(_set("input", "normalization", "high", value=101)), "<= 100"),
    ("stated-halo-lies", _crafted(_set("geometry", "halo", value=5)), "halo"),
    ("output-logits", _crafted(_set("output", "kind", value="logits")), "logits"),
    ("classes-a-string", _crafted(_set("output", "classes", value="ab")), "classes"),
    ("class-name-empty", _crafted(_set("output", "classes", value=["", "x"])), "class name"),
    ("architecture-a-list", _crafted(_set("architecture", value=[1, 2])), "architecture"),
    ("provenance-a-string", _crafted(_set("provenance", value="x")), "provenance"),
    ("schema-version-2", _crafted(_set("schema_version", value=2)), "version"),
    ("metadata-not-json", _raw_metadata("{not json"), "not valid JSON"),
    ("metadata-a-list", _raw_metadata("[1, 2]"), "JSON object"),
    ("external-absolute", _external(lambda f: str(f.parent / "outside.bin")), "outside"),
    ("external-dotdot", _external(lambda f: "../outside.bin"), "outside"),
    ("external-symlink", _external(_link_outside), "outside"),
]


@pytest.fixture()
def bad_model(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    make, expected = request.param
    folder = tmp_path / "models"
    folder.mkdir()
    return make(folder / "bad.onnx"), expected


def _one_line(e: BaseException, *names: str) -> str:
    msg = str(e)
    assert "\n" not in msg and msg, msg
    for name in names:
        assert name in msg, (name, msg)
    return msg


@pytest.mark.parametrize(
    "bad_model",
    [(m, x) for _, m, x in BAD_MODELS],
    ids=[i for i, _, _ in BAD_MODELS],
    indirect=True,
)
def test_bad_model_is_refused_at_load(bad_model: tuple[Path, str]) -> None:
    path, expected = bad_model
    t0 = time.perf_counter()
    with pytest.raises(ModelError) as e:
        Segmenter(path)
    assert time.perf_counter() - t0 < 5  # no minutes-long scan of a crafted geometry
    _one_line(e.value, str(path), expected)


CLI_MODELS = [m for m in BAD_MODELS if m[0] in {
    "halo-overstated", "halo-understated", "one-class-head", "three-classes-as-two", "logits",
    "convs-10000000", "mean-nan", "external-dotdot",
}]  # fmt: skip


@pytest.mark.parametrize(
    "bad_model",
    [(m, x) for _, m, x in CLI_MODELS],
    ids=[i for i, _, _ in CLI_MODELS],
    indirect=True,
)
def test_cli_run_with_a_bad_model_writes_nothing(
    bad_model: tuple[Path, str], tmp_path: Path
) -> None:
    import cv2

    path, expected = bad_model
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (40, 50), np.uint8))
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", str(image), "-m", str(path), "-o", str(out)])
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and str(path) in lines[0], r.output
    assert expected in lines[0]
    assert not out.exists() or not any(out.iterdir())
    r = CliRunner().invoke(main, ["info", "-m", str(path)])
    assert r.exit_code in (0, 1) and "Traceback" not in r.output  # metadata-only lies pass info


@pytest.mark.parametrize("field", ["name", "classes"], ids=["model-name", "class-names"])
def test_info_escapes_control_characters(field: str, tmp_path: Path) -> None:
    evil = "\x1b[2J\x1b]0;owned\x07\u202eevil"
    names = (evil, "b") if field == "classes" else None
    path = tmp_path / "evil.onnx"
    onnx.save(
        onnx_models.make_model(TINY, name=evil if field == "name" else "ok", class_names=names),
        str(path),
    )
    r = CliRunner().invoke(main, ["info", "-m", str(path)])
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.output and "\x07" not in r.output and "\u202e" not in r.output
    assert "\\x1b[2J" in r.output and "\\u202e" in r.output


@pytest.fixture(scope="module")
def seg(tmp_path_factory: pytest.TempPathFactory) -> Segmenter:
    return Segmenter(onnx_models.save(tmp_path_factory.mktemp("m") / "tiny.onnx", TINY))


def _overflowing() -> np.ndarray:
    return np.random.default_rng(0).uniform(-3e38, 3e38, (40, 50)).astype(np.float32)


def _nan_at(r: int, c: int, shape: tuple[int, int] = (40, 50)) -> np.ndarray:
    a = np.ones(shape, np.float32) / 2
    a[r, c] = np.nan
    return a


Z, F, U = np.zeros, np.float32, np.uint8

# (call on the Segmenter, exception type, what the message must contain), by id
BAD_CALLS = [
    pytest.param(
        lambda s: s.segment(Z((0, 64, 64), U)), InputError, "(0, 64, 64)", id="empty-stack"
    ),
    pytest.param(lambda s: s.segment([]), InputError, "empty list", id="empty-list"),
    pytest.param(
        lambda s: s.segment(Z((0, 0), U)), InputError, "the image is empty", id="empty-0x0"
    ),
    pytest.param(lambda s: s.predict(Z((5, 0), U)), InputError, "(5, 0)", id="empty-width"),
    pytest.param(lambda s: s.segment([[1, 2], [3, 4]]), InputError, "int64", id="nested-int-list"),
    pytest.param(
        lambda s: s.segment([[1, 2], [3]]), InputError, "unequal lengths", id="ragged-list"
    ),
    pytest.param(
        lambda s: s.segment(np.array([[None, 1]])), InputError, "object", id="object-dtype"
    ),
    pytest.param(
        lambda s: s.segment(Z((8, 8), np.complex64)), InputError, "complex64", id="complex-dtype"
    ),
    pytest.param(lambda s: s.segment(Z((8, 8), bool)), InputError, "bool", id="bool-dtype"),
    pytest.param(lambda s: s.segment(Z(8, U)), InputError, "(8,)", id="1-d"),
    pytest.param(
        lambda s: s.segment(Z((1, 1, 1, 8, 8), U)), InputError, "(1, 1, 1, 8, 8)", id="5-d"
    ),
    pytest.param(lambda s: s.segment(None), InputError, "NoneType", id="none"),
    pytest.param(lambda s: s.analyze("img.png"), InputError, "str", id="a-path-string"),
    pytest.param(
        lambda s: s.segment(_nan_at(31, 7)), NonFiniteError, "row 31, column 7", id="nan-pixel"
    ),
    pytest.param(  # > 4 Mpx: the statistics skip odd rows, the kernel's check finds it
        lambda s: s.segment(_nan_at(1, 3, (2100, 2100))),
        NonFiniteError,
        "first at row 1, column 3 (raw value nan)",
        id="nan-pixel-outside-the-statistics-sample",
    ),
    pytest.param(
        lambda s: s.segment(_overflowing()),
        NonFiniteError,
        "not finite after normalisation",
        id="float32-overflow",
    ),
    pytest.param(
        lambda s: s.scaling_for(Z((0, 3), U)), InputError, "(0, 3)", id="scaling-of-empty"
    ),
    pytest.param(lambda s: s.plan_for((0, 0)), InputError, "the image is empty", id="plan-0x0"),
    pytest.param(lambda s: s.plan_for("ab"), InputError, "'ab'", id="plan-a-string"),
    pytest.param(lambda s: s.warmup((5.5, 3)), InputError, "(5.5, 3)", id="warmup-float-shape"),
    pytest.param(
        lambda s: s.plan_for((8, 8), -1), ConfigError, "memory_budget", id="plan-negative-budget"
    ),
    pytest.param(lambda s: s.run_batch([[1.0]]), InputError, "batch", id="batch-a-list"),
    pytest.param(
        lambda s: s.run_batch(Z((1, 3, 188, 188), F)),
        InputError,
        "(1, 3, 188, 188)",
        id="batch-3-channels",
    ),
    pytest.param(
        lambda s: s.run_batch(Z((1, 1, 190, 190), F)), InputError, "190", id="batch-illegal-tile"
    ),
    pytest.param(
        lambda s: s.run_batch(Z((0, 1, 188, 188), F)), InputError, "N >= 1", id="batch-empty"
    ),
    pytest.param(lambda s: list(s.stream(None)), InputError, "frames", id="stream-none"),
    pytest.param(  # a predictor (any backend) whose output disagrees: refused at the stitch
        lambda s: s.frame_run(Z((40, 50), U)).run(lambda b: Z((len(b), 1, 4, 4), F)),
        ModelError,
        "expected (1, 2, ",
        id="predictor-one-class-output",
    ),
    pytest.param(lambda s: segment_file(s, 123, "never"), InputError, "path", id="file-an-int"),
    pytest.param(lambda s: segment_file(s, None, "never"), InputError, "path", id="file-none"),
    pytest.param(lambda s: plan_files(5, "never"), InputError, "inputs", id="plan-files-int"),
    pytest.param(
        lambda s: segment_large(s, None, "never.tif"), InputError, "source", id="large-none"
    ),
    pytest.param(
        lambda s: next(iter(s.stream([Z((0, 0), U)]))).unwrap(),
        InputError,
        "(0, 0)",
        id="stream-empty-frame",
    ),
    pytest.param(lambda s: Segmenter(s.model_path, tile="abc"), ConfigError, "tile", id="tile-abc"),
    pytest.param(
        lambda s: Segmenter(s.model_path, tile=188.5), ConfigError, "tile", id="tile-float"
    ),
    pytest.param(
        lambda s: Segmenter(s.model_path, tile=(188, 188, 188)),
        ConfigError,
        "tile",
        id="tile-triple",
    ),
    pytest.param(
        lambda s: Segmenter(s.model_path, tile=190), ConfigError, "tile", id="tile-illegal"
    ),
    pytest.param(
        lambda s: Segmenter(s.model_path, max_tile="2"),
        ConfigError,
        "max_tile",
        id="max-tile-string",
    ),
    pytest.param(
        lambda s: Segmenter(s.model_path, memory_budget=-5),
        ConfigError,
        "memory_budget",
        id="memory-budget-negative",
    ),
    pytest.param(lambda s: Segmenter(5), ModelError, "model", id="model-an-int"),
    pytest.param(
        lambda s: Segmenter(s.model_path, provider=None),
        ConfigError,
        "provider",
        id="provider-none",
    ),
    pytest.param(
        lambda s: Segmenter(s.model_path, batch_size="2"),
        InputError,
        "batch_size",
        id="batch-size-string",
    ),
]


@pytest.mark.parametrize(("call", "kind", "expected"), BAD_CALLS)
def test_bad_api_argument_is_a_typed_error(
    seg: Segmenter, call: Callable[[Segmenter], object], kind: type[Exception], expected: str
) -> None:
    with pytest.raises(kind) as e:
        call(seg)
    assert isinstance(e.value, UnetEdgeError)
    _one_line(e.value, expected)


def test_overflow_names_where_in_every_path(seg: Segmenter, tmp_path: Path) -> None:
    """The windowed (TIFF) path meets the same check, in image coordinates."""
    from unet_edge.io import write_tiff

    image = np.full((300, 260), 0.5, np.float32)
    image[250:, 200:] = 3e38  # finite, but not once scaled by this image's percentiles
    image[250:, 200:230] = -3e38
    src = write_tiff(tmp_path / "big.tif", image)
    with pytest.raises(NonFiniteError, match=r"the first at row 2\d\d, column 2\d\d") as e:
        segment_large(seg, src, tmp_path / "out.tif")
    _one_line(e.value, "raw value")
    with pytest.raises(NonFiniteError, match=r"the first at row 2\d\d, column 2\d\d"):
        seg.segment(image)
    assert not (tmp_path / "out.tif").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["big.tif"]


def test_the_probe_accepts_every_good_model(
    tiny_onnx: Path, same_onnx: Path, rgb_onnx: Path
) -> None:
    for path in (tiny_onnx, same_onnx, rgb_onnx):
        with Segmenter(path) as s:
            shape = (20, 30) if s.info.channels == 1 else (20, 30, s.info.channels)
            assert s.segment(np.zeros(shape, np.uint8)).shape == (20, 30)


def test_pickled_checkpoint_is_refused_without_torchs_advice(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="exporting needs the [train] extra")

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    ck = tmp_path / "evil.pt"
    torch.save({"format": "unet-edge/checkpoint", "payload": Evil()}, ck)
    r = CliRunner().invoke(main, ["export", str(ck), "-o", str(tmp_path / "out.onnx")])
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(ck) in lines[0] and "refuses to unpickle" in lines[0]
    assert "weights_only" not in r.output
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt"]
