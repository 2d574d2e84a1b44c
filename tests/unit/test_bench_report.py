"""The bench's outputs (unet_edge/bench/report.py): bench.json, bench.md and bench.png, all
written or none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from unet_edge import bench
from unet_edge.bench import report


def test_outputs_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = {"left_out": {}, "rows": []}
    for name in ("bench.json", "bench.md", "bench.png"):
        (tmp_path / name).write_text("old")

    def broken_plot(res: dict[str, Any], path: Path) -> None:
        path.write_bytes(b"\x89PNG half")
        raise RuntimeError("plot failed half-way")

    monkeypatch.setattr(report, "markdown", lambda res: "# new\n")
    monkeypatch.setattr(report, "plot", broken_plot)
    with pytest.raises(RuntimeError):
        bench.write_results(result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.md", "bench.png"]
    assert all((tmp_path / n).read_text() == "old" for n in ("bench.json", "bench.md", "bench.png"))
    monkeypatch.setattr(report, "plot", lambda res, path: path.write_bytes(b"\x89PNG new"))
    written = bench.write_results(result, tmp_path)
    assert [p.name for p in written] == ["bench.png", "bench.md", "bench.json"]
    assert json.loads((tmp_path / "bench.json").read_text()) == result
    assert (tmp_path / "bench.md").read_text() == "# new\n"
