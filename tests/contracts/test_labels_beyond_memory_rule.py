"""Labels beyond memory follow the model's labelling rule exactly: a three-class model's
border class is given back window by window (``--large``), on a Dask cluster and chunk by
chunk (``label_dask``) as in memory, id for id, with the same object table and provenance."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from onnx_models import save_edited

from unet_edge import io
from unet_edge.config import UNetConfig
from unet_edge.objects.labels import label_classes
from unet_edge.objects.measure import measure_labels
from unet_edge.objects.table import write_csv
from unet_edge.paths.cluster import segment_windows_dask
from unet_edge.paths.files import segment_file
from unet_edge.paths.windowed import ObjectFiles, WindowObjects, output_windows
from unet_edge.runtime import Segmenter

# the random model draws class 1 almost everywhere and class 2 in specks: naming them border
# and cell gives thousands of small objects in a sea of border pixels, ties everywhere
NAMES = ["background", "border", "cell"]


@pytest.fixture(scope="module")
def three_class(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def state(d: dict) -> None:  # type: ignore[type-arg]
        d["output"].update(classes=NAMES, labelling={"border": "border"})

    path = tmp_path_factory.mktemp("border") / "three.onnx"
    return save_edited(path, UNetConfig(base_width=2, depth=2, classes=3), state)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoothed random 12-bit image: specks of cell in border for the random model."""
    rng = np.random.default_rng(4)
    pixels = cv2.GaussianBlur(rng.random((300, 380)), (0, 0), 2)
    pixels = (pixels - pixels.min()) / np.ptp(pixels)
    path = tmp_path_factory.mktemp("img") / "img.tif"
    tifffile.imwrite(path, (pixels * 4095).astype(np.uint16))
    return path


def _csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def _classes(seed: int, h: int, w: int) -> np.ndarray:
    """Blobs of three classes (0 background, 1 object, 2 border bands) on a coarse grid."""
    rng = np.random.default_rng(seed)
    small = rng.choice(3, size=(h // 4 + 1, w // 4 + 1), p=[0.4, 0.35, 0.25]).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


@pytest.mark.parametrize(("seed", "window"), [(0, (16, 16)), (1, (13, 29)), (2, (7, 5))])
def test_window_objects_give_the_border_back_and_measure_whole_objects(
    tmp_path: Path, seed: int, window: tuple[int, int]
) -> None:
    """No model: a three-class mask fed window by window (odd window sizes, thinner than
    the halo too) gives the labels and the table of the whole mask in memory."""
    h, w = 97, 83
    classes = _classes(seed, h, w)
    prob = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    raw = np.random.default_rng(seed + 1).integers(0, 4096, (h, w)).astype(np.uint16)
    files = ObjectFiles(tmp_path / "l.tif", tmp_path / "o.csv", min_size=5, border=(2,))

    def read(t: int, lf: int, hh: int, ww: int) -> np.ndarray:
        return raw[t : t + hh, lf : lf + ww]

    found = WindowObjects((h, w), [1], files, read)
    for t, lf, hh, ww in output_windows((h, w), window):
        part = (slice(t, t + hh), slice(lf, lf + ww))
        found.add((t, lf, hh, ww), classes[part], prob[part])
    found.write({}, None)
    want = label_classes(classes, (1,), min_size=5, border_classes=(2,))
    assert (want > 0).sum() > (label_classes(classes, (1,), min_size=5) > 0).sum()
    assert np.array_equal(tifffile.imread(files.labels), want)
    write_csv(tmp_path / "want.csv", measure_labels(want, prob=prob, raw=raw))
    assert _csv(files.table) == _csv(tmp_path / "want.csv")


def test_table_alone_window_by_window_measures_whole_objects(tmp_path: Path) -> None:
    h, w = 64, 70
    classes = _classes(7, h, w)
    files = ObjectFiles(None, tmp_path / "o.csv", border=(2,))
    found = WindowObjects((h, w), [1], files)
    for t, lf, hh, ww in output_windows((h, w), (16, 32)):
        found.add((t, lf, hh, ww), classes[t : t + hh, lf : lf + ww], np.ones((hh, ww), "f4"))
    found.write({}, None)
    want = label_classes(classes, (1,), border_classes=(2,))
    write_csv(tmp_path / "want.csv", measure_labels(want, prob=np.ones((h, w), "f4")))
    assert _csv(files.table) == _csv(tmp_path / "want.csv")


def test_large_equals_in_memory_with_a_three_class_model(
    three_class: Path, image: Path, tmp_path: Path
) -> None:
    seg = Segmenter(three_class, tile=96)
    asked = {"labels": True, "measure": True, "min_size": "3px"}
    whole = segment_file(seg, image, tmp_path / "mem", large=False, **asked)
    windowed = segment_file(seg, image, tmp_path / "win", large=True, **asked)
    assert windowed.windowed and not whole.windowed
    got = tifffile.imread(windowed.outputs["labels"])
    mask = seg.segment(tifffile.imread(image))
    assert seg.info.object_classes == (2,) and seg.info.border_classes == (1,)
    want = label_classes(mask, (2,), min_size=3, border_classes=(1,))
    cores = label_classes(mask, (2,), min_size=3)
    assert got.max() > 50 and (got > 0).sum() > 5 * (cores > 0).sum()  # given back
    assert np.array_equal(got, want)
    assert np.array_equal(got, tifffile.imread(whole.outputs["labels"]))
    assert _csv(windowed.outputs["objects"]) == _csv(whole.outputs["objects"])
    prov = io.read_provenance(windowed.outputs["labels"])["objects"]
    assert prov == io.read_provenance(whole.outputs["labels"])["objects"]
    assert prov["border"] == ["border"]


@pytest.mark.dask
def test_on_a_cluster_equals_in_memory_with_a_three_class_model(
    three_class: Path, image: Path, tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed", reason="needs the [dask] extra")
    seg = Segmenter(three_class, tile=96)
    with (
        distributed.LocalCluster(
            n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None
        ) as lc,
        distributed.Client(lc) as client,
    ):
        done = segment_file(seg, image, tmp_path, labels=True, measure=True, dask_client=client)
        files = ObjectFiles(tmp_path / "b.tif", tmp_path / "b.csv", border=(1,))
        with io.TiffWindows(image) as src:  # bands of 64 rows: the border crosses them
            segment_windows_dask(
                seg, src, tmp_path / "m.tif", client=client, chunk=64, objects=files
            )
    whole = segment_file(seg, image, tmp_path / "mem", labels=True, measure=True)
    want = tifffile.imread(whole.outputs["labels"])
    mask = seg.segment(tifffile.imread(image))
    assert np.array_equal(want, label_classes(mask, (2,), border_classes=(1,)))
    assert np.array_equal(tifffile.imread(done.outputs["labels"]), want)
    assert np.array_equal(tifffile.imread(files.labels), want)
    assert _csv(done.outputs["objects"]) == _csv(whole.outputs["objects"])
    assert _csv(files.table) == _csv(whole.outputs["objects"])
    assert io.read_provenance(done.outputs["labels"])["objects"]["border"] == ["border"]


@pytest.mark.dask
def test_label_dask_gives_the_border_back_chunk_by_chunk() -> None:
    da = pytest.importorskip("dask.array", reason="needs the [dask] extra")
    from unet_edge.paths.dask import label_dask

    classes = _classes(11, 150, 131)
    want = label_classes(classes, (1,), min_size=4, border_classes=(2,))
    for chunks in ((40, 40), (37, 53), ((10, 90, 50), (60, 11, 60))):
        lazy = da.from_array(classes, chunks=chunks)
        got = label_dask(lazy == 1, min_size=4, border=lazy == 2).compute()
        assert np.array_equal(got, want), chunks


@pytest.fixture(scope="module")
def dapi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 520 x 610 generated image of touching nuclei (the nuclei model's domain)."""
    from unet_edge.training.synthetic import nuclei_image

    image, _ = nuclei_image(121, (520, 610), diameter=22.0)
    path = tmp_path_factory.mktemp("dapi") / "dapi.tif"
    tifffile.imwrite(path, image)
    return path


def test_large_splits_the_nuclei_models_touching_nuclei_as_in_memory(
    dapi: Path, tmp_path: Path
) -> None:
    """-m nuclei states split watershed, min size 10px: --large follows it, id for id."""
    seg = Segmenter(model="nuclei", tile=124)  # many windows
    asked = {"labels": True, "measure": True}  # no min_size, no split: the model's rule
    whole = segment_file(seg, dapi, tmp_path / "mem", large=False, **asked)
    windowed = segment_file(seg, dapi, tmp_path / "win", large=True, **asked)
    got = tifffile.imread(windowed.outputs["labels"])
    want = seg.label(tifffile.imread(dapi))
    assert np.array_equal(got, want) and np.array_equal(
        got, tifffile.imread(whole.outputs["labels"])
    )
    unsplit = seg.label(tifffile.imread(dapi), split="none")
    assert want.max() > unsplit.max() + 5  # touching nuclei were split
    assert _csv(windowed.outputs["objects"]) == _csv(whole.outputs["objects"])
    prov = io.read_provenance(windowed.outputs["labels"])["objects"]
    assert prov == io.read_provenance(whole.outputs["labels"])["objects"]
    assert prov["split"] == "watershed" and prov["min_size"] == "10px"


@pytest.mark.parametrize("window", [(16, 16), (13, 29), (40, 7)])
def test_window_objects_split_then_give_the_border_back(tmp_path: Path, window) -> None:
    """No model: peanuts of the object class ringed by the border class, windows odd and
    thin; split, minimum size and border as label_classes does on the whole mask."""
    rng = np.random.default_rng(sum(window))
    h, w = 120, 131
    classes = np.zeros((h, w), np.uint8)
    for _ in range(25):
        y, x = (int(v) for v in rng.integers(0, (h, w)))
        cv2.circle(classes, (x, y), 10, 2, -1)
        cv2.circle(classes, (x, y), int(rng.integers(4, 9)), 1, -1)
        cv2.circle(classes, (x + 9, y + int(rng.integers(-4, 5))), int(rng.integers(4, 9)), 1, -1)
    files = ObjectFiles(tmp_path / "l.tif", tmp_path / "o.csv", 6, "watershed", border=(2,))
    found = WindowObjects((h, w), [1], files)
    for t, lf, hh, ww in output_windows((h, w), window):
        found.add((t, lf, hh, ww), classes[t : t + hh, lf : lf + ww], np.ones((hh, ww), "f4"))
    found.write({}, None)
    want = label_classes(classes, (1,), min_size=6, split="watershed", border_classes=(2,))
    assert want.max() > label_classes(classes, (1,), min_size=6).max()  # split
    assert np.array_equal(tifffile.imread(files.labels), want)
    write_csv(tmp_path / "want.csv", measure_labels(want, prob=np.ones((h, w), "f4")))
    assert _csv(files.table) == _csv(tmp_path / "want.csv")


def test_label_dask_refuses_the_split_it_cannot_do() -> None:
    pytest.importorskip("dask.array", reason="needs the [dask] extra")
    from unet_edge.errors import InputError
    from unet_edge.paths.dask import label_dask

    with pytest.raises(InputError, match=r"chunk by chunk.*segment_file\(large=True\)") as e:
        label_dask(np.ones((8, 8), bool), split="watershed")
    assert e.value.option == "split"


@pytest.mark.dask
def test_on_a_cluster_the_nuclei_models_split_equals_in_memory(dapi: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed", reason="needs the [dask] extra")
    seg = Segmenter(model="nuclei")
    with (
        distributed.LocalCluster(
            n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None
        ) as lc,
        distributed.Client(lc) as client,
    ):
        done = segment_file(seg, dapi, tmp_path, labels=True, dask_client=client)
    got = tifffile.imread(done.outputs["labels"])
    assert np.array_equal(got, seg.label(tifffile.imread(dapi)))
    assert io.read_provenance(done.outputs["labels"])["objects"]["split"] == "watershed"
