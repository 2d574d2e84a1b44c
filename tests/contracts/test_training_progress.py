"""Training you can watch (unet_edge.training.loop events, ``unet-edge train``'s display):
step, loss, rate and time left from the first step; validation only when measured; class
names, the recorded training data and ``--init`` fine-tuning."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import one_line_error
from click.testing import CliRunner

from unet_edge.cli import main
from unet_edge.errors import CheckpointError, ConfigError
from unet_edge.training.config import TrainConfig, class_names_for

torch = pytest.importorskip("torch", reason="needs the [train] extra")
from unet_edge.training import checkpoint as ckpt  # noqa: E402
from unet_edge.training.loop import TrainEvent, init_checkpoint, train  # noqa: E402

TINY = ["--width", "2", "--depth", "2", "--tile", "92", "--threads", "1", "--seed", "3"]
LINE = re.compile(r"^step (\d+)/(\d+)  loss [\d.]+  [\d.]+ steps/s  \d+:\d\d left$")


def _train(tmp: Path, isbi: Path, *extra: str) -> tuple[Path, str]:
    out = tmp / "m.pt"
    args = ["train", str(isbi / "train"), "-o", str(out), *TINY, "--train-names", "00"]
    r = CliRunner().invoke(main, [*args, *extra])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_event_rate_and_time_left() -> None:
    e = TrainEvent(step=30, steps=130, loss=0.5, lr=1e-3, elapsed_s=10.0, start=10)
    assert e.rate == pytest.approx(2.0) and e.eta_s == pytest.approx(50.0)


def test_no_validation_images_means_no_metrics_and_no_best(isbi: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(steps=3, val_every=2, train_names=("00",), width=2, depth=2, tile=92)
    events: list[TrainEvent] = []
    result = train(cfg, isbi / "train", tmp_path / "m.pt", progress=events.append)
    assert [(e.val, e.best) for e in events] == [(None, False)] * 3
    assert result.output.is_file() and {k for k in result.best_metrics} == {"step"}


def test_piped_display_prints_progress_lines_and_validation(isbi: Path, tmp_path: Path) -> None:
    _, output = _train(tmp_path, isbi, "--steps", "5", "--log-every", "2", "--val", "24")
    lines = output.splitlines()
    steps = [int(m.group(1)) for ln in lines if (m := LINE.match(ln))]
    assert steps == [1, 2, 4, 5]  # the first, every 2nd, the last
    val = [ln for ln in lines if ln.startswith("step 5: validation {")]
    assert len(val) == 1 and "pixel_error" in val[0] and "{}" not in output


def test_quiet_prints_nothing_and_no_val_says_so(isbi: Path, tmp_path: Path) -> None:
    _, quiet = _train(tmp_path, isbi, "--steps", "2", "-q")
    assert quiet == ""
    _, plain = _train(tmp_path, isbi, "--steps", "2", "--overwrite")
    assert "(best)" not in plain and "{}" not in plain and "no --val images" in plain


def test_classes_and_training_data_reach_checkpoint_and_onnx(isbi: Path, tmp_path: Path) -> None:
    out, _ = _train(
        tmp_path, isbi, "--steps", "1", "--classes", "background,nucleus", "--training-data", "EM"
    )
    c = ckpt.load(out)
    assert c.class_names == ("background", "nucleus") and c.training["config"]["training_data"]
    r = CliRunner().invoke(main, ["export", str(out), "-o", str(tmp_path / "m.onnx")])
    assert r.exit_code == 0, r.output
    from unet_edge import metadata

    info = metadata.read(tmp_path / "m.onnx")
    assert info.class_names == ("background", "nucleus")
    assert info.provenance["training_data"] == "EM"


def test_training_data_defaults_to_the_folder_read(isbi: Path, tmp_path: Path) -> None:
    out, _ = _train(tmp_path, isbi, "--steps", "1")
    assert ckpt.load(out).training["config"]["training_data"] == (
        "1 image/label pairs from the folder isbi2012/train"
    )


@pytest.mark.parametrize("text", ["cell", "a,a", "a,,b"])
def test_bad_class_names_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="distinct"):
        class_names_for(text)


def test_init_fine_tunes_a_checkpoint_and_refuses_onnx(
    isbi: Path, tmp_path: Path, tiny_onnx: Path
) -> None:
    base, _ = _train(tmp_path, isbi, "--steps", "1", "--width", "3", "--classes", "bg,fg")
    out = tmp_path / "ft.pt"
    args = ["train", str(isbi / "train"), "-o", str(out), "--depth", "2", "--tile", "92"]
    args += ["--steps", "1", "--threads", "1", "--train-names", "01", "--init", str(base)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    c = ckpt.load(out)  # width and classes came from the checkpoint
    assert c.config.base_width == 3 and c.class_names == ("bg", "fg")
    bad = ["train", str(isbi / "train"), "-o", str(tmp_path / "x.pt"), "--init", str(tiny_onnx)]
    msg = one_line_error(CliRunner().invoke(main, bad))
    assert "exported inference graph" in msg and "checkpoint (.pt)" in msg


def test_init_names_the_shipped_checkpoint_or_says_where_it_is(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "export/isbi2012-default/checkpoint.pt"
    if shipped.is_file():  # a source checkout
        assert init_checkpoint("isbi2012-default") == shipped
    with pytest.raises(CheckpointError, match=re.escape("export/isbi2012-default/checkpoint.pt")):
        init_checkpoint(tmp_path / "missing.pt")
