"""What the Segmenter found for a frame or a stack: probabilities, and the mask and
instance labels taken from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import processing

if TYPE_CHECKING:
    from .domain import Quality


@dataclass(frozen=True)
class Prediction:
    """What :meth:`Segmenter.analyze` found for a frame or a stack."""

    probabilities: np.ndarray  # (K, H, W) or (Z, K, H, W) float32
    stats: tuple[dict[str, Any], ...]  # the normalisation used, per frame (for provenance)
    object_classes: tuple[int, ...] = ()  # the model's object classes (ModelInfo.object_classes)
    rescale: dict[str, Any] | None = None  # how it was resampled (scale.Rescale.to_dict)
    # Per frame: how it compares with the training images (domain.Quality); None: the model
    # has no domain statistics.
    quality: tuple[Quality, ...] | None = None
    # The class given back to the objects it borders (ModelInfo.border_classes: a three-class
    # model's border bands); () for none.
    border_classes: tuple[int, ...] = ()

    @property
    def in_domain(self) -> bool | None:
        """Whether every frame looks like the model's training data (None: not scored)."""
        return None if self.quality is None else all(q.in_domain for q in self.quality)

    def quality_record(self) -> list[dict[str, Any]] | None:
        """:attr:`quality` as JSON-ready data, per frame, for provenance (None: not scored)."""
        return None if self.quality is None else [q.to_dict() for q in self.quality]

    @property
    def mask(self) -> np.ndarray:
        """Class indices, uint8: (H, W) or (Z, H, W)."""
        return processing.to_mask(self.probabilities)

    @property
    def labels(self) -> np.ndarray:
        """Instance labels, uint32 (H, W) or (Z, H, W): the connected regions of the object
        classes with the border class's pixels given back to them, no min size, no split
        (:meth:`labelled` follows a model's stated rule)."""
        from .objects.labels import label_classes

        return label_classes(
            self.mask, self.object_classes or (1,), border_classes=self.border_classes
        )

    def labelled(self, rule: Mapping[str, str]) -> np.ndarray:
        """Instance labels as :meth:`Segmenter.label` gives them by default: by the model's
        ``rule`` (``ModelInfo.labelling``: ``split``, ``min_size`` in px; ``{}``:
        :attr:`labels`)."""
        from .objects.outputs import Labelling, label_classes

        how = Labelling.make().for_model(rule)  # the one resolution of a stated rule
        classes = self.object_classes or (1,)
        size, split = how.min_size or 0, how.split
        return label_classes(
            self.mask, classes, min_size=size, split=split, border_classes=self.border_classes
        )
