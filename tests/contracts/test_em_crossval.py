"""export/isbi2012-default/crossval.py: folds, the cross-validated choice of training length
and threshold, and the final model, run end to end on tiny data with a tiny recipe."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from bench_fixtures import make_tiny_data

pytest.importorskip("torch")
pytest.importorskip("skimage")

HERE = Path(__file__).resolve().parents[2] / "export" / "isbi2012-default"


def _load() -> ModuleType:
    sys.path.insert(0, str(HERE))  # crossval imports train.py beside it
    try:
        spec = importlib.util.spec_from_file_location("crossval", HERE / "crossval.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(HERE))


def _tiny_recipe(args: argparse.Namespace, **changes: object) -> object:
    """A 4-step recipe of a tiny network, validating every 2 steps, in place of train.py's."""
    from unet_edge.training.config import TrainConfig

    tiny = {"width": 4, "depth": 2, "tile": 76, "exposure": 0.0}
    return dataclasses.replace(TrainConfig(steps=4, val_every=2, threads=1, **tiny), **changes)


def _tiny_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, Path]:
    """crossval.py loaded with :func:`_tiny_recipe`, and a tiny data folder."""
    cv = _load()
    monkeypatch.setattr(cv, "_recipe", _tiny_recipe)
    (tmp_path / "data").mkdir()
    return cv, make_tiny_data(tmp_path / "data")


def test_folds_are_contiguous_and_cover_every_slice():
    cv = _load()
    names = [f"{i:02d}" for i in range(25)]
    parts = cv.folds(names, 5)
    assert parts[0] == ["00", "01", "02", "03", "04"] and parts[4][-1] == "24"
    assert [n for p in parts for n in p] == names
    assert [len(p) for p in cv.folds(names[:7], 3)] == [3, 2, 2]
    with pytest.raises(SystemExit, match=r"--folds must be 2\.\.25"):
        cv.folds(names, 1)


def test_the_choice_weighs_topology_under_the_pixel_ceiling():
    cv = _load()
    done = [
        {
            "names": ["a", "b"],
            "history": [{"step": 2, cv.SELECT: 0.3}, {"step": 4, cv.SELECT: 0.1}],
        },
        {"names": ["c"], "history": [{"step": 2, cv.SELECT: 0.0}, {"step": 4, cv.SELECT: 0.4}]},
    ]
    step, mean = cv.choose_length(done)
    assert mean == {2: pytest.approx(0.2), 4: pytest.approx(0.2)} and step == 2  # tie: shorter
    rows = [
        {"threshold": 0.2, "pixel_error": 0.07, cv.SELECT: 0.09},
        {"threshold": 0.3, "pixel_error": 0.079, cv.SELECT: 0.05},
        {"threshold": 0.4, "pixel_error": 0.09, cv.SELECT: 0.01},  # over the pixel ceiling
    ]
    assert cv.choose_threshold(rows)["threshold"] == 0.3
    # none under the ceiling: the one nearest to both targets, not the lowest pixel error
    # (0.2: max(0.088 / 0.08, 0.10 / 0.06) = 1.67; 0.3: 1.20; 0.4: max(1.37, 0.87) = 1.37)
    over = [
        {"threshold": 0.2, "pixel_error": 0.088, cv.SELECT: 0.100},
        {"threshold": 0.3, "pixel_error": 0.096, cv.SELECT: 0.0715},
        {"threshold": 0.4, "pixel_error": 0.1093, cv.SELECT: 0.052},
    ]
    assert cv.choose_threshold(over)["threshold"] == 0.3


def test_end_to_end_on_tiny_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cv, data = _tiny_run(tmp_path, monkeypatch)
    work = tmp_path / "work"
    monkeypatch.setattr(
        sys, "argv", ["crossval.py", str(data), "--work", str(work), "--folds", "3"]
    )
    cv.main()
    result = json.loads((work / "crossval.json").read_text())
    assert [f["names"] for f in result["folds"]] == [["s0"], ["s1"], ["s2"]]
    assert all([h["step"] for h in f["history"]] == [2, 4] for f in result["folds"])
    choice = result["choice"]
    assert choice["steps"] in (2, 4) and choice["threshold"] in cv.THRESHOLDS
    row = next(r for r in result["pooled_table"] if r["threshold"] == choice["threshold"])
    assert choice["estimate"]["pixel_error"] == row["pixel_error"]
    from unet_edge import metadata
    from unet_edge.training import checkpoint as ckpt

    final = ckpt.load(work / "final.pt")
    assert final.training["threshold"] == choice["threshold"]
    assert final.training["train_names"] == ["s0", "s1", "s2"]  # every slice, no validation
    info = metadata.read(work / "isbi2012-default.onnx")
    assert info.pixel_size is not None and info.pixel_size.x == cv.PIXEL_SIZE_UM
    assert info.domain  # the statistics of its training slices
    assert info.provenance["recipe"] == "export/isbi2012-default/crossval.py"


def test_an_interrupted_fold_resumes_and_folds_run_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """``--fold K`` trains only fold K; a fold stopped part-way resumes from its latest state
    and ends as the uninterrupted run does; a finished fold is kept."""
    cv, data = _tiny_run(tmp_path, monkeypatch)

    def folds(work: Path, *fold: str) -> None:
        argv = ["crossval.py", str(data), "--work", str(work), "--folds", "3", "--phase", "folds"]
        monkeypatch.setattr(sys, "argv", [*argv, *(a for k in fold for a in ("--fold", k))])
        cv.main()

    from unet_edge.training import checkpoint as ckpt
    from unet_edge.training import loop

    whole, parts = tmp_path / "whole", tmp_path / "parts"
    folds(whole, "1")
    assert sorted(p.name for p in whole.glob("*.pt")) == ["fold1.last.pt", "fold1.pt"]
    train = loop.train

    def stopped(*args: object, progress: Any, **kw: Any) -> object:
        """The real training, stopped (as by Ctrl-C) once step 2 has been validated."""

        def report(e: loop.TrainEvent) -> None:
            progress(e)
            if e.step == 2:
                raise KeyboardInterrupt

        return train(*args, progress=report, **kw)

    with monkeypatch.context() as m:
        m.setattr(loop, "train", stopped)
        with pytest.raises(KeyboardInterrupt):
            folds(parts, "1")
    assert cv.finished_step(parts / "fold1.pt") == 2
    folds(parts, "1")
    a, b = (ckpt.load(w / "fold1.last.pt").training for w in (whole, parts))
    assert b["step"] == 4 and [h["step"] for h in b["history"]] == [2, 4]
    # the same tiles and optimiser state (float sums on the CPU differ in the last bits
    # between two runs in one process; a fresh start or a lost random state moves far more)
    loss = [h["loss"] for h in a["history"]]
    assert [h["loss"] for h in b["history"]] == pytest.approx(loss, rel=1e-5)
    before = (parts / "fold1.last.pt").stat().st_mtime_ns
    folds(parts, "1")  # finished: kept as it is
    assert (parts / "fold1.last.pt").stat().st_mtime_ns == before
    with pytest.raises(SystemExit, match=r"--fold must be 0\.\.2"):
        folds(parts, "3")
    monkeypatch.setattr(
        sys, "argv", ["crossval.py", str(data), "--work", str(parts), "--folds", "3", "--fold", "1"]
    )
    with pytest.raises(SystemExit, match="use it with --phase folds"):
        cv.main()
