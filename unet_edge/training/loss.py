"""Pixel-wise softmax cross-entropy weighted by the paper's weight map."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Mean over pixels of ``w(x) * -log softmax(logits)[labels(x)]``.

    ``logits``: float (N, classes, h, w); ``labels``: int64 (N, h, w) class
    indices; ``weights``: float (N, h, w). Returns a scalar. The mean (not the
    paper's sum) keeps the loss, and so the learning rate, independent of the
    tile size.
    """
    if logits.shape[-2:] != labels.shape[-2:] or labels.shape != weights.shape:
        raise InputError(
            f"logits {tuple(logits.shape)}, labels {tuple(labels.shape)} and weights "
            f"{tuple(weights.shape)} must share (N, h, w)"
        )
    ce = F.cross_entropy(logits, labels, reduction="none")
    return (ce * weights).mean()
