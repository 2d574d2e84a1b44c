"""Training checkpoints (unet_edge/training/checkpoint.py): saved atomically, loaded without
unpickling code, and every file that is not one refused with what it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from unet_edge.config import Normalization, UNetConfig  # noqa: E402
from unet_edge.errors import CheckpointError  # noqa: E402
from unet_edge.training import checkpoint  # noqa: E402
from unet_edge.training.model import UNet  # noqa: E402

CONFIG = UNetConfig(base_width=2, depth=2)


@pytest.fixture()
def ck() -> checkpoint.Checkpoint:
    torch.manual_seed(0)
    return checkpoint.from_model(UNet(CONFIG), Normalization(), ("bg", "fg"), name="small",
                                 training={"steps": 3}, metrics={"loss": 0.5})  # fmt: skip


def test_round_trip(ck: checkpoint.Checkpoint, tmp_path: Path) -> None:
    path = checkpoint.save(ck, tmp_path / "c.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left
    back = checkpoint.load(path)
    assert (back.config, back.normalization, back.class_names) == (
        CONFIG,
        Normalization(),
        ("bg", "fg"),
    )
    assert (back.name, back.training, back.metrics) == ("small", {"steps": 3}, {"loss": 0.5})
    x = torch.rand(1, 1, 44, 44)
    with torch.no_grad():
        assert torch.equal(back.build_model()(x), ck.build_model()(x))
    assert not back.build_model().training  # eval mode


def test_class_names_must_fit_the_model() -> None:
    with pytest.raises(CheckpointError, match="3 class names for a model with 2 classes"):
        checkpoint.from_model(UNet(CONFIG), Normalization(), ("a", "b", "c"))


def test_weights_that_do_not_fit_are_refused(ck: checkpoint.Checkpoint) -> None:
    wrong = checkpoint.Checkpoint(UNetConfig(base_width=4, depth=2), ck.state_dict,
                                  ck.normalization, ck.class_names)  # fmt: skip
    with pytest.raises(CheckpointError, match="checkpoint weights do not fit its architecture"):
        wrong.build_model()


def test_save_needs_its_folder(ck: checkpoint.Checkpoint, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist; create it first"):
        checkpoint.save(ck, tmp_path / "none" / "c.pt")


class _Code:
    """An object whose unpickling would run code (here: only construct itself)."""


def test_what_is_not_a_checkpoint_is_refused(ck: checkpoint.Checkpoint, tmp_path: Path) -> None:
    cases: dict[str, object] = {
        "list.pt": [1, 2],
        "bare.pt": dict(ck.state_dict),
        "other.pt": {"epoch": 3},
        "version.pt": {**ck.to_dict(), "format_version": 999},
        "missing.pt": {k: v for k, v in ck.to_dict().items() if k != "class_names"},
        "field.pt": {**ck.to_dict(), "config": {"depth": "deep"}},
    }
    said = {
        "list.pt": "holds a list, not a unet-edge checkpoint dictionary",
        "bare.pt": "is a bare state_dict",
        "other.pt": "is not a unet-edge checkpoint (no 'format'",
        "version.pt": "has checkpoint format version 999",
        "missing.pt": "is missing class_names",
        "field.pt": "has an invalid field",
    }
    for name, content in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(CheckpointError, match=re.escape(said[name])):
            checkpoint.load(tmp_path / name)
    torch.save({"x": _Code()}, tmp_path / "code.pt")
    with pytest.raises(CheckpointError, match="refuses to unpickle them"):
        checkpoint.load(tmp_path / "code.pt")
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint"):
        checkpoint.load(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "none.pt")
