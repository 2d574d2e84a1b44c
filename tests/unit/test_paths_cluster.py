"""paths/cluster.py: files segmented on a Dask cluster equal the windowed path's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_edge import io
from unet_edge.errors import InputError
from unet_edge.paths.windowed import ObjectFiles, segment_windows
from unet_edge.runtime import Segmenter

distributed = pytest.importorskip("distributed")

from unet_edge.paths import cluster  # noqa: E402  (needs the [dask] extra)


def test_worker_threads_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster.os, "cpu_count", lambda: 16)
    assert cluster.worker_threads("local:4") == 4
    assert cluster.worker_threads("LOCAL:32") == 1
    assert cluster.worker_threads("local") == 1  # one worker per core
    assert cluster.worker_threads("tcp://10.0.0.2:8786") is None  # the workers' own default


@pytest.mark.parametrize("spec", ["", "two words", "local:x y"])
def test_bad_addresses_are_refused_before_connecting(spec: str) -> None:
    with pytest.raises(InputError, match="not a Dask scheduler") as e, cluster.connect(spec):
        pass
    assert e.value.option == "dask"


def test_local_zero_workers_is_refused() -> None:
    with pytest.raises(InputError, match="no worker"), cluster.connect("local:0"):
        pass


@pytest.mark.dask
def test_on_a_cluster_equals_window_by_window(tiny_onnx: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = (rng.random((500, 420)) * 4000).astype(np.uint16)
    image = np.cumsum(np.cumsum(image, 0), 1) % 4096  # structure, so there are objects
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, image.astype(np.uint16))
    seg = Segmenter(tiny_onnx, tile=300)
    outs = {}
    seen: list[tuple[int, int]] = []
    for name in ("here", "cluster"):
        files = ObjectFiles(tmp_path / f"{name}_labels.tif", tmp_path / f"{name}.csv", 3)
        with io.TiffWindows(src) as win:
            if name == "here":
                segment_windows(seg, win, tmp_path / f"{name}_mask.tif", objects=files)
                continue
            with (
                distributed.LocalCluster(
                    n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None
                ) as lc,
                distributed.Client(lc) as client,
            ):
                cluster.segment_windows_dask(
                    seg,
                    win,
                    tmp_path / f"{name}_mask.tif",
                    client=client,
                    objects=files,
                    chunk=200,  # rounded to the stride: several bands, the last one taller
                    progress=lambda d, t: seen.append((d, t)),
                )
        outs[name] = files
    for kind in ("mask", "labels"):
        want = tifffile.imread(tmp_path / f"here_{kind}.tif")
        assert np.array_equal(tifffile.imread(tmp_path / f"cluster_{kind}.tif"), want), kind
    assert tifffile.imread(tmp_path / "here_labels.tif").max() > 10
    assert (tmp_path / "here.csv").read_text() == (tmp_path / "cluster.csv").read_text()
    assert seen[-1][0] == seen[-1][1] > 1 and [d for d, _ in seen] == list(range(1, len(seen) + 1))
    with tifffile.TiffFile(tmp_path / "cluster_labels.tif") as tf:  # strips of one height
        page = tf.pages.first
        assert len(page.dataoffsets) == -(-500 // page.rowsperstrip)


def test_strips_cut_bands_to_one_height() -> None:
    from unet_edge.paths.windowed import strips

    bands = [np.arange(i * 10, i * 10 + n)[:, None] for i, n in enumerate((4, 4, 7))]
    got = list(strips(iter(bands), 4))
    assert [len(s) for s in got] == [4, 4, 4, 3]
    assert np.array_equal(np.concatenate(got), np.concatenate(bands))
