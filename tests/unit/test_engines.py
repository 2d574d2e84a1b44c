"""The engines wing's face (unet_edge/engines/__init__.py): it imports nothing, so that asking
for a provider's options (what the command line reads first) loads no engine."""

from __future__ import annotations

from collections.abc import Callable


def test_options_load_no_engine(imports_none_of: Callable[..., None]) -> None:
    code = "from unet_edge.engines.options import Provider, ProviderOptions; ProviderOptions()"
    imports_none_of(code, "onnxruntime", "openvino", "onnx", "torch")


def test_the_wing_imports_none_of_its_adapters(imports_none_of: Callable[..., None]) -> None:
    imports_none_of("import unet_edge.engines", "unet_edge.engines.select", "onnxruntime")
