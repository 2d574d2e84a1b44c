"""The training loss (unet_edge/training/loss.py): per-pixel cross-entropy weighted by the
weight map, averaged, so the loss does not grow with the tile."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from unet_edge.errors import InputError  # noqa: E402
from unet_edge.training.loss import weighted_cross_entropy  # noqa: E402


def test_the_loss_by_hand() -> None:
    logits = torch.tensor([[[[0.0, 2.0]], [[0.0, 0.0]]]])  # (1, 2 classes, 1, 2)
    labels = torch.tensor([[[1, 0]]])
    weights = torch.tensor([[[1.0, 3.0]]])
    p1 = 0.5  # pixel 0: equal logits
    p0 = math.exp(2) / (math.exp(2) + 1)  # pixel 1: class 0 has logit 2
    expected = (1.0 * -math.log(p1) + 3.0 * -math.log(p0)) / 2
    assert weighted_cross_entropy(logits, labels, weights).item() == pytest.approx(expected)


def test_unit_weights_are_plain_cross_entropy_and_tiles_do_not_scale_it() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=g)
    labels = torch.randint(0, 3, (2, 8, 8), generator=g)
    ones = torch.ones(2, 8, 8)
    plain = torch.nn.functional.cross_entropy(logits, labels)
    assert weighted_cross_entropy(logits, labels, ones).item() == pytest.approx(plain.item())
    tiled = weighted_cross_entropy(
        logits.repeat(1, 1, 2, 2), labels.repeat(1, 2, 2), ones.repeat(1, 2, 2)
    )
    assert tiled.item() == pytest.approx(plain.item(), rel=1e-6)
    assert weighted_cross_entropy(logits, labels, ones * 0).item() == 0.0


def test_the_gradient_raises_the_true_class() -> None:
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    loss = weighted_cross_entropy(
        logits, torch.zeros(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2)
    )
    loss.backward()
    assert logits.grad is not None and logits.grad[0, 0].lt(0).all()  # raise the true class


def test_shapes_that_do_not_share_n_h_w_are_refused() -> None:
    with pytest.raises(InputError, match=r"logits \(1, 2, 4, 4\), labels \(1, 3, 3\) and weights"):
        weighted_cross_entropy(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 3, dtype=torch.long),
                               torch.ones(1, 3, 3))  # fmt: skip
    with pytest.raises(InputError, match="must share"):
        weighted_cross_entropy(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long),
                               torch.ones(2, 4, 4))  # fmt: skip
