"""Where training runs: the CPU, or a CUDA GPU with mixed precision.

``cpu`` (the default) is the training unet-edge always did. ``cuda`` trains
on the first visible GPU under autocast: bfloat16 where the GPU supports it
(no loss scaling needed), else float16 with a gradient scaler; it refuses to
start when PyTorch sees no CUDA device instead of quietly using the CPU.
``auto`` takes CUDA when PyTorch sees a device, else the CPU, and says which.
The weights stay float32 on every device (autocast only lowers the precision
of each operation's inputs), so the checkpoints are the same files.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass
from typing import Any

import torch

from ..config import look_up
from ..errors import ProviderError


class Device(str, enum.Enum):
    CPU = "cpu"
    CUDA = "cuda"
    AUTO = "auto"  # CUDA if PyTorch sees a device, else the CPU


@dataclass(frozen=True)
class TrainDevice:
    """The device a training run uses, its autocast dtype (None: float32) and why."""

    name: str  # "cpu" or "cuda"
    amp: torch.dtype | None = None
    note: str = "training on the CPU"

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.name)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The mixed-precision context of the forward pass (nothing on the CPU)."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.name, dtype=self.amp)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A loss scaler, needed by float16 only (its range is too small for small gradients)."""
        return torch.amp.GradScaler(self.name) if self.amp is torch.float16 else None

    def to_dict(self) -> dict[str, Any]:
        """What the checkpoint records about the device."""
        amp = None if self.amp is None else str(self.amp).removeprefix("torch.")
        return {"device": self.name, "autocast": amp}


CPU = TrainDevice("cpu")


def autocast_dtype(bf16_supported: bool) -> torch.dtype:
    """bfloat16 when the GPU has it (float32's range, no loss scaling), else float16."""
    return torch.bfloat16 if bf16_supported else torch.float16


def choose(
    requested: str | Device, gpu: str | None, bf16_supported: bool = False, why_not: str = ""
) -> TrainDevice:
    """The device for ``requested``, given the GPU PyTorch sees (its name; None: no CUDA).

    ``why_not`` says why there is no CUDA device, for the message. Raises
    :class:`~unet_edge.ProviderError` when CUDA is asked for and there is none.
    """
    want = look_up(Device, requested, "training device")
    if want is Device.CPU:
        return CPU
    if gpu is None:
        if want is Device.CUDA:
            raise ProviderError(
                f"training on CUDA was asked for, but {why_not or 'PyTorch sees no CUDA device'}"
                "; train on the CPU or let the device be chosen automatically",
                option="device",
            )
        return TrainDevice("cpu", None, f"auto: {why_not}; training on the CPU")
    dtype = autocast_dtype(bf16_supported)
    how = "bfloat16" if dtype is torch.bfloat16 else "float16 with loss scaling"
    prefix = "auto: " if want is Device.AUTO else ""
    return TrainDevice("cuda", dtype, f"{prefix}training on cuda ({gpu}), {how} autocast")


def no_cuda_reason() -> str:
    """Why PyTorch sees no CUDA device here, in words."""
    if torch.version.cuda is None:
        return f"this PyTorch ({torch.__version__}) is built without CUDA"
    return (
        f"this PyTorch ({torch.__version__}, CUDA {torch.version.cuda}) sees no GPU "
        "(no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides them)"
    )


def resolve(requested: str | Device | TrainDevice) -> TrainDevice:
    """The device for ``requested`` on this machine (see :func:`choose`)."""
    if isinstance(requested, TrainDevice):
        return requested
    if look_up(Device, requested, "training device") is Device.CPU:
        return CPU
    if not torch.cuda.is_available():
        return choose(requested, None, why_not=no_cuda_reason())
    return choose(requested, torch.cuda.get_device_name(0), torch.cuda.is_bf16_supported())
