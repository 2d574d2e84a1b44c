"""What the Segmenter found for a frame or a stack: probabilities, and the mask and
instance labels taken from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import processing


@dataclass(frozen=True)
class Prediction:
    """What :meth:`Segmenter.analyze` found for a frame or a stack."""

    probabilities: np.ndarray  # (K, H, W) or (Z, K, H, W) float32
    stats: tuple[dict[str, Any], ...]  # the normalisation used, per frame (for provenance)
    object_classes: tuple[int, ...] = ()  # the model's object classes (ModelInfo.object_classes)

    @property
    def mask(self) -> np.ndarray:
        """Class indices, uint8: (H, W) or (Z, H, W)."""
        return processing.to_mask(self.probabilities)

    @property
    def labels(self) -> np.ndarray:
        """Instance labels, uint32 (H, W) or (Z, H, W): :meth:`Segmenter.label`'s, no min size."""
        from .objects.labels import label_classes

        return label_classes(self.mask, self.object_classes or (1,))
