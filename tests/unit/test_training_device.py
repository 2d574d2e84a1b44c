"""Training device: cpu / cuda / auto, the autocast choice, a clear error without CUDA, and
the same checkpoints (tiny runs on a synthetic folder; the CUDA run needs a GPU)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch", reason="training tests need the [train] extra (torch)")

from unet_edge import io  # noqa: E402
from unet_edge.cli import main  # noqa: E402
from unet_edge.errors import ConfigError, ProviderError  # noqa: E402
from unet_edge.training import checkpoint as ckpt  # noqa: E402
from unet_edge.training.config import TrainConfig  # noqa: E402
from unet_edge.training.device import (  # noqa: E402
    CPU,
    TrainDevice,
    autocast_dtype,
    choose,
    resolve,
)
from unet_edge.training.loop import last_path, train  # noqa: E402

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TINY = ["--width", "2", "--depth", "2", "--tile", "92", "--steps", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 96x112 images with blob labels (no real data needed)."""
    root = tmp_path_factory.mktemp("train_data")
    (root / "image").mkdir()
    (root / "label").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :112]
    for i in range(3):
        cells = np.sin(xx / (5 + i)) * np.cos(yy / 7) > -0.3
        image = np.where(cells, 170, 60) + rng.integers(0, 40, cells.shape)
        io.write_png(root / "image" / f"{i:02d}.png", image.astype(np.uint8))
        io.write_png(root / "label" / f"{i:02d}.png", np.where(cells, 255, 0).astype(np.uint8))
    return root


def test_autocast_dtype_prefers_bfloat16() -> None:
    assert autocast_dtype(True) is torch.bfloat16
    assert autocast_dtype(False) is torch.float16


def test_choose_without_a_gpu() -> None:
    assert choose("cpu", None) is CPU and choose("cpu", "Some GPU") is CPU
    auto = choose("auto", None, why_not="this PyTorch is built without CUDA")
    assert auto.name == "cpu" and auto.amp is None
    assert auto.note == "auto: this PyTorch is built without CUDA; training on the CPU"
    with pytest.raises(ProviderError, match="built without CUDA; train on the CPU") as e:
        choose("cuda", None, why_not="this PyTorch is built without CUDA")
    assert e.value.option == "device"
    with pytest.raises(ConfigError, match="cuda"):
        choose("gpu", None)


@pytest.mark.parametrize(
    ("bf16", "dtype", "how"), [(True, "bfloat16", "bfloat16 autocast"), (False, "float16", "loss")]
)
def test_choose_with_a_gpu(bf16: bool, dtype: str, how: str) -> None:
    for asked in ("cuda", "auto"):
        dev = choose(asked, "NVIDIA H100", bf16_supported=bf16)
        assert dev.name == "cuda" and dev.amp is getattr(torch, dtype)
        assert "NVIDIA H100" in dev.note and how in dev.note
        assert dev.note.startswith("auto: ") == (asked == "auto")
        assert dev.to_dict() == {"device": "cuda", "autocast": dtype}
    assert CPU.to_dict() == {"device": "cpu", "autocast": None}


def test_loss_scaling_only_for_float16() -> None:
    assert CPU.grad_scaler() is None
    assert TrainDevice("cuda", torch.bfloat16).grad_scaler() is None
    with warnings.catch_warnings():  # without CUDA the scaler warns that it is disabled
        warnings.simplefilter("ignore", UserWarning)
        scaler = TrainDevice("cuda", torch.float16).grad_scaler()
    assert isinstance(scaler, torch.amp.GradScaler)


@needs_no_cuda
def test_cuda_without_cuda_is_a_one_line_error(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match=r"PyTorch .* (built without CUDA|sees no GPU)"):
        resolve("cuda")
    out = tmp_path / "c.pt"
    r = CliRunner().invoke(main, ["train", str(folder), "-o", str(out), *TINY, "--device", "cuda"])
    assert r.exit_code == 1 and not out.exists()
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: training on CUDA was asked for")
    assert lines[0].endswith("that is --device cpu, or --device auto")


def test_cpu_and_auto_train_the_same_checkpoint_here(folder: Path, tmp_path: Path) -> None:
    """``--device cpu`` (the default) is unchanged; ``auto`` says what it took and, without a
    GPU, trains the same weights. Checkpoints: float32 CPU tensors, the device recorded."""
    runner = CliRunner()
    paths = {}
    for device in ("cpu", "auto"):
        paths[device] = tmp_path / f"{device}.pt"
        args = ["train", str(folder), "-o", str(paths[device]), *TINY, "--device", device]
        r = runner.invoke(main, args)
        assert r.exit_code == 0, r.output
        if device == "auto":
            assert "auto: " in r.output and ("on the CPU" in r.output or "on cuda" in r.output)
        else:
            assert "training on" not in r.output  # said only with -v
    a, b = ckpt.load(paths["cpu"]), ckpt.load(paths["auto"])
    assert a.training["device"] == "cpu" and a.training["autocast"] is None
    for k, v in a.state_dict.items():
        assert v.dtype == torch.float32 and v.device.type == "cpu", k
        if not torch.cuda.is_available():
            assert torch.equal(v, b.state_dict[k]), k
    # the default (no --device) is the CPU: same weights as --device cpu
    cfg = TrainConfig(width=2, depth=2, tile=92, steps=2, threads=1)
    default = train(cfg, folder, tmp_path / "default.pt")
    for k, v in ckpt.load(default.output).state_dict.items():
        assert torch.equal(v, a.state_dict[k]), k


@pytest.mark.gpu
@needs_cuda
def test_cuda_training_with_mixed_precision(folder: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(width=4, depth=2, tile=92, steps=4, threads=1, val_every=2, val_names=("02",))
    dev = resolve("cuda")
    assert dev.name == "cuda" and dev.amp in (torch.bfloat16, torch.float16)
    losses: list[float] = []
    result = train(cfg, folder, tmp_path / "g.pt", lambda e: losses.append(e.loss), device=dev)
    assert len(losses) == 4 and all(np.isfinite(losses))
    best = ckpt.load(result.output)
    assert best.training["device"] == "cuda"
    assert best.training["autocast"] == str(dev.amp).removeprefix("torch.")
    assert all(
        v.dtype == torch.float32 and v.device.type == "cpu" for v in best.state_dict.values()
    )
    assert 0 <= best.metrics["pixel_error"] <= 1
    # the .last state resumes on the CPU, the format being the same
    more = dataclasses.replace(cfg, steps=5)
    train(more, folder, tmp_path / "g2.pt", resume=last_path(result.output), device="cpu")
