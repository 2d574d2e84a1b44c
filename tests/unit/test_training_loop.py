"""Loss, training loop, checkpoints and resume on real ISBI crops (needs torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unet_edge.config import Normalization

torch = pytest.importorskip("torch", reason="training tests need the [train] extra (torch)")

from unet_edge.errors import CheckpointError, ConfigError, DataError, OutputExistsError  # noqa: E402
from unet_edge.geometry import Geometry  # noqa: E402
from unet_edge.training import checkpoint as ckpt  # noqa: E402
from unet_edge.training.data import SegmentationData  # noqa: E402
from unet_edge.training.loop import (  # noqa: E402
    TrainConfig,
    last_path,
    parse_names,
    predict_whole,
    train,
    with_threshold,
)
from unet_edge.training.loss import weighted_cross_entropy  # noqa: E402
from unet_edge.training.model import UNet  # noqa: E402

ISBI = Path(__file__).resolve().parents[3] / "shared" / "data" / "isbi2012"
pytestmark = pytest.mark.skipif(
    not (ISBI / "train" / "image").is_dir(),
    reason=f"ISBI 2012 data not found at {ISBI} (expected ../shared next to the repository)",
)

TINY = {"width": 4, "depth": 2, "tile": 92, "threads": 1, "val_every": 2, "seed": 11}


def test_weighted_cross_entropy_weights_pixels():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    labels = torch.tensor([[[1, 1]]])
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    w = torch.tensor([[[3.0, 0.0]]])
    assert weighted_cross_entropy(logits, labels, w).item() == pytest.approx(3 * ce[0, 0, 0] / 2)


@pytest.fixture
def one_thread():
    """One torch thread: on shared 2-core machines two spinning threads cost more than they give."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_few_steps_lower_the_loss_on_isbi_crops(one_thread):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = SegmentationData.from_folder(ISBI / "train", names=["00", "01"])
    norm = data.normalization()
    geo = Geometry(depth=2)
    batch = [data.sample(rng, geo, 108, norm) for _ in range(2)]
    x = torch.from_numpy(np.stack([s.image for s in batch]))
    y = torch.from_numpy(np.stack([s.labels for s in batch]))
    w = torch.from_numpy(np.stack([s.weights for s in batch]))
    model = UNet(TrainConfig(width=8, depth=2, tile=108).architecture)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        before = weighted_cross_entropy(model(x), y, w).item()
    for _ in range(15):
        loss = weighted_cross_entropy(model(x), y, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = weighted_cross_entropy(model(x), y, w).item()
    assert after < 0.8 * before


def test_train_writes_best_and_last_checkpoints(tmp_path: Path):
    cfg = TrainConfig(steps=4, val_names=("20",), train_names=("00", "01"), **TINY)
    events = []
    result = train(cfg, ISBI / "train", tmp_path / "m.pt", progress=events.append)
    assert [e.step for e in events] == [1, 2, 3, 4]
    assert [e.val is not None for e in events] == [False, True, False, True]
    assert result.output.is_file() and last_path(result.output).is_file()
    best = ckpt.load(result.output)
    assert best.class_names == ("membrane", "cell")
    assert best.metrics["step"] == result.best_step
    for key in ("pixel_error", "rand_error", "rand_error_expanded", "vi", "iou", "dice"):
        assert 0.0 <= best.metrics[key] < 20
    assert best.training["train_names"] == ["00", "01"] and best.training["val_names"] == ["20"]
    assert len(ckpt.load(last_path(result.output)).training["history"]) == 2
    assert "optimizer" not in best.training  # lean: the optimiser state is in .last only
    with pytest.raises(CheckpointError, match=r"m\.last\.pt"):
        train(cfg, ISBI / "train", tmp_path / "m2.pt", resume=result.output)
    with pytest.raises(OutputExistsError, match="overwriting was not asked for"):
        train(cfg, ISBI / "train", tmp_path / "m.pt")
    # validation sees the whole image, mirror-padded like the runtime
    data = SegmentationData.from_folder(ISBI / "train", names=["20"])
    probs = predict_whole(best.build_model(), data.images[0], best.normalization)
    assert probs.shape == (2, 512, 512) and np.allclose(probs.sum(0), 1, atol=1e-5)


class Interrupted(Exception):
    pass


def test_resume_continues_exactly(tmp_path: Path):
    full = TrainConfig(steps=4, val_names=("20",), train_names=("00",), **TINY)
    train(full, ISBI / "train", tmp_path / "full.pt")

    def stop_at_2(event):
        if event.step == 2:  # after the step-2 checkpoint was written
            raise Interrupted

    with pytest.raises(Interrupted):
        train(full, ISBI / "train", tmp_path / "cut.pt", progress=stop_at_2)
    assert ckpt.load(last_path(tmp_path / "cut.pt")).training["step"] == 2
    train(full, ISBI / "train", tmp_path / "resumed.pt", resume=last_path(tmp_path / "cut.pt"))
    a = ckpt.load(last_path(tmp_path / "full.pt"))
    b = ckpt.load(last_path(tmp_path / "resumed.pt"))
    assert a.training["step"] == b.training["step"] == 4
    for k, v in a.state_dict.items():
        torch.testing.assert_close(b.state_dict[k], v, rtol=0, atol=1e-6)


def test_resume_refuses_another_architecture(tmp_path: Path):
    cfg = TrainConfig(steps=1, val_names=("20",), train_names=("00",), **TINY)
    train(cfg, ISBI / "train", tmp_path / "a.pt")
    wider = TrainConfig(steps=2, val_names=("20",), train_names=("00",), **{**TINY, "width": 8})
    with pytest.raises(CheckpointError, match="architecture"):
        train(wider, ISBI / "train", tmp_path / "b.pt", resume=tmp_path / "a.pt")


def test_config_and_split_errors(tmp_path: Path):
    assert parse_names("20-24") == ("20", "21", "22", "23", "24")
    assert parse_names("a, 07-08") == ("a", "07", "08")
    with pytest.raises(ConfigError, match="not legal"):
        TrainConfig(tile=100)
    with pytest.raises(ConfigError, match=r"Did you mean .adam."):
        TrainConfig(optimizer="adma")
    with pytest.raises(DataError, match=r"\['99'\] have no image"):
        train(TrainConfig(val_names=("99",), **TINY), ISBI / "train", tmp_path / "x.pt")


def test_with_threshold_moves_the_argmax_to_the_threshold(one_thread):
    torch.manual_seed(1)
    model = UNet(TrainConfig(width=4, depth=2, tile=92).architecture)
    with torch.no_grad():
        model.head.bias[1] += 0.3  # some pixels on both sides of any threshold
    base = ckpt.from_model(model, Normalization(), ("membrane", "cell"))
    image = np.random.default_rng(0).random((40, 50, 1)).astype(np.float32)
    p = predict_whole(base.build_model(), image, base.normalization)[1]
    for t in (0.3, 0.5, 0.7):
        shifted = with_threshold(base, t)
        q = predict_whole(shifted.build_model(), image, shifted.normalization)
        assert shifted.training["threshold"] == t
        np.testing.assert_array_equal(q.argmax(0) == 1, p > t)
    with pytest.raises(ConfigError, match=r"in \(0, 1\)"):
        with_threshold(base, 1.0)


def test_paper_sgd_option_trains_and_resumes(tmp_path: Path):
    cfg = TrainConfig(
        steps=2, optimizer="sgd", lr=1e-3, val_names=("20",), train_names=("00",), **TINY
    )
    result = train(cfg, ISBI / "train", tmp_path / "sgd.pt")
    state = ckpt.load(last_path(result.output)).training
    assert state["config"]["optimizer"] == "sgd" and state["config"]["momentum"] == 0.99
    assert "momentum_buffer" in next(iter(state["optimizer"]["state"].values()))
