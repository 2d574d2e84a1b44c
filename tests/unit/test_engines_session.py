"""The session interface (unet_edge/engines/session.py): :func:`run_batch` checks a batch
once for every engine, and equals the engine's own run."""

from __future__ import annotations

import numpy as np
import pytest
from conv_graph import conv_model, random_batch

from unet_edge.engines.options import Provider, ProviderOptions
from unet_edge.engines.select import open_session
from unet_edge.engines.session import (
    SessionInfo,
    Unavailable,
    checked_batch,
    run_batch,
    run_quietly,
)
from unet_edge.errors import InputError, ProviderError


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return conv_model()


@pytest.mark.parametrize("n", [1, 3])
def test_run_batch_equals_session_run_on_cpu(model_bytes: bytes, n: int) -> None:
    info = open_session(model_bytes, "cpu")
    x = random_batch(n)
    (expected,) = info.session.ort_session.run(["y"], {"x": x})
    plain = run_batch(info, "x", "y", x)
    bound = run_batch(info, "x", "y", x, io_binding=True)  # the IO-binding path, on host memory
    np.testing.assert_array_equal(plain, expected)
    np.testing.assert_array_equal(bound, expected)
    assert bound.dtype == np.float32 and bound.shape == (n, 2, 11, 11)


def test_run_batch_accepts_non_contiguous_input(model_bytes: bytes) -> None:
    info = open_session(model_bytes, "cpu")
    x = random_batch(2, size=26)[:, :, ::2, ::2]
    assert not x.flags.c_contiguous
    expected = info.session.ort_session.run(["y"], {"x": np.ascontiguousarray(x)})[0]
    np.testing.assert_array_equal(run_batch(info, "x", "y", x, io_binding=True), expected)


def test_run_batch_refuses_wrong_dtype_name_and_rank(model_bytes: bytes) -> None:
    info = open_session(model_bytes, "cpu")
    with pytest.raises(InputError, match=r"expects float32.*astype"):
        run_batch(info, "x", "y", random_batch(1).astype(np.float64))
    with pytest.raises(InputError, match="no input named 'image'"):
        run_batch(info, "image", "y", random_batch(1))
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        run_batch(info, "x", "y", random_batch(1)[0])


def test_checked_batch_passes_a_good_batch_through_unchanged(model_bytes: bytes) -> None:
    info = open_session(model_bytes, "cpu")
    x = random_batch(2)
    assert checked_batch(info.session, "x", x) is x  # already C-contiguous float32: no copy
    strided = random_batch(2, size=26)[:, :, ::2, ::2]
    got = checked_batch(info.session, "x", strided)
    assert got.flags.c_contiguous and np.array_equal(got, strided)
    assert info.session.input_dtype("x") == np.float32


def test_run_quietly_runs_an_unchecked_batch_and_raises_without_printing(
    model_bytes: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    info = open_session(model_bytes, "cpu")
    x = random_batch(1)
    np.testing.assert_array_equal(run_quietly(info, "x", "y", x), run_batch(info, "x", "y", x))
    capfd.readouterr()
    with pytest.raises(Exception, match="INVALID_ARGUMENT"):
        run_quietly(info, "x", "y", random_batch(1, size=2))  # smaller than the 3x3 kernel
    assert capfd.readouterr() == ("", "")


def test_unavailable_is_a_provider_error_with_its_reason() -> None:
    e = Unavailable("libcublasLt.so.13 not found")
    assert isinstance(e, ProviderError) and isinstance(e, RuntimeError)
    assert e.reason == str(e) == "libcublasLt.so.13 not found"


def test_session_info_defaults() -> None:
    info = open_session(conv_model(), "cpu")
    bare = SessionInfo(info.session, Provider.CPU, Provider.AUTO)
    assert bare.notes == () and bare.options == ProviderOptions()
    with pytest.raises(AttributeError):
        bare.provider = Provider.CUDA  # type: ignore[misc]
