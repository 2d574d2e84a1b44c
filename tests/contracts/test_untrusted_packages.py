"""bioimage.io packages are untrusted input: a corpus of tampered packages, each one outcome.

Every bad package is the shipped model's own package (written by
``unet_edge.training.package.write_package``) with one thing changed with
zipfile and YAML: each must give a one-line ModelError that names the
package and says what is wrong (and, on the command line, exit 1 with
nothing in the output folder); each good variant must give the shipped
model's mask. No case may touch the network or bioimage.io's cache (checked
around every test); the bombs are refused within time and memory bounds.
"""

from __future__ import annotations

import io
import socket
import struct
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from unet_edge import ModelError, Segmenter
from unet_edge.cli import main
from unet_edge.config import UNetConfig
from unet_edge.geometry import Geometry
from unet_edge.io import read_image
from unet_edge.models.open import open_model
from unet_edge.runtime import default_model_path

pytest.importorskip("bioimageio.spec", reason="needs the [bioimageio] extra")
import ruyaml

from unet_edge.models.bioimage import PACKAGE_KEY, Layout
from unet_edge.training.package import write_package

SAMPLE = Path(__file__).resolve().parents[2] / "unet_edge" / "data" / "sample_isbi2012.png"
Parts = dict[str, bytes]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No socket may connect, and bioimage.io's cache may not be written, in any case."""
    from bioimageio.spec._internal._settings import settings

    tried: list[object] = []

    def refuse(*args: object, **kw: object) -> Any:
        tried.append(args)
        raise OSError("network access in a test of untrusted packages")

    for name in ("create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    cache = tmp_path / "bioimageio-cache"
    monkeypatch.setattr(settings, "cache_path", cache)
    yield
    assert not tried, f"network access: {tried}"
    assert not cache.exists(), "bioimage.io's cache was written"


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Parts:
    """The members of the shipped model's package, by name."""
    pkg = write_package(default_model_path(), tmp_path_factory.mktemp("pkg") / "isbi.zip")
    with zipfile.ZipFile(pkg) as z:
        return {n: z.read(n) for n in z.namelist()}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return read_image(SAMPLE)[:320, :300]


@pytest.fixture(scope="module")
def reference(image: np.ndarray) -> np.ndarray:
    return Segmenter().predict(image)


def _yaml() -> Any:
    return ruyaml.YAML(typ="safe", pure=True)


def _rdf(parts: Parts) -> dict[str, Any]:
    return _yaml().load(parts["rdf.yaml"].decode())


def _dump(rdf: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    _yaml().dump(rdf, buf)
    return buf.getvalue().encode()


def _fix_digests(rdf: dict[str, Any], members: Parts) -> None:
    """Set the rdf's SHA-256 of the weights and test tensors to what the members hold."""
    for d in (
        rdf["weights"]["onnx"],
        rdf["inputs"][0]["test_tensor"],
        rdf["outputs"][0]["test_tensor"],
    ):
        if d["source"] in members:
            d["sha256"] = sha256(members[d["source"]]).hexdigest()


def _package(
    folder: Path,
    parts: Parts,
    edit: Callable[[dict[str, Any]], object] | None = None,
    files: Parts | None = None,
    drop: tuple[str, ...] = (),
    fix_digests: bool = True,
) -> Path:
    """The shipped model's package with members replaced (``files``), removed (``drop``) and
    its rdf edited (``edit``, after the digests are made to match the members)."""
    members = {**parts, **(files or {})}
    for name in drop:
        members.pop(name)
    rdf = _rdf(parts)
    if fix_digests:
        _fix_digests(rdf, members)
    if edit is not None:
        edit(rdf)
    if "rdf.yaml" in members:
        members["rdf.yaml"] = _dump(rdf)
    path = folder / "bad.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _raw_zip(path: Path, entries: list[tuple[str, int, bytes, int, int]]) -> Path:
    """A zip written by hand from (name, method, payload as stored, CRC-32, inflated size),
    so that its directory can state any size (zipfile cannot write a precompressed member)."""
    out, central = bytearray(), bytearray()
    for name, method, payload, crc, size in entries:
        n = name.encode()
        head = (0x21, crc, len(payload), size, len(n))  # date 1980-01-01, CRC, sizes, name
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, *head, 0, 0, 0, 0, 0, len(out)
        )
        central += n
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, *head, 0) + n + payload
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(out), 0
    )
    path.write_bytes(bytes(out + central + end))
    return path


def _zeros_deflated(size: int) -> tuple[bytes, int]:
    """(raw deflate stream of ``size`` zero bytes, its CRC-32), built from one MiB block."""
    block = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    flushed = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every block
    crc = 0
    for _ in range(size >> 20):
        crc = zlib.crc32(block, crc)
    return flushed * (size >> 20) + c.flush(zlib.Z_FINISH), crc


def _bomb_zip(folder: Path, parts: Parts, claimed: int | None = None) -> Path:
    """The package whose weights inflate to 2 GiB of zeros (a 2 MB zip); ``claimed``: the size
    its directory states instead (a lying directory)."""
    stream, crc = _zeros_deflated(2 << 30)
    entries = [(n, 0, d, zlib.crc32(d), len(d)) for n, d in parts.items() if n != "weights.onnx"]
    entries.append(("weights.onnx", 8, stream, crc, claimed or 2 << 30))
    return _raw_zip(folder / "bomb.zip", entries)


def _set(*keys: str | int, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(d: Any) -> None:
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return edit


def _del(*keys: str | int) -> Callable[[dict[str, Any]], None]:
    def edit(d: Any) -> None:
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]

    return edit


LAYOUT = ("config", "unet_edge", "layout")
MODEL = ("config", "unet_edge", "model")


def _weights(parts: Parts, change: Callable[[onnx.ModelProto], None]) -> bytes:
    m = onnx.load_model_from_string(parts["weights.onnx"])
    change(m)
    return m.SerializeToString()


def _scale_conv(m: onnx.ModelProto) -> None:
    t = next(t for t in m.graph.initializer if not t.name.startswith("__") and t.dims)
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * 1.5, t.name))


def _external(m: onnx.ModelProto) -> None:
    t = next(t for t in m.graph.initializer if not t.name.startswith("__") and t.dims)
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="/etc/hostname")


def _npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def _huge_header(parts: Parts) -> bytes:
    """A .npy whose header claims a 40 GB array (the file holds 256 KiB)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)}
    )
    return buf.getvalue() + bytes(1 << 18)


def _consistent_lie(rdf: dict[str, Any]) -> None:
    """Depth 3 declared everywhere (model, layout, the rdf's blocks and halo): the graph is
    depth 4, so only running it can tell."""
    model = rdf["config"]["unet_edge"]["model"]
    model["architecture"]["depth"] = 3
    model.pop("geometry")
    layout = Layout.of(Geometry.from_config(UNetConfig.from_dict(model["architecture"])))
    rdf["config"]["unet_edge"]["layout"] = layout.to_dict()
    for ax in rdf["inputs"][0]["axes"][2:]:
        ax["size"] = {"min": layout.min_block, "step": layout.step}
    for ax in rdf["outputs"][0]["axes"][2:]:
        ax["halo"] = layout.halo


def _three_classes(rdf: dict[str, Any]) -> None:
    model = rdf["config"]["unet_edge"]["model"]
    model["architecture"]["classes"] = 3
    model["output"]["classes"] = ["membrane", "cell", "mitochondrion"]


def _axes_reordered(rdf: dict[str, Any]) -> None:
    axes = rdf["inputs"][0]["axes"]
    axes[1:] = [axes[2], axes[3], axes[1]]


def _text_rdf(text: str | bytes) -> Callable[[Path, Parts], Path]:
    """A package whose rdf.yaml is ``text`` (the other members intact)."""
    rdf = text.encode() if isinstance(text, str) else text

    def make(folder: Path, parts: Parts) -> Path:
        path = folder / "bad.zip"
        with zipfile.ZipFile(path, "w") as z:
            for name, data in {**parts, "rdf.yaml": rdf}.items():
                z.writestr(name, data)
        return path

    return make


LAUGHS = "lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)


def _many_members(folder: Path, parts: Parts) -> Path:
    path = _package(folder, parts)
    with zipfile.ZipFile(path, "a") as z:
        for i in range(10_001):
            z.writestr(f"x/{i}", b"")
    return path


def _garbage(folder: Path, parts: Parts) -> Path:
    path = folder / "bad.zip"
    path.write_bytes(b"PK\x03\x04 this is not a zip file" * 100)
    return path


def _edit(edit: Callable[[dict[str, Any]], object]) -> Callable[[Path, Parts], Path]:
    return lambda folder, parts: _package(folder, parts, edit)


def _files(make: Callable[[Parts], Parts], fix: bool = True) -> Callable[[Path, Parts], Path]:
    return lambda folder, parts: _package(folder, parts, files=make(parts), fix_digests=fix)


URL = "https://example.org/models/weights.onnx"
Make = Callable[[Path, Parts], Path]


def _source(value: str) -> Make:
    """The package with its weights named ``value``."""
    return _edit(_set("weights", "onnx", "source", value=value))


def _member(name: str, make: Callable[[Parts], bytes], fix: bool = True) -> Make:
    """The package with member ``name`` replaced by ``make(members)`` (``fix``: the rdf's
    SHA-256 updated to match)."""
    return _files(lambda p: {name: make(p)}, fix=fix)


def _scaled_output(p: Parts) -> bytes:
    return _npy(np.load(io.BytesIO(p["test_output.npy"])) * 0.9)


def _drop(name: str) -> Make:
    return lambda folder, parts: _package(folder, parts, drop=(name,))


def _lying_directory(folder: Path, parts: Parts) -> Path:
    return _bomb_zip(folder, parts, claimed=len(parts["weights.onnx"]))


RDF_X = ("inputs", 0, "axes", 3, "size")
PERCENTILE = ("inputs", 0, "preprocessing", 1, "kwargs", "max_percentile")
TAG = "name: !!python/object/apply:os.system ['touch PWNED']\n"
SHA = "SHA-256"
NPY = "not a plain .npy"
DIFFERS = "differs from its test output"
TILING = "tile it differently"

# (id, package maker (folder, shipped package's members) -> path, what the message must say)
BAD_PACKAGES: list[tuple[str, Make, str]] = [
    ("layout-halo-8", _edit(_set(*LAYOUT, "halo", value=8)), "halo 8 (the network gives 96)"),
    ("layout-unknown-key", _edit(_set(*LAYOUT, "tile", value=1)), "exactly the keys"),
    ("layout-missing-key", _edit(_del(*LAYOUT, "crop")), "exactly the keys"),
    ("layout-text-value", _edit(_set(*LAYOUT, "crop", value="4")), "not sizes"),
    ("layout-negative", _edit(_set(*LAYOUT, "pad_after", value=-1)), "not sizes"),
    ("config-unknown-key", _edit(_set("config", "unet_edge", "x", value={})), "exactly model"),
    ("model-depth-3", _edit(_set(*MODEL, "architecture", "depth", value=3)), "states geometry"),
    ("model-consistent-lie", _edit(_consistent_lie), "write the package again"),
    ("model-three-classes", _edit(_three_classes), "2 classes instead of 3"),
    ("rdf-halo-8", _edit(_set("outputs", 0, "axes", 2, "halo", value=8)), TILING),
    ("rdf-blocks", _edit(_set(*RDF_X, value={"min": 224, "step": 16})), TILING),
    ("rdf-preprocessing", _edit(_set(*PERCENTILE, value=99.8)), "preprocessing"),
    ("rdf-axes-order", _edit(_axes_reordered), "axes"),
    ("rdf-invalid", _edit(_del("inputs")), "not a valid bioimage.io model"),
    ("rdf-python-tag", _text_rdf(TAG), "YAML tag"),
    ("rdf-billion-laughs", _text_rdf(LAUGHS), "billion laughs"),
    ("rdf-deep", _text_rdf("a: " + "[" * 200 + "]" * 200 + "\n"), "levels deep"),
    ("rdf-not-yaml", _text_rdf("name: [unclosed\ntype: model\n"), "not valid YAML"),
    ("rdf-not-utf8", _text_rdf(b"name: caf\xe9\n"), "UTF-8"),
    ("rdf-too-large", _edit(_set("description", value="x" * (1 << 20))), "inflates to"),
    ("rdf-missing", _drop("rdf.yaml"), "holds no rdf.yaml"),
    ("weights-missing", _drop("weights.onnx"), "is not in the package"),
    ("weights-absolute", _source(str(default_model_path())), "outside the package"),
    ("weights-dotdot", _source("../weights.onnx"), "points outside"),
    ("weights-url", _source(URL), f"{URL}, and unet-edge never downloads"),
    ("weights-file-url", _source("file:///etc/hostname"), "outside the package"),
    ("weights-backslash", _source("..\\weights.onnx"), "backslashes"),
    ("weights-sha256", _member("weights.onnx", lambda p: _weights(p, _scale_conv), False), SHA),
    ("test-input-sha256", _member("test_input.npy", lambda p: bytes(1 << 18), False), SHA),
    ("weights-not-onnx", _member("weights.onnx", lambda p: b"\x08\x07not onnx"), "not an ONNX"),
    ("weights-external", _member("weights.onnx", lambda p: _weights(p, _external)), "external"),
    ("weights-retrained", _member("weights.onnx", lambda p: _weights(p, _scale_conv)), DIFFERS),
    ("test-output-changed", _member("test_output.npy", _scaled_output), DIFFERS),
    ("test-input-pickle", _member("test_input.npy", lambda p: _npy(np.array([{}]), True)), NPY),
    ("test-input-huge-header", _member("test_input.npy", _huge_header), NPY),
    ("test-input-2d", _member("test_input.npy", lambda p: _npy(np.zeros((256, 256)))), "shape"),
    ("not-a-zip", _garbage, "not a readable zip"),
    ("too-many-members", _many_members, "10,007 files"),
    ("weights-bomb", _bomb_zip, "inflates to 2.00 GiB from 2.1 MB"),
    ("weights-lying-directory", _lying_directory, "cannot be read from the zip"),
]


def _one_line(e: BaseException, *texts: str) -> str:
    msg = str(e)
    assert msg and "\n" not in msg, msg
    for text in texts:
        assert text in msg, (text, msg)
    return msg


@pytest.mark.parametrize(
    ("make", "expected"), [c[1:] for c in BAD_PACKAGES], ids=[c[0] for c in BAD_PACKAGES]
)
def test_bad_package_is_one_line_model_error(
    make: Callable[[Path, Parts], Path],
    expected: str,
    parts: Parts,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # where a YAML tag would create PWNED
    path = make(tmp_path, parts)
    t0 = time.perf_counter()
    with pytest.raises(ModelError) as e:
        Segmenter(path)
    assert time.perf_counter() - t0 < 10
    _one_line(e.value, str(path), expected)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "case", ["layout-halo-8", "weights-url", "weights-bomb", "rdf-billion-laughs"]
)
def test_cli_refuses_a_bad_package_and_writes_nothing(
    case: str, parts: Parts, tmp_path: Path
) -> None:
    make, expected = next(c[1:] for c in BAD_PACKAGES if c[0] == case)
    path, out = make(tmp_path, parts), tmp_path / "out"
    for args in (["run", str(SAMPLE), "-m", str(path), "-o", str(out)], ["info", "-m", str(path)]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1, r.output
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error:"), r.output
        assert str(path) in lines[0] and expected in lines[0]
    assert not out.exists() or not any(out.iterdir())


def _warm(folder: Path, parts: Parts) -> Path:
    (folder / "warm").mkdir()
    return _package(folder / "warm", parts)


def _peak(call: Callable[[], object], warm: Path) -> tuple[float, int]:
    """(seconds, peak bytes traced) of ``call``, which must raise a ModelError, after opening
    the good package ``warm`` (imports and the spec's validators built before measuring)."""
    open_model(warm)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ModelError):
        call()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def test_zip_bomb_is_refused_from_the_directory(parts: Parts, tmp_path: Path) -> None:
    path = _bomb_zip(tmp_path, parts)
    assert path.stat().st_size < 3e6
    seconds, peak = _peak(lambda: open_model(path), _warm(tmp_path, parts))
    assert seconds < 3 and peak < 32 << 20, (seconds, peak)


def test_lying_zip_directory_reads_no_more_than_it_states(parts: Parts, tmp_path: Path) -> None:
    path = _bomb_zip(tmp_path, parts, claimed=len(parts["weights.onnx"]))
    seconds, peak = _peak(lambda: open_model(path), _warm(tmp_path, parts))
    assert seconds < 5 and peak < 4 * len(parts["weights.onnx"]) + (32 << 20), (seconds, peak)


def test_billion_laughs_is_refused_fast_in_bounded_memory(parts: Parts, tmp_path: Path) -> None:
    path = _text_rdf(LAUGHS)(tmp_path, parts)
    seconds, peak = _peak(lambda: open_model(path), _warm(tmp_path, parts))
    assert seconds < 1 and peak < 16 << 20, (seconds, peak)


def test_dotdot_and_links_out_of_an_unpacked_package(parts: Parts, tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    folder.mkdir()
    for name, data in parts.items():
        (folder / name).write_bytes(data)
    (tmp_path / "weights.onnx").write_bytes(parts["weights.onnx"])  # a runnable file outside
    rdf = _rdf(parts)
    rdf["weights"]["onnx"]["source"] = "../weights.onnx"
    (folder / "rdf.yaml").write_bytes(_dump(rdf))
    with pytest.raises(ModelError) as e:
        Segmenter(folder / "rdf.yaml")
    _one_line(e.value, str(folder / "rdf.yaml"), "points outside")
    (folder / "weights.onnx").unlink()
    (folder / "weights.onnx").symlink_to(tmp_path / "weights.onnx")
    (folder / "rdf.yaml").write_bytes(parts["rdf.yaml"])
    with pytest.raises(ModelError) as e:
        Segmenter(folder / "rdf.yaml")
    _one_line(e.value, str(folder / "rdf.yaml"), "through a link", str(tmp_path / "weights.onnx"))


def _without_config(rdf: dict[str, Any]) -> None:
    del rdf["config"]


def _strip_metadata(m: onnx.ModelProto) -> None:
    keep = [p for p in m.metadata_props if p.key != PACKAGE_KEY]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)


def _bare(folder: Path, parts: Parts) -> Path:
    """No config, and weights without their description: what an older package looks like
    after another tool rewrote it; recognised by its weights."""
    weights = _weights(parts, _strip_metadata)
    return _package(folder, parts, _without_config, files={"weights.onnx": weights})


def _deflated(folder: Path, parts: Parts) -> Path:
    entries = [(n, 8, zlib.compress(d)[2:-4], zlib.crc32(d), len(d)) for n, d in parts.items()]
    return _raw_zip(folder / "ok.zip", entries)


GOOD_PACKAGES: list[tuple[str, Make]] = [
    ("intact", lambda f, p: _package(f, p)),
    ("config-dropped", _edit(_without_config)),  # the weights' own description is used
    ("config-and-weights-metadata-dropped", _bare),
    ("deflated-zip", _deflated),
]


@pytest.mark.parametrize("make", [c[1] for c in GOOD_PACKAGES], ids=[c[0] for c in GOOD_PACKAGES])
def test_good_package_gives_the_shipped_models_mask(
    make: Callable[[Path, Parts], Path],
    parts: Parts,
    image: np.ndarray,
    reference: np.ndarray,
    tmp_path: Path,
) -> None:
    seg = Segmenter(make(tmp_path, parts), tile=304)
    assert (seg.source.origin, seg.source.probe, seg.geometry.halo) == ("bioimage.io", None, 96)
    assert seg.plan_for(image.shape).n_tiles > 1
    got = seg.predict(image)
    assert np.abs(got - reference).max() <= 1e-5
    assert (got.argmax(axis=0) == reference.argmax(axis=0)).all()


def test_unpacked_package_runs_and_nothing_is_written(
    parts: Parts, image: np.ndarray, reference: np.ndarray, tmp_path: Path
) -> None:
    for name, data in parts.items():
        (tmp_path / name).write_bytes(data)
    before = sorted(tmp_path.iterdir())
    assert np.abs(Segmenter(tmp_path / "rdf.yaml").predict(image) - reference).max() <= 1e-5
    assert sorted(tmp_path.iterdir()) == before


def test_cli_runs_a_package_offline(parts: Parts, tmp_path: Path) -> None:
    path, out = _package(tmp_path, parts), tmp_path / "out"
    r = CliRunner().invoke(main, ["run", str(SAMPLE), "-m", str(path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["sample_isbi2012_mask.png"]


def test_without_the_yaml_reader_a_package_is_refused_with_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A runtime-only install has no ruyaml: that is not 'invalid YAML'."""
    import sys

    from unet_edge.models.package_yaml import load_rdf

    monkeypatch.setitem(sys.modules, "ruyaml", None)  # import ruyaml -> ModuleNotFoundError
    with pytest.raises(ModelError, match=r"needs the \[bioimageio\] extra") as e:
        load_rdf("format_version: 0.5.4\n", "model.zip")
    assert "\n" not in str(e.value)
