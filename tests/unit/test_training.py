"""The torch half's package (unet_edge/training/__init__.py): the runtime never imports it,
so ``import unet_edge`` and every runtime path stay torch-free."""

from __future__ import annotations

from collections.abc import Callable


def test_the_runtime_imports_neither_training_nor_torch(
    imports_none_of: Callable[..., None],
) -> None:
    code = (
        "import unet_edge, unet_edge.runtime, unet_edge.io, unet_edge.models, unet_edge.engines"
        ".select, unet_edge.paths.files, unet_edge.paths.windowed, unet_edge.paths.stream, "
        "unet_edge.kernel, unet_edge.tiling"
    )
    imports_none_of(code, "unet_edge.training", "torch")
