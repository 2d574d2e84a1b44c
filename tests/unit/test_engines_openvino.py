"""OpenVINO as a provider, against the real openvino package: no mocks.

Skipped with the reason where openvino is not installed (the runtime-only
install), except the test that checks the error such an install gives.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unet_edge import Segmenter, processing
from unet_edge.engines import openvino as openvino_backend
from unet_edge.engines import select
from unet_edge.engines.options import ProviderOptions
from unet_edge.engines.session import run_batch
from unet_edge.errors import ConfigError, ProviderError

needs_openvino = pytest.mark.skipif(
    not openvino_backend.installed(),
    reason="openvino is not installed (pip install 'unet-edge[openvino]')",
)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, size=(150, 170), dtype=np.uint8)


def _has_bf16() -> bool:
    import openvino as ov  # type: ignore[import-not-found,unused-ignore]

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


# --- fp32 equals onnxruntime ------------------------------------------------------


@needs_openvino
def test_openvino_fp32_equals_onnxruntime_and_tiles_exactly(
    tiny_onnx: Path, frame: np.ndarray
) -> None:
    ort_probs = Segmenter(tiny_onnx, "cpu", tile=236).predict(frame)
    seg = Segmenter(tiny_onnx, "openvino", tile=236)
    assert seg.provider == "openvino" and seg.provenance()["compute_precision"] == "fp32"
    assert "INFERENCE_PRECISION_HINT=f32" in seg.notes[0]
    probs = seg.predict(frame)
    assert probs.shape == ort_probs.shape and probs.dtype == np.float32
    assert float(np.max(np.abs(probs - ort_probs))) < 1e-5
    # Tiled == whole image on OpenVINO too (one tile covering the mirrored image).
    whole = Segmenter(tiny_onnx, "openvino").predict(frame)
    assert float(np.max(np.abs(probs - whole))) < 1e-5


@needs_openvino
def test_compiles_once_per_shape(tiny_onnx: Path) -> None:
    info = select.open_session(tiny_onnx, "openvino", input_shapes=[(1, 1, 188, 188)])
    session = info.session
    assert isinstance(session, openvino_backend.OpenVinoSession)
    assert session.shapes == [(1, 1, 188, 188)]  # compiled when opened
    x = np.zeros((2, 1, 204, 188), np.float32)
    y = run_batch(info, "image", "probabilities", x)
    assert y.shape == (2, 2, 20, 4)
    run_batch(info, "image", "probabilities", x)
    assert session.shapes == [(1, 1, 188, 188), (2, 1, 204, 188)]


@needs_openvino
def test_wrong_dtype_name_and_rank_are_refused(tiny_onnx: Path) -> None:
    from unet_edge.errors import InputError

    info = select.open_session(tiny_onnx, "openvino")
    with pytest.raises(InputError, match="expects float32"):
        run_batch(info, "image", "probabilities", np.zeros((1, 1, 188, 188)))
    with pytest.raises(InputError, match="no input or output named 'x'"):
        run_batch(info, "x", "probabilities", np.zeros((1, 1, 188, 188), np.float32))
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        run_batch(info, "image", "probabilities", np.zeros((188, 188), np.float32))


@needs_openvino
def test_an_illegal_shape_is_a_provider_error(tiny_onnx: Path) -> None:
    info = select.open_session(tiny_onnx, "openvino")
    with pytest.raises(ProviderError, match="could not compile the model for input shape"):
        run_batch(info, "image", "probabilities", np.zeros((1, 1, 8, 8), np.float32))


# --- threads and streams -----------------------------------------------------------


@needs_openvino
def test_threads_give_serial_results(
    tiny_onnx: Path, frame: np.ndarray, threads_match_serial
) -> None:
    seg = Segmenter(tiny_onnx, "openvino", tile=236)
    threads_match_serial(seg, [np.ascontiguousarray(np.rot90(frame, k)) for k in range(6)])


@needs_openvino
def test_stream_on_openvino(tiny_onnx: Path, frame: np.ndarray) -> None:
    seg = Segmenter(tiny_onnx, "openvino", tile=236)
    frames = [frame, frame[::-1].copy(), frame]
    results = list(seg.stream(iter(frames), drop="none"))
    assert [r.ok for r in results] == [True] * 3
    for r, f in zip(results, frames, strict=True):
        assert np.array_equal(r.mask, seg.segment(f))


# --- precision -----------------------------------------------------------------


def test_bf16_needs_openvino(tiny_onnx: Path) -> None:
    for provider in ("cpu", "auto"):
        with pytest.raises(ConfigError, match="needs the openvino provider") as err:
            Segmenter(tiny_onnx, provider, precision="bf16")
        assert err.value.option == "precision" and "--" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown precision 'bf61'"):
        ProviderOptions(precision="bf61")


@needs_openvino
def test_bf16_runs_or_is_refused_honestly(tiny_onnx: Path, frame: np.ndarray) -> None:
    if not _has_bf16():
        # OpenVINO would quietly compute in f32 here; unet-edge refuses instead.
        with pytest.raises(ProviderError, match="no bf16 arithmetic") as err:
            Segmenter(tiny_onnx, "openvino", precision="bf16")
        assert err.value.option == "precision"
        return
    seg = Segmenter(tiny_onnx, "openvino", tile=236, precision="bf16")
    assert "INFERENCE_PRECISION_HINT=bf16" in seg.notes[0]
    assert seg.provenance()["compute_precision"] == "bf16"
    ref = Segmenter(tiny_onnx, "cpu", tile=236).predict(frame)
    assert float(np.max(np.abs(seg.predict(frame) - ref))) < 0.1


@needs_openvino
def test_int8_qdq_file_runs_on_openvino(
    tiny_onnx: Path, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    from unet_edge import io, precision

    calib = tmp_path / "calib.png"
    io.write_png(calib, isbi_image)
    out = tmp_path / "tiny.int8.onnx"
    rep = precision.quantize(tiny_onnx, [calib], out, threshold=0.5, provider="openvino")
    assert rep.agreement["provider"] == "openvino"
    from unet_edge import metadata

    assert metadata.read(out).metrics["int8_vs_fp32"]["provider"] == "openvino"
    seg = Segmenter(out, "openvino")
    probs = seg.predict(isbi_image)
    ref = Segmenter(tiny_onnx, "cpu").predict(isbi_image)
    agree = np.mean(processing.to_mask(probs) == processing.to_mask(ref))
    assert agree == pytest.approx(rep.agreement["pixel_agreement"], abs=1e-9)


# --- missing or unusable -------------------------------------------------------


def test_missing_openvino_is_a_clear_error(tiny_onnx: Path) -> None:
    """A fresh interpreter where ``import openvino`` fails, as in an install without the extra."""
    code = (
        "import sys\n"
        "sys.modules['openvino'] = None  # import openvino -> ImportError\n"
        "from unet_edge import Segmenter\nfrom unet_edge.engines import select\n"
        "from unet_edge.errors import ProviderError\n"
        f"m = {str(tiny_onnx)!r}\n"
        "try:\n"
        "    Segmenter(m, 'openvino')\n"
        "except ProviderError as e:\n"
        "    print('ERROR', e.option, e)\n"
        "s = Segmenter(m, 'auto')\n"
        "print('AUTO', s.provider, '|'.join(s.notes))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    err = next(ln for ln in done.stdout.splitlines() if ln.startswith("ERROR"))
    assert err.startswith("ERROR provider provider 'openvino' was requested but cannot run")
    assert "the openvino package is not installed (pip install 'unet-edge[openvino]')" in err
    auto = next(ln for ln in done.stdout.splitlines() if ln.startswith("AUTO"))
    assert "auto: openvino unavailable (the openvino package is not installed" in auto
    assert auto.split()[1] in ("cpu", "cuda", "tensorrt")


# --- the shipped model on real data -------------------------------------------------


@pytest.mark.slow
@needs_openvino
def test_shipped_model_fp32_changes_no_class_on_isbi_20_24(isbi: Path) -> None:
    """OpenVINO fp32 vs onnxruntime fp32 on ISBI slices 20-24, shipped model, default tiles."""
    from unet_edge import io

    ort_seg, ov_seg = Segmenter(None, "cpu"), Segmenter(None, "openvino")
    changed, worst = 0, 0.0
    for i in range(20, 25):
        image = io.read_image(isbi / "train" / "image" / f"{i}.png")
        a, b = ort_seg.predict(image), ov_seg.predict(image)
        changed += int(np.count_nonzero(processing.to_mask(a) != processing.to_mask(b)))
        worst = max(worst, float(np.max(np.abs(a - b))))
    assert worst < 1e-4
    assert changed == 0, f"{changed} pixels changed class (probability difference {worst:.2e})"


@pytest.mark.slow
@needs_openvino
def test_shipped_model_bf16_keeps_the_classes_on_isbi_20_24(isbi: Path) -> None:
    """The fastest path on CPUs with AMX/AVX512-BF16 keeps >= 99.5% of the fp32 classes.

    Measured: 99.955% (593 of 1.31 M pixels changed) on a Xeon with AMX.
    """
    if not _has_bf16():
        pytest.skip("this CPU has no bf16 arithmetic (AVX512-BF16 or AMX) that OpenVINO uses")
    from unet_edge import io

    ref, fast = Segmenter(None, "cpu"), Segmenter(None, "openvino", precision="bf16")
    changed = total = 0
    for i in range(20, 25):
        image = io.read_image(isbi / "train" / "image" / f"{i}.png")
        a, b = processing.to_mask(ref.predict(image)), processing.to_mask(fast.predict(image))
        changed += int(np.count_nonzero(a != b))
        total += a.size
    assert changed > 0, "bf16 changed no pixel: was it really computed in bf16?"
    assert 1 - changed / total >= 0.995, f"{changed} of {total} pixels changed class"


# --- command line ------------------------------------------------------------------


@needs_openvino
def test_cli_run_on_openvino_writes_the_cpu_mask(
    tiny_onnx: Path, frame: np.ndarray, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from unet_edge import io
    from unet_edge.cli import main

    src = io.write_png(tmp_path / "f.png", frame)
    runner, m = CliRunner(), str(tiny_onnx)
    r_cpu = runner.invoke(main, ["run", "-m", m, str(src), "-o", str(tmp_path / "cpu")])
    r_ov = runner.invoke(
        main, ["run", "-m", m, str(src), "-o", str(tmp_path / "ov"), "-p", "OpenVINO"]
    )
    assert r_cpu.exit_code == 0 and r_ov.exit_code == 0, r_ov.output
    assert "INFERENCE_PRECISION_HINT=f32" in r_ov.output  # the provider's note is shown
    a, b = (io.read_image(tmp_path / d / "f_mask.png") for d in ("cpu", "ov"))
    assert np.array_equal(a, b)


def test_cli_bf16_without_openvino_is_one_line(tiny_onnx: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from unet_edge.cli import main

    src = tmp_path / "f.png"
    src.write_bytes(b"")  # never read: the Segmenter refuses first
    args = ["run", "-m", str(tiny_onnx), str(src), "-o", str(tmp_path / "o"), "--precision", "bf16"]
    r = CliRunner().invoke(main, args)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1
    assert lines[0].startswith("Error: precision 'bf16' needs the openvino provider")
    assert lines[0].endswith("; that is --precision fp32")
