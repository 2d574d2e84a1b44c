"""What a model file is, from the runtime's side.

- :mod:`~unet_edge.models.open`: :func:`open_model`, by what the file is
  (unet-edge ONNX, foreign ONNX, bioimage.io package);
- :mod:`~unet_edge.models.source`: the :class:`ModelSource` record the
  Segmenter runs, and :func:`model_hash`;
- :mod:`~unet_edge.models.probe`: the geometry of a foreign graph, measured;
- :mod:`~unet_edge.models.bioimage`: reading bioimage.io packages (writing
  them is :mod:`unet_edge.training.package`);
- :mod:`~unet_edge.models.check`: the load-time graph check and the int8 note.
"""

from .check import Int8Warning, check_graph, int8_note
from .open import is_package, open_model
from .source import ModelSource, model_hash

__all__ = [
    "Int8Warning",
    "ModelSource",
    "check_graph",
    "int8_note",
    "is_package",
    "model_hash",
    "open_model",
]
