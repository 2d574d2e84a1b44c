"""The models wing's face (unet_edge/models/__init__.py): what the runtime needs of a model
file, by one name each, without importing the package reader."""

from __future__ import annotations

from collections.abc import Callable

from unet_edge import models
from unet_edge.models import check, open, source


def test_the_face_is_its_modules_objects() -> None:
    assert models.open_model is open.open_model and models.is_package is open.is_package
    assert models.ModelSource is source.ModelSource and models.model_hash is source.model_hash
    assert models.check_graph is check.check_graph and models.int8_note is check.int8_note
    assert models.Int8Warning is check.Int8Warning
    assert sorted(models.__all__) == sorted(
        ["Int8Warning", "ModelSource", "check_graph", "int8_note", "is_package", "model_hash",
         "open_model"]
    )  # fmt: skip


def test_importing_it_reads_no_package_and_loads_no_torch(
    imports_none_of: Callable[..., None],
) -> None:
    imports_none_of("import unet_edge.models", "unet_edge.models.bioimage", "torch", "yaml")
