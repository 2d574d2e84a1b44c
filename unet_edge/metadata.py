"""The one owner of the ONNX metadata schema.

An exported graph carries a versioned JSON description under the
``metadata_props`` key :data:`KEY`. It holds everything the runtime needs:
architecture (from which halo, alignment and legal tile sizes follow),
input channels and normalisation, class names, the border convention, the
numeric precision and where the model came from. :func:`write` stamps it,
:func:`read` validates it and returns a :class:`ModelInfo`; nothing else in
the package parses the JSON.

Schema version 1::

    {"schema": "unet-edge/model", "schema_version": 1,
     "name": str, "architecture": {UNetConfig fields},
     "geometry": {"halo": int, "alignment": int, "min_input": int,
                  "input_step": int, "size_rule": str},   # derived, for other tools
     "input": {"name": str, "layout": "NCHW", "channels": int,
               "normalization": {Normalization fields}},
     "output": {"name": str, "kind": "probabilities", "classes": [str, ...],
                "objects": [str, ...],    # optional: the object classes (see object_classes)
                "labelling": {"split": "watershed" | "none",   # optional: how its objects are
                              "min_size": "10px",              # best made (label() defaults)
                              "border": str}},   # a class given to the objects it borders
     "border": "symmetric", "precision": "fp32" | "fp16" | "int8",
     "pixel_size": {"y": float, "x": float, "unit": "µm"},   # optional: training pixel size
     "domain": {...},   # optional: statistics of the training images (unet_edge.domain)
     "provenance": {...}, "metrics": {...}}
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import BorderMode, Normalization, Precision, UNetConfig, look_up
from .errors import ConfigError, ModelError
from .geometry import Geometry

if TYPE_CHECKING:
    import onnx

KEY = "unet_edge"
SCHEMA = "unet-edge/model"
SCHEMA_VERSION = 1
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


#: Micrometres per unit of the pixel sizes a model may state.
PIXEL_UNITS = {"µm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3}


@dataclass(frozen=True)
class PixelSize:
    """The pixel size a model was trained at: ``y`` and ``x`` in micrometres."""

    y: float
    x: float

    def __post_init__(self) -> None:
        for v in (self.y, self.x):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not ok or not 1e-6 <= v <= 1e6:  # NaN and infinities fail too
                raise ModelError(
                    f"a model's pixel size must be a number of 1e-6..1e6 µm per axis, got {v!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return {"y": self.y, "x": self.x, "unit": "µm"}

    @classmethod
    def from_dict(cls, d: object) -> PixelSize | None:
        """``{"y", "x", "unit"}`` (unit µm or nm) as micrometres; None for None."""
        if d is None:
            return None
        unit = d.get("unit", "µm") if isinstance(d, dict) else None
        if not isinstance(d, dict) or unit not in PIXEL_UNITS:
            raise ModelError(
                f"invalid model metadata: pixel_size must be {{'y': .., 'x': .., 'unit': "
                f"'µm' or 'nm'}}, got {str(d)[:60]!r}"
            )
        f = PIXEL_UNITS[unit]
        y, x = d.get("y"), d.get("x")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (y, x)):
            raise ModelError(f"invalid model metadata: pixel_size y and x are numbers, got {d!r}")
        return cls(float(y) * f, float(x) * f)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ModelInfo:
    """Validated description of an exported model (:func:`read` builds it from a file).

    ``class_names``: one per output channel, in order (index = mask value);
    ``geometry``: its size rules in pixels. Raises :class:`~unet_edge.ModelError` when
    the names do not match ``architecture.classes`` or an object class is not a class.
    """

    architecture: UNetConfig
    normalization: Normalization
    class_names: tuple[str, ...]
    name: str = "unet"
    border: BorderMode = BorderMode.SYMMETRIC
    precision: Precision = Precision.FP32
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    provenance: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    objects: tuple[str, ...] = ()  # the object classes by name; () = the default rule
    # How its objects are best made when the caller does not say (``split``: "watershed" or
    # "none", ``min_size``: "10px", ``border``: the name of a class of pixels that belong to
    # the objects they border, as a three-class model's); {}: connected regions, no minimum.
    labelling: Mapping[str, str] = field(default_factory=dict)
    pixel_size: PixelSize | None = None  # the pixel size it was trained at; None: unknown
    # Statistics of the training images (unet_edge.domain.DomainStats.to_dict); {}: no guard.
    domain: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.class_names) != self.architecture.classes:
            raise ModelError(
                f"{len(self.class_names)} class names {list(self.class_names)} for a model with "
                f"{self.architecture.classes} classes; give one name per class"
            )
        unknown = [c for c in self.objects if c not in self.class_names]
        if unknown:
            raise ModelError(
                f"object class {unknown[0]!r} is not one of the classes "
                f"{list(self.class_names)}; name object classes among them"
            )
        border = self.labelling.get("border")
        if border is not None and (border not in self.class_names or border in self.objects):
            raise ModelError(
                f"labelling border class {border!r} is not one of the classes "
                f"{list(self.class_names)} other than the object classes; name one of them"
            )

    @property
    def object_classes(self) -> tuple[int, ...]:
        """Indices of the classes whose connected regions are objects (instance labels).

        ``objects`` when the metadata names them; else the class named ``cell``
        (the shipped EM model: the regions the membranes separate; a model with a
        border class: the cells it separates); else, for two classes, the second;
        else every class but the first (the background).
        """
        names = self.objects or tuple(c for c in self.class_names if c.lower() == "cell")
        if names:
            return tuple(self.class_names.index(c) for c in names)
        return (1,) if self.classes == 2 else tuple(range(1, self.classes))

    @property
    def border_classes(self) -> tuple[int, ...]:
        """Index of the class whose pixels belong to the objects they border (a three-class
        model's border bands, ``labelling["border"]``), which ``label()`` gives back to the
        nearest object; () when the model states none."""
        border = self.labelling.get("border")
        if border is None or self.class_names.index(border) in self.object_classes:
            return ()
        return (self.class_names.index(border),)

    @property
    def geometry(self) -> Geometry:
        return Geometry.from_config(self.architecture)

    @property
    def channels(self) -> int:
        return self.architecture.in_channels

    @property
    def classes(self) -> int:
        return self.architecture.classes

    def with_precision(self, precision: Precision | str) -> ModelInfo:
        return replace(self, precision=look_up(Precision, precision, "precision"))

    def to_dict(self) -> dict[str, Any]:
        g = self.geometry
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "architecture": self.architecture.to_dict(),
            "geometry": {
                "halo": g.halo,
                "alignment": g.alignment,
                "min_input": g.min_input,
                "input_step": g.alignment,
                "size_rule": (
                    f"tile input = {g.min_input} + {g.alignment}k; useful output = input - "
                    f"{2 * g.halo}; tiles start at multiples of {g.alignment} px"
                ),
            },
            "input": {
                "name": self.input_name,
                "layout": "NCHW",
                "channels": self.channels,
                "normalization": self.normalization.to_dict(),
            },
            "output": {
                "name": self.output_name,
                "kind": "probabilities",
                "classes": list(self.class_names),
                **({"objects": list(self.objects)} if self.objects else {}),
                **({"labelling": dict(self.labelling)} if self.labelling else {}),
            },
            "border": self.border.value,
            "precision": self.precision.value,
            **({"pixel_size": self.pixel_size.to_dict()} if self.pixel_size else {}),
            **({"domain": dict(self.domain)} if self.domain else {}),
            "provenance": dict(self.provenance),
            "metrics": dict(self.metrics),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _need(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ModelError(
            f"model metadata (schema {SCHEMA} v{SCHEMA_VERSION}) is missing key {where}{key!r}; "
            "re-export the model with `unet-edge export`"
        )
    return d[key]


def from_dict(d: Mapping[str, Any]) -> ModelInfo:
    """Validate a decoded description and build a :class:`ModelInfo`."""
    if _need(d, "schema", "") != SCHEMA:
        raise ModelError(f"metadata schema is {d['schema']!r}, expected {SCHEMA!r}")
    version = _need(d, "schema_version", "")
    if version != SCHEMA_VERSION:
        raise ModelError(
            f"model metadata schema version {version!r} is not supported by this unet-edge "
            f"(reads version {SCHEMA_VERSION}); upgrade unet-edge or re-export the model"
        )
    inp, out = _section(d, "input"), _section(d, "output")
    if out.get("kind", "probabilities") != "probabilities":
        raise ModelError(
            f"invalid model metadata: output kind {out['kind']!r}; unet-edge runs graphs whose "
            "output is per-class probabilities (softmax over the class axis)"
        )
    try:
        info = ModelInfo(
            architecture=UNetConfig.from_dict(_section(d, "architecture")),
            normalization=Normalization.from_dict(_section(inp, "normalization", "input.")),
            class_names=_class_names(_need(out, "classes", "output.")),
            name=_text(d.get("name", "unet"), "name"),
            border=look_up(BorderMode, _need(d, "border", ""), "border mode"),
            precision=look_up(Precision, _need(d, "precision", ""), "precision"),
            input_name=_text(_need(inp, "name", "input."), "input.name"),
            output_name=_text(_need(out, "name", "output."), "output.name"),
            provenance=_section(d, "provenance", required=False),
            metrics=_section(d, "metrics", required=False),
            objects=_class_names(out.get("objects", []), "output.objects"),
            labelling=_labelling(out.get("labelling", {})),
            pixel_size=PixelSize.from_dict(d.get("pixel_size")),
            domain=_section(d, "domain", required=False),
        )
    except (ConfigError, TypeError) as e:
        raise ModelError(f"invalid model metadata: {e}") from None
    _check_stated_geometry(d.get("geometry"), info.geometry)
    return info


#: Longest name or class name a model may carry (they are printed and written to provenance).
MAX_NAME = 200


def _section(d: Mapping[str, Any], key: str, where: str = "", required: bool = True) -> Any:
    """A JSON object of the metadata (``{}`` when optional and absent)."""
    v = _need(d, key, where) if required else d.get(key, {})
    if not isinstance(v, dict):
        raise ModelError(
            f"invalid model metadata: {where}{key} must be a JSON object, got {type(v).__name__}"
        )
    return v


def _text(v: object, what: str) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= MAX_NAME:
        raise ModelError(
            f"invalid model metadata: {what} must be a string of 1..{MAX_NAME} characters, "
            f"got {str(v)[:40]!r}"
        )
    return v


def _class_names(v: object, what: str = "output.classes") -> tuple[str, ...]:
    if not isinstance(v, list):
        raise ModelError(f"invalid model metadata: {what} must be a list of names, got {v!r}")
    return tuple(_text(c, "each class name") for c in v)


#: What ``output.labelling`` may say: its keys and the split methods.
LABELLING_KEYS, SPLITS = ("split", "min_size", "border"), ("watershed", "none")


def _labelling(v: object) -> dict[str, str]:
    """``output.labelling``: a JSON object of ``split`` (one of :data:`SPLITS`),
    ``min_size`` (a size such as ``"10px"``; parsed where it is used, by
    :class:`unet_edge.objects.MinSize`) and ``border`` (a class name, checked by
    :class:`ModelInfo`)."""
    if not isinstance(v, dict) or set(v) - set(LABELLING_KEYS):
        raise ModelError(
            f"invalid model metadata: output.labelling must be a JSON object of "
            f"{list(LABELLING_KEYS)}, got {str(v)[:80]}"
        )
    if v.get("split", "none") not in SPLITS:
        raise ModelError(
            f"invalid model metadata: output.labelling.split must be one of {list(SPLITS)}, "
            f"got {v['split']!r}"
        )
    return {k: _text(str(x), f"output.labelling.{k}") for k, x in v.items()}


def _check_stated_geometry(stated: object, g: Geometry) -> None:
    """The derived geometry a model states for other tools must be the one its architecture has."""
    if stated is None:
        return
    if not isinstance(stated, dict):
        raise ModelError("invalid model metadata: geometry must be a JSON object")
    actual = {"halo": g.halo, "alignment": g.alignment, "min_input": g.min_input}
    wrong = {k: v for k, v in stated.items() if k in actual and v != actual[k]}
    if wrong:
        raise ModelError(
            f"invalid model metadata: it states geometry {wrong} but its architecture gives "
            f"{ {k: actual[k] for k in wrong} }; re-export the model"
        )


def from_props(props: Mapping[str, str], source: str = "model") -> ModelInfo:
    """Read the description from ONNX ``metadata_props`` (or ORT's custom metadata map)."""
    if KEY not in props:
        raise ModelError(
            f"{source} has no unet-edge metadata (key {KEY!r} missing from metadata_props; "
            f"found {sorted(props) or 'none'}); export it with `unet-edge export` or stamp it "
            "with unet_edge.metadata.write"
        )
    try:
        d = json.loads(props[KEY])
    except json.JSONDecodeError as e:
        raise ModelError(f"{source}: unet-edge metadata is not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ModelError(f"{source}: unet-edge metadata must be a JSON object")
    try:
        return from_dict(d)
    except ModelError as e:
        raise ModelError(f"{source}: {e}") from None


def write(model: onnx.ModelProto, info: ModelInfo) -> None:
    """Stamp ``info`` into ``model.metadata_props`` in place (replacing an older stamp)."""
    keep = [p for p in model.metadata_props if p.key != KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    entry = model.metadata_props.add()
    entry.key = KEY
    entry.value = info.to_json()
    model.doc_string = (
        f"unet-edge {info.name}: {info.geometry.describe()}; classes {list(info.class_names)}"
    )


def read(source: str | Path | onnx.ModelProto) -> ModelInfo:
    """Read and validate the description of an ONNX file or in-memory model."""

    if isinstance(source, (str, Path)):
        return from_props(load_props(Path(source)), str(source))
    return from_props({p.key: p.value for p in source.metadata_props}, "model")


def load_props(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX file ``path``, parsed once without its weights'
    external data, after refusing external-data locations outside its folder."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise ModelError(f"model file {path} does not exist") from None
    except Exception as e:  # onnx raises DecodeError and friends for non-ONNX bytes
        raise ModelError(f"{path} is not an ONNX model ({type(e).__name__}: {e})") from None
    check_external_data(model, path)
    return {p.key: p.value for p in model.metadata_props}


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of a graph: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for a in node.attribute:
            yield from ([a.t] if a.HasField("t") else [])
            yield from a.tensors
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _tensors(g)


def check_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Refuse a model whose external-data files are not plain files inside its own folder.

    An absolute location, one with ``..`` or one that resolves (through links)
    outside the model's folder would make ONNX Runtime read any file the
    process can read; checked here, before any runtime opens the model,
    whatever the onnxruntime version.
    """
    import onnx

    folder = path.resolve().parent
    for t in _tensors(model.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        where = {e.key: e.value for e in t.external_data}.get("location", "")
        target = (folder / where).resolve()
        escapes = Path(where).is_absolute() or ".." in Path(where).parts or not where
        if escapes or not target.is_relative_to(folder):
            raise ModelError(
                f"{path}: tensor {t.name!r} keeps its data in {where!r}, outside the model's "
                "folder; unet-edge only reads external data from files beside the model "
                "(re-save the model with its data inside its folder, or as one file)"
            )
