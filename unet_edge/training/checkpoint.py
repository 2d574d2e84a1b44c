"""The unet-edge checkpoint format.

A checkpoint is a ``torch.save`` dictionary that travels with everything
export needs, so a weights file is never separated from its architecture::

    {"format": "unet-edge-checkpoint", "format_version": 1,
     "name": str,                        # model name, copied into the ONNX metadata
     "config": UNetConfig.to_dict(),     # architecture
     "state_dict": {...},                # model weights
     "normalization": Normalization.to_dict(),
     "class_names": [str, ...],          # one per output class
     "training": {...},                  # optional: step, optimiser state, rng, history
     "metrics": {...}}                   # optional: validation metrics of these weights

Anything else, a bare ``state_dict`` included, is refused with an error that
says what is missing.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import Normalization, UNetConfig
from ..errors import CheckpointError, ConfigError
from ..io import atomic_path
from .model import UNet

FORMAT = "unet-edge-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("config", "state_dict", "normalization", "class_names")


@dataclass
class Checkpoint:
    config: UNetConfig
    state_dict: Mapping[str, torch.Tensor]
    normalization: Normalization
    class_names: tuple[str, ...]
    name: str = "unet"
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def build_model(self) -> UNet:
        """The network with these weights, in eval mode."""
        model = UNet(self.config)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise CheckpointError(
                f"checkpoint weights do not fit its architecture {self.config}: {first}"
            ) from None
        return model.eval()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "config": self.config.to_dict(),
            "state_dict": dict(self.state_dict),
            "normalization": self.normalization.to_dict(),
            "class_names": list(self.class_names),
            "training": self.training,
            "metrics": self.metrics,
        }


def from_model(
    model: UNet,
    normalization: Normalization,
    class_names: tuple[str, ...] | list[str],
    name: str = "unet",
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Checkpoint:
    if len(class_names) != model.config.classes:
        raise CheckpointError(
            f"{len(class_names)} class names for a model with {model.config.classes} classes"
        )
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return Checkpoint(
        model.config, state, normalization, tuple(class_names), name, training or {}, metrics or {}
    )


def save(checkpoint: Checkpoint, path: str | Path) -> Path:
    """Write atomically: to a temporary file in the same folder, then rename."""
    path = Path(path)
    if not path.parent.is_dir():
        raise CheckpointError(f"folder {path.parent} does not exist; create it first")
    with atomic_path(path) as tmp:
        torch.save(checkpoint.to_dict(), tmp)
    return path


def load(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint; raises :class:`CheckpointError` with what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # weights_only: a checkpoint is plain tensors and containers; never unpickle code.
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, i.e. running the file's code: not ours.
        raise CheckpointError(
            f"{path} holds pickled Python objects other than tensors and plain containers; "
            "unet-edge refuses to unpickle them, since an untrusted pickle can run any code. "
            "A unet-edge checkpoint holds only tensors, numbers, strings and lists: re-save the "
            "model with unet_edge.training.checkpoint.save where it was trained"
        ) from None
    except Exception as e:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); expected a file written by "
            "`unet-edge train` or unet_edge.training.checkpoint.save"
        ) from None
    if not isinstance(raw, dict):
        raise CheckpointError(
            f"{path} holds a {type(raw).__name__}, not a unet-edge checkpoint dictionary"
        )
    if raw.get("format") != FORMAT:
        if raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
            raise CheckpointError(
                f"{path} is a bare state_dict ({len(raw)} tensors): it lacks the architecture "
                f"config, input normalisation and class names. Wrap it with "
                "unet_edge.training.checkpoint.from_model(model, normalization, class_names) "
                "and save that"
            )
        raise CheckpointError(
            f"{path} is not a unet-edge checkpoint (no 'format': {FORMAT!r}; found keys "
            f"{sorted(map(str, raw))[:8]})"
        )
    if raw.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {raw.get('format_version')!r}; this unet-edge "
            f"reads version {FORMAT_VERSION}"
        )
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise CheckpointError(f"checkpoint {path} is missing {', '.join(missing)}")
    try:
        return Checkpoint(
            config=UNetConfig.from_dict(raw["config"]),
            state_dict=raw["state_dict"],
            normalization=Normalization.from_dict(raw["normalization"]),
            class_names=tuple(str(c) for c in raw["class_names"]),
            name=str(raw.get("name", "unet")),
            training=dict(raw.get("training") or {}),
            metrics=dict(raw.get("metrics") or {}),
        )
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} has an invalid field: {e}") from None
