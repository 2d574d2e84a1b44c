"""The domain guard of the shipped EM model, end to end: EM slices from any camera, crops and
mosaics are in its domain (no false alarm); generated fluorescence, photograph stand-ins and
noise are flagged, in the API result, in provenance and as a warning of ``unet-edge run``.

The image sets are benchmarks/domain_guard.py's (the table of
docs/explanations/domain-guard.md): native ISBI slices the statistics were not
computed on (00-19 were), and foreign images generated there, seeded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from bench_fixtures import load_benchmark
from click.testing import CliRunner

from unet_edge import Segmenter, domain, io
from unet_edge.cli import main


@pytest.fixture(scope="module")
def shipped() -> Iterator[Segmenter]:
    with Segmenter() as seg:
        yield seg


@pytest.fixture(scope="module")
def sets() -> ModuleType:
    """benchmarks/domain_guard.py: the native and foreign image sets."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "domain_guard.py"
    if not path.is_file():
        pytest.skip("benchmarks/domain_guard.py is not here (tests run outside the tree)")
    return load_benchmark("domain_guard")


def _flags(seg: Segmenter, images: Iterator[tuple[str, np.ndarray]]) -> dict[str, float]:
    """label -> score of every image, and whether it was flagged (score > threshold)."""
    out = {}
    for label, im in images:
        q = seg.analyze(im).quality
        assert q is not None and len(q) == 1
        assert q[0].in_domain == (q[0].score <= q[0].threshold)
        out[label] = q[0].score if q[0].in_domain else -q[0].score
    return out


def test_the_shipped_model_carries_statistics_of_its_training_slices(shipped: Segmenter) -> None:
    assert shipped.guard is not None
    stats = shipped.guard.stats
    assert stats.images == 20 and "00-19" in stats.source  # never the held-out slices
    assert set(stats.features) == set(domain.feature_names(shipped.info.class_names))


def test_em_slices_pass_and_generated_foreign_images_are_flagged(
    shipped: Segmenter, sets: ModuleType, isbi: Path
) -> None:
    """A quick subset of the slow test below: one held-out slice in a few of its camera
    variants and crops; fluorescence, noise and a photograph stand-in."""
    native = list(sets.native_images(isbi, train=("21",), test=()))
    scores = _flags(shipped, iter(native[:5] + native[-2:]))
    assert all(s >= 0 for s in scores.values()), f"false alarms: {scores}"
    rng = np.random.default_rng(3)
    foreign = [
        ("fluorescence", sets.fluorescence(rng, 256)),
        ("noise", rng.integers(0, 256, (256, 256)).astype(np.uint8)),
        ("shapes", sets.shapes(rng, 256)),
    ]
    scores = _flags(shipped, iter(foreign))
    assert all(s < 0 for s in scores.values()), f"missed: {scores}"


@pytest.mark.slow
def test_no_false_alarm_on_native_and_every_foreign_image_flagged(
    shipped: Segmenter, sets: ModuleType, isbi: Path
) -> None:
    native = _flags(shipped, sets.native_images(isbi))
    assert len(native) > 600  # 35 slices x (1 + 15 cameras + 2 crops) and 8 mosaics
    assert all(s >= 0 for s in native.values()), {k: s for k, s in native.items() if s < 0}
    foreign = _flags(shipped, sets.foreign_images())
    assert all(s < 0 for s in foreign.values()), {k: s for k, s in foreign.items() if s >= 0}


def test_run_warns_on_stderr_and_records_quality_in_provenance(
    sets: ModuleType, isbi_image: np.ndarray, tmp_path: Path
) -> None:
    rng = np.random.default_rng(4)
    io.write_tiff(tmp_path / "nuclei.tif", sets.fluorescence(rng, 256))
    io.write_png(tmp_path / "em.png", isbi_image[:256, :256])
    runner = CliRunner()
    r = runner.invoke(main, ["run", str(tmp_path / "nuclei.tif"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    warning = f"Warning: {tmp_path / 'nuclei.tif'} looks unlike the training data of "
    assert r.stderr.startswith(warning + "isbi2012-default (score "), r.stderr
    assert r.stdout == ""
    prov = io.read_provenance(tmp_path / "o" / "nuclei_mask.tif")
    assert prov["quality"][0]["in_domain"] is False
    assert prov["quality"][0]["score"] > prov["quality"][0]["threshold"]
    r = runner.invoke(main, ["run", str(tmp_path / "em.png"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 0 and "Warning" not in r.stderr, r.stderr
    args = ["run", str(tmp_path / "nuclei.tif"), "-o", str(tmp_path / "q"), "-q"]
    r = runner.invoke(main, args)
    assert r.exit_code == 0 and r.output == ""  # -q: only errors


def test_stream_frames_carry_their_quality(
    shipped: Segmenter, sets: ModuleType, isbi_image: np.ndarray
) -> None:
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, (200, 200)).astype(np.uint8)
    frames = [isbi_image[:200, :200], sets.fluorescence(rng, 200, bits=8), noise]
    results = list(shipped.stream(frames, drop="none"))
    assert all(r.ok for r in results)
    assert [r.quality.in_domain if r.quality else None for r in results] == [True, False, False]
    same = shipped.analyze(frames[1]).quality
    assert same is not None and results[1].quality == same[0]  # the same score as analyze


def test_napari_notification_text_and_layer_provenance(
    shipped: Segmenter, sets: ModuleType
) -> None:
    from unet_edge.napari import _segment

    rng = np.random.default_rng(6)
    pred = shipped.analyze(sets.fluorescence(rng, 200))
    text = _segment.domain_warning(shipped, pred, "nuclei")
    assert text is not None
    assert text.startswith("nuclei looks unlike the training data of isbi2012-default (score")
    assert _segment.provenance(shipped, pred, "nuclei")["quality"][0]["in_domain"] is False


def test_export_records_the_statistics_of_the_training_images(
    tiny_ckpt: Path, isbi: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data" / "image"
    data.mkdir(parents=True)
    for n in ("00", "01", "02"):
        im = io.read_image(isbi / "train" / "image" / f"{n}.png")
        io.write_png(data / f"{n}.png", im[:200, :200])
    out = tmp_path / "m.onnx"
    args = ["export", str(tiny_ckpt), "-o", str(out), "--domain-data", str(data.parent), "-q"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    with Segmenter(out) as seg:
        assert seg.guard is not None and seg.guard.stats.images == 3
        pred = seg.analyze(io.read_image(data / "01.png"))
    assert pred.in_domain is True  # one of its own training images
    r = CliRunner().invoke(main, ["export", str(tiny_ckpt), "-o", str(tmp_path / "p.onnx")])
    with Segmenter(tmp_path / "p.onnx") as seg:
        assert seg.guard is None  # without training images: no statistics, no guard


def test_info_says_whether_a_model_has_training_statistics(tiny_onnx: Path) -> None:
    r = CliRunner().invoke(main, ["info"])
    assert r.exit_code == 0, r.output
    assert "domain     20 training images (ISBI 2012 training slices 00-19" in r.output
    r = CliRunner().invoke(main, ["info", "-m", str(tiny_onnx)])
    assert r.exit_code == 0 and "domain     no training statistics" in r.output


def test_a_slice_at_another_pixel_size_is_scored_as_the_model_sees_it(
    shipped: Segmenter, isbi: Path
) -> None:
    """Given its pixel size, a slice upsampled 2x is resampled to the model's 4 nm, and scored
    there (on the model's grid): it looks like a training slice again."""
    import cv2

    im = io.read_image(isbi / "test" / "image" / "05.png")
    up = cv2.resize(im, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    native, told = (shipped.analyze(up, pixel_size=p).quality for p in (None, 0.002))
    assert native is not None and told is not None
    assert told[0].in_domain and told[0].score < native[0].score / 2
