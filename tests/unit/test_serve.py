"""unet_edge.serve's public face: what it exports, and that importing it stays light."""

from __future__ import annotations

from collections.abc import Callable

import unet_edge.serve as serve


def test_public_names() -> None:
    assert set(serve.__all__) <= set(dir(serve))
    assert serve.DTYPES.keys() == {"uint8", "uint16", "int16", "float32"}
    assert serve.OUTPUTS == {"mask": "uint8", "probabilities": "float32", "labels": "uint32"}
    assert "127.0.0.1" in serve.LOCAL_HOSTS and "0.0.0.0" not in serve.LOCAL_HOSTS


def test_import_is_torch_free(imports_none_of: Callable[..., None]) -> None:
    imports_none_of("import unet_edge.serve", "torch", "unet_edge.training")
