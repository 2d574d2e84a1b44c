"""The exceptions (unet_edge/errors.py): every one a UnetEdgeError *and* the builtin it claims,
so callers catch either; ``option`` names the argument that fixes it."""

from __future__ import annotations

import inspect
import pickle

import pytest

import unet_edge
from unet_edge import errors
from unet_edge.errors import NonFiniteError, UnetEdgeError

#: Each error and the builtin its docstring's family promises (the README's table).
BUILTIN = {
    "InputError": ValueError,
    "NonFiniteError": ValueError,
    "MemoryLimitError": MemoryError,
    "ImageReadError": OSError,
    "OutputExistsError": FileExistsError,
    "OutputError": OSError,
    "ModelError": ValueError,
    "ProbeError": ValueError,
    "CheckpointError": ValueError,
    "ExportError": RuntimeError,
    "ProviderError": RuntimeError,
    "ConfigError": ValueError,
    "DataError": ValueError,
    "DroppedFrameError": RuntimeError,
    "RequestError": ValueError,
    "ScaleError": ValueError,
}


def _classes() -> dict[str, type[UnetEdgeError]]:
    return {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, UnetEdgeError) and cls is not UnetEdgeError
    }


def test_every_error_is_known_here_and_exported() -> None:
    assert sorted(_classes()) == sorted(BUILTIN)
    for name in [*BUILTIN, "UnetEdgeError"]:
        assert getattr(unet_edge, name) is getattr(errors, name), name


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_each_error_is_caught_as_its_builtin_and_keeps_option(name: str) -> None:
    cls = _classes()[name]
    with pytest.raises(BUILTIN[name]) as caught:
        raise cls("what was received; what was expected; how to fix it", option="tile")
    e = caught.value
    assert isinstance(e, UnetEdgeError) and e.option == "tile"
    assert str(e) == "what was received; what was expected; how to fix it"
    assert cls("plain").option is None
    assert cls.__doc__ and cls.__doc__.strip()


def test_specific_errors_are_caught_as_their_families() -> None:
    assert issubclass(errors.ProbeError, errors.ModelError)
    assert issubclass(NonFiniteError, errors.InputError)


def test_non_finite_error_says_where_and_how_many() -> None:
    e = NonFiniteError("3 values are NaN", count=3, first=(0, 5, 7), option="normalization")
    assert (e.count, e.first, e.option) == (3, (0, 5, 7), "normalization")
    bare = NonFiniteError("x")
    assert (bare.count, bare.first, bare.option) == (0, (0, 0, 0), None)


def test_an_os_error_family_member_keeps_its_message_whole() -> None:
    # OSError splits (errno, strerror) from two arguments; one argument stays the message
    e = errors.ImageReadError("x.png is empty (0 bytes); re-copy the image")
    assert e.errno is None and str(e) == "x.png is empty (0 bytes); re-copy the image"


def test_errors_survive_pickling_with_message_and_option() -> None:
    # a Dask worker's error reaches the client pickled
    for cls in _classes().values():
        back = pickle.loads(pickle.dumps(cls("went wrong", option="output")))
        assert type(back) is cls and str(back) == "went wrong" and back.option == "output"
    back = pickle.loads(pickle.dumps(NonFiniteError("nan", count=3, first=(1, 2, 3))))
    assert (back.count, back.first) == (3, (1, 2, 3))


def test_errors_survive_the_pickling_dask_installs() -> None:
    """distributed installs tblib's exception pickling, which rebuilds an error with
    ``cls.__new__``: MemoryError's own __new__ refused MemoryLimitError there."""
    pickling_support = pytest.importorskip("tblib.pickling_support")
    pickling_support.install()
    for cls in _classes().values():
        back = pickle.loads(pickle.dumps(cls("went wrong", option="output")))
        assert type(back) is cls and str(back) == "went wrong" and back.option == "output"
    from unet_edge.errors import MemoryLimitError

    back = pickle.loads(pickle.dumps(MemoryLimitError("big", needed=5, available=3)))
    assert (back.needed, back.available) == (5, 3) and isinstance(back, MemoryError)
