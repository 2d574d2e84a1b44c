"""Generate (or check) the wing table and import diagram in ARCHITECTURE.md from the code.

    python docs/architecture.py          # rewrite the generated parts of ARCHITECTURE.md
    python docs/architecture.py --check  # exit 1 if they are stale or a rule is broken

Imports are read from the source with ``ast``: module-level imports and lazy
ones inside functions alike (only those under ``if TYPE_CHECKING:`` are left
out: they never run). ``--check`` fails on

- an import cycle between modules (``io.read``, ``runtime``, ``cli.run``...),
  lazy imports included;
- a module in ``unet_edge/`` longer than :data:`MAX_MODULE_LINES` lines;
- ``unet_edge.training`` (or torch) imported outside :data:`MAY_IMPORT_TRAINING`;
- an import its wing's row in :data:`WINGS` does not allow (a wing is a
  top-level module or subpackage: ``engines``, ``runtime``, ``paths``...),
  a wing missing from the table, or a table row whose wing is gone;
- ARCHITECTURE.md not matching what this script would write.

``check(package)`` is the same check on any package folder, so the tests can
show each rule failing on a small package of their own.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "unet_edge"
DOC = ROOT / "ARCHITECTURE.md"
BEGIN, END = "<!-- BEGIN GENERATED: docs/architecture.py -->", "<!-- END GENERATED -->"

MAX_MODULE_LINES = 500
#: The only modules that may import ``training`` or torch (torch only lazily outside training/).
MAY_IMPORT_TRAINING = ("training", "cli", "bench.backends")
# Optional packages a runtime module may import lazily, inside a function, for an extra.
OPTIONAL = {"dask", "distributed", "zarr", "psutil", "matplotlib", "openvino", "skimage", "scipy"}

#: wing -> (what it owns, wings it may import, third-party packages it may import). Listed
#: from the bottom of the house up; a wing imports only wings listed above it (and itself).
WINGS: dict[str, tuple[str, set[str], set[str]]] = {
    "errors": ("every exception: UnetEdgeError and its subclasses", set(), set()),
    "config": (
        "frozen dataclasses and enums: architecture, normalisation, precision, drop policy",
        {"errors"},
        set(),
    ),
    "capture": ("the one capture of what C libraries print on fds 1/2 (one lock)", set(), set()),
    "cpu": (
        "what this CPU is: name, instruction-set flags, whether int8 kernels saturate",
        set(),
        set(),
    ),
    "geometry": (
        "size arithmetic: input <-> output, halo, alignment, legal tiles",
        {"config", "errors"},
        set(),
    ),
    "metadata": (
        "the ONNX metadata schema: write() and read(), validated ModelInfo",
        {"config", "errors", "geometry"},
        {"onnx"},
    ),
    "cost": (
        "FLOPs and activation memory of a tile (tile choice)",
        {"config", "errors", "geometry"},
        set(),
    ),
    "processing": (
        "pixel values: per-image scaling, normalise, stack rule, camera range, mask, overlay",
        {"config", "errors"},
        {"numpy", "cv2"},
    ),
    "tiling": (
        "tile plans and THE kernel (TileRun): read mirrored windows -> prepare -> infer -> stitch",
        {"errors", "geometry"},
        {"numpy", "cv2"},
    ),
    "kernel": (
        "the one place a kernel is built: a model's prepare step + a plan + a window reader",
        {"config", "errors", "processing", "tiling"},
        {"numpy"},
    ),
    "imagemeta": (
        "what an output says about itself: pixel size, ImageJ/OME arguments, provenance; "
        "no file access",
        {"errors"},
        set(),
    ),
    "io": (
        "the only file I/O, by verb: headers, axes (a file's axes -> frames and output axes), "
        "read, write, windows, atomic, inputs; retag (provenance known after the last strip)",
        {"capture", "errors", "imagemeta"},
        {"numpy", "cv2", "tifffile"},
    ),
    "objects": (
        "instance labels of the object classes (OpenCV components, watershed split), additive "
        "per-object sums and their table, outlines, ImageJ ROI sets, GeoJSON",
        {"config", "errors", "imagemeta", "io"},
        {"numpy", "cv2", "roifile"},
    ),
    "datasets": ("image/label folder pairing and name ranges", {"errors"}, {"numpy"}),
    "scale": (
        "segment at the model's pixel size: the factor from both calibrations (resolve), "
        "resampling images and probabilities, windows of the resampled image",
        {"errors", "imagemeta", "metadata", "tiling"},
        {"numpy"},
    ),
    "engines": (
        "what runs a graph: one adapter per engine (onnxruntime, openvino) behind one session "
        "interface; options, the auto order and availability (select), library diagnosis",
        {"capture", "config", "errors"},
        {"numpy", "onnx", "onnxruntime", "openvino"},
    ),
    "models": (
        "what a model file is: shipped (the models in the wheel by name: isbi2012, nuclei), "
        "open (open_model, the dispatch), source (the record, the hash), "
        "probe (foreign graphs' geometry, measured then verified: probe_cost, probe_run, "
        "probe_verify), bioimage (reading packages as untrusted input: "
        "package_files, package_yaml, package_check), check (the load-time graph check, the "
        "int8 note)",
        {
            "capture",
            "config",
            "cpu",
            "engines",
            "errors",
            "geometry",
            "io",
            "metadata",
            "processing",
            "tiling",  # the probe verifies its geometry with the kernel (probe_verify)
        },
        {"numpy", "onnx", "onnxruntime", "bioimageio", "ruyaml"},
    ),
    "domain": (
        "does an image look like the training data: cheap features of what the model sees and "
        "how sure it is, the training statistics (metadata key domain), the score and verdict",
        {"config", "errors", "processing"},
        {"numpy"},
    ),
    "prediction": (
        "what the Segmenter found: probabilities, and the mask and labels taken from them",
        {"objects", "processing"},
        {"numpy"},
    ),
    "analysis": (
        "a Segmenter's in-memory analysis: the channel picked of an array (a file's rule), "
        "frames, the model's grid, tile plans, kernels, the Prediction",
        {
            "cost",
            "engines",
            "errors",
            "geometry",
            "io",
            "prediction",
            "processing",
            "scale",
            "tiling",
        },
        {"numpy"},
    ),
    "runtime": (
        "Segmenter: owns one engine session and builds each frame's kernel",
        {
            "analysis",
            "capture",
            "config",
            "cost",
            "cpu",
            "domain",
            "engines",
            "errors",
            "kernel",
            "metadata",
            "models",
            "objects",
            "prediction",
            "processing",
            "scale",
            "tiling",
            # Segmenter.stream() hands itself to the stream driver (a lazy import; the
            # driver imports runtime only for type checking, so no cycle).
            "paths",
        },
        {"numpy"},
    ),
    "paths": (
        "the drivers around the kernel: files (in_memory: one image read whole; image_outputs: "
        "its mask, probabilities and overlay with its axes), windowed (larger than memory) with "
        "windowed_objects (its labels and table, exact), windowed_file (a planned file), dask, "
        "cluster (files on a Dask cluster), "
        "stream, acquisition (a pymmcore-plus MDA as it runs; useq imported lazily) with "
        "acquisition_results (per-frame result, Skip) and acquisition_output (files per frame); "
        "quality (the domain guard's score of an image computed region by region)",
        {
            "config",
            "domain",
            "engines",
            "errors",
            "imagemeta",
            "io",
            "kernel",
            "objects",
            "processing",
            "runtime",
            "scale",
            "tiling",
        },
        {"numpy", "tifffile", "useq"},
    ),
    "acquisition": (
        "the public import path of the pymmcore-plus driver (watch, Skip, AcquiredResult)",
        {"paths"},
        set(),
    ),
    "evaluate": (
        "segmentation metrics (pixel, Rand, VI), instance matching (F1 at IoU, merges, "
        "splits) and scoring a model on a folder",
        {"datasets", "errors", "io", "processing", "runtime"},
        {"numpy"},
    ),
    "precision": (
        "reduced-precision graphs: fp16 (conversion), calibrate (the runtime's tiles), gate "
        "(int8 vs fp32 masks), int8 (quantise, keep only a file with int8 operators that agrees)",
        {
            "config",
            "cpu",
            "errors",
            "io",
            "kernel",
            "metadata",
            "models",
            "processing",
            "runtime",
            "tiling",
        },
        {"numpy", "onnx", "onnxruntime"},
    ),
    "bench": (
        "the benchmark harness: config, data, timing, backends, roofline (+ fma.c), measure, "
        "report",
        {
            "cost",
            "cpu",
            "datasets",
            "engines",
            "errors",
            "evaluate",
            "io",
            "kernel",
            "metadata",
            "precision",
            "processing",
            "runtime",
            "tiling",
            "training",
        },
        {"numpy", "onnxruntime", "torch"},
    ),
    "napari": (
        "the napari plugin (extra napari): widget with progress/cancel, reader, sample",
        {"engines", "errors", "imagemeta", "io", "objects", "processing", "runtime", "scale"},
        {"numpy", "napari", "qtpy"},
    ),
    "serve": (
        "the local HTTP face (unet-edge serve): wire protocol (shape, dtype, body, reply) and "
        "the server around one Segmenter",
        {"capture", "errors", "imagemeta", "runtime", "scale"},
        {"numpy", "cv2", "tifffile"},
    ),
    "training": (
        "the torch half: model, data, augmentation, weights, instances (instance labels -> "
        "targets and weight maps), synthetic (seeded touching-nuclei images), loss, loop, "
        "checkpoint, export, domain_data (the training images a checkpoint records, measured "
        "into the exported model for the domain guard), writing bioimage.io packages",
        {"*"},
        {"numpy", "cv2", "onnx", "onnxruntime", "torch", "bioimageio"},
    ),
    "cli": (
        "click commands, one module per command group, shared options in cli/options.py; thin",
        {"*"},
        {"click", "numpy", "torch"},
    ),
}


@dataclass
class Module:
    """One ``.py`` file of the package: its dotted name (``io.read``; ``io`` for
    ``io/__init__.py``), length and what it imports."""

    name: str
    lines: int
    project: dict[str, bool] = field(default_factory=dict)  # module -> only lazily
    external: dict[str, bool] = field(default_factory=dict)  # package -> only lazily

    @property
    def wing(self) -> str:
        return self.name.split(".")[0]


def _name(package: Path, path: Path) -> str:
    parts = list(path.relative_to(package).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _walk(node: ast.AST, lazy: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Import nodes under ``node`` with whether they run only inside a function; the
    body of ``if TYPE_CHECKING:`` is skipped (it never runs)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for sub in child.orelse:
                yield from _walk(sub, lazy)
            continue
        inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, lazy
        yield from _walk(child, inner)


def _targets(node: ast.AST, here: str, is_pkg: bool, known: set[str]) -> Iterator[str]:
    """Project modules (dotted, relative to the package) or ``ext:NAME`` an import names."""
    if isinstance(node, ast.Import):
        for a in node.names:
            parts = a.name.split(".")
            yield ".".join(parts[1:]) if parts[0] == "unet_edge" else f"ext:{parts[0]}"
        return
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = here.split(".") if here else []
        base = base if is_pkg else base[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    elif (node.module or "").split(".")[0] == "unet_edge":
        base = []
        node = ast.ImportFrom(module=".".join((node.module or "").split(".")[1:]), names=node.names)
    else:
        yield f"ext:{(node.module or '').split('.')[0]}"
        return
    mod = ".".join([*base, *([node.module] if node.module else [])])
    for a in node.names:
        sub = f"{mod}.{a.name}" if mod else a.name
        yield sub if sub in known else mod


def scan(package: Path = PACKAGE) -> dict[str, Module]:
    """Every module of ``package`` with its imports (the package's own ``__init__``: ``""``)."""
    paths = sorted(package.rglob("*.py"))
    known = {_name(package, p) for p in paths}
    found: dict[str, Module] = {}
    for path in paths:
        name = _name(package, path)
        text = path.read_text()
        mod = Module(name, len(text.splitlines()))
        for node, lazy in _walk(ast.parse(text, str(path))):
            for t in _targets(node, name, path.name == "__init__.py", known):
                into = mod.external if t.startswith("ext:") else mod.project
                key = t.removeprefix("ext:")
                if key and key != name and (key in known or t.startswith("ext:")):
                    into[key] = into.get(key, True) and lazy
        for key in [k for k in mod.external if k in sys.stdlib_module_names or k == "__future__"]:
            del mod.external[key]
        found[name] = mod
    return found


def cycles(found: dict[str, Module]) -> list[list[str]]:
    """The import cycles between modules (strongly connected components of two or more)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in found[v].project:
            if w not in found:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(1000, 10 * len(found)))
    for v in sorted(found):
        if v not in index:
            visit(v)
    return out


def _path(name: str) -> str:
    """Where a module lives (a package's module is its ``__init__.py``)."""
    if (PACKAGE / name.replace(".", "/") / "__init__.py").is_file():
        return f"unet_edge/{name.replace('.', '/')}/__init__.py"
    return f"unet_edge/{name.replace('.', '/')}.py"


def _may_import_training(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in MAY_IMPORT_TRAINING)


def _rule_problems(mod: Module) -> list[str]:
    out = []
    if mod.lines > MAX_MODULE_LINES:
        out.append(f"{_path(mod.name)} has {mod.lines} lines (> {MAX_MODULE_LINES}): split it")
    if not _may_import_training(mod.name):
        out += [
            f"{mod.name} imports {m}: only {', '.join(MAY_IMPORT_TRAINING)} may import training"
            for m in sorted(mod.project)
            if m.split(".")[0] == "training"
        ]
        if "torch" in mod.external:
            out.append(f"{mod.name} is runtime code but imports torch")
    elif mod.wing != "training" and mod.external.get("torch") is False:
        out.append(f"{mod.name} imports torch at module level; import it lazily")
    return out


def _wing_problems(mod: Module) -> list[str]:
    if mod.wing not in WINGS:
        return []
    _, may, third = WINGS[mod.wing]
    out = []
    if "*" not in may:
        wings = {m.split(".")[0] for m in mod.project} - {mod.wing}
        out += [
            f"{mod.name} imports {w}, not in its wing's allowed list" for w in sorted(wings - may)
        ]
    for pkg, lazy in sorted(mod.external.items()):
        if pkg not in third and not (pkg in OPTIONAL and lazy):
            out.append(f"{mod.name} imports {pkg}, not in its wing's allowed packages")
    return out


def check(package: Path = PACKAGE) -> list[str]:
    """Every broken rule of ``package``, one line each (empty: all hold)."""
    found = scan(package)
    found.pop("", None)  # the package's __init__: the public API, lazily re-exported
    wings = {m.wing for m in found.values()}
    out = [
        f"unet_edge/{w} is not in the wing table (docs/architecture.py WINGS)"
        for w in sorted(wings - set(WINGS))
    ]
    out += [f"the wing table names {w}, which no longer exists" for w in sorted(set(WINGS) - wings)]
    out += [f"import cycle: {' -> '.join([*c, c[0]])}" for c in cycles(found)]
    for mod in found.values():
        out += _rule_problems(mod) + _wing_problems(mod)
    return out


def _short(name: str) -> str:
    """A module's name inside its wing: ``read.py`` for ``io.read``, ``__init__.py`` for ``io``."""
    return f"{name.split('.', 1)[1] if '.' in name else '__init__'}.py"


def render(found: dict[str, Module]) -> str:
    """The wing table (with each wing's modules) and the wing diagram."""
    found = {k: v for k, v in found.items() if k}
    rows = [
        "| wing | owns | modules | imports (wings) | third-party |",
        "| --- | --- | --- | --- | --- |",
    ]
    edges: set[tuple[str, str]] = set()
    for wing, (owns, _, _) in WINGS.items():
        mods = sorted((m for m in found.values() if m.wing == wing), key=lambda m: m.name)
        deps = sorted({d.split(".")[0] for m in mods for d in m.project} - {wing})
        edges.update((wing, d) for d in deps)
        ext: dict[str, bool] = {}
        for m in mods:
            for pkg, lazy in m.external.items():
                ext[pkg] = ext.get(pkg, True) and lazy
        names = ", ".join(f"`{_short(m.name)}`" for m in mods)
        third = ", ".join(f"{p} (lazy)" if lazy else p for p, lazy in sorted(ext.items()))
        rows.append(f"| `{wing}` | {owns} | {names} | {', '.join(deps) or '-'} | {third or '-'} |")
    graph = ["```mermaid", "graph TD", *(f"    {a} --> {b}" for a, b in sorted(edges)), "```"]
    return "\n".join([BEGIN, "", *rows, "", *graph, "", END])


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if ARCHITECTURE.md is stale")
    args = ap.parse_args()
    bad = check()
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    new = head + render(scan()) + tail
    if args.check:
        if new != text:
            bad.append("ARCHITECTURE.md is stale: run python docs/architecture.py")
    elif not bad:
        DOC.write_text(new)
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
