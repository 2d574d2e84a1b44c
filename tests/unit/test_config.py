"""Configuration objects, mode enums and the error hierarchy (config.py, errors.py)."""

from __future__ import annotations

import inspect

import pytest

from unet_edge import errors
from unet_edge.config import Normalization, NormMode, Padding, UNetConfig, look_up
from unet_edge.errors import ConfigError, UnetEdgeError


@pytest.mark.parametrize(
    "kwargs",
    [{"classes": 1}, {"depth": -1}, {"base_width": 0}, {"dropout": 1.0}, {"padding": "full"}],
)
def test_bad_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        UNetConfig(**kwargs)  # type: ignore[arg-type]


def test_architecture_round_trips_and_refuses_unknown_keys() -> None:
    cfg = UNetConfig(in_channels=3, classes=4, depth=2, base_width=8, padding="same")
    assert cfg.padding is Padding.SAME
    d = cfg.to_dict()
    assert d["padding"] == "same" and UNetConfig.from_dict(d) == cfg
    with pytest.raises(ConfigError, match=r"unknown architecture keys \['widht'\]"):
        UNetConfig.from_dict({**d, "widht": 3})


def test_normalization_round_trips_and_checks_its_values() -> None:
    norm = Normalization(mode="fixed_range", low=100, high=4000, mean=0.5, std=0.2, clip=True)
    assert norm.mode is NormMode.FIXED_RANGE
    assert Normalization.from_dict(norm.to_dict()) == norm
    with pytest.raises(ConfigError, match="std must be > 0"):
        Normalization(std=0)
    with pytest.raises(ConfigError, match="high > low"):
        Normalization(mode="fixed_range", low=5, high=5)
    with pytest.raises(ConfigError, match="0 <= low < high <= 100"):
        Normalization(mode="percentile", low=1, high=101)


def test_look_up_accepts_members_and_values_and_suggests_on_a_typo() -> None:
    assert look_up(NormMode, NormMode.PERCENTILE) is NormMode.PERCENTILE
    assert look_up(NormMode, " Percentile ") is NormMode.PERCENTILE
    with pytest.raises(ConfigError, match="Did you mean 'percentile'"):
        look_up(NormMode, "percentil", "normalisation mode")
    with pytest.raises(ConfigError, match="must be a string, got int"):
        look_up(Padding, 3)


def test_every_error_is_also_a_builtin() -> None:
    """Callers may catch our base class or the builtin each error resembles."""
    found = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, UnetEdgeError) and cls is not UnetEdgeError
    ]
    assert len(found) >= 10
    for cls in found:
        builtin = [b for b in cls.__mro__ if b.__module__ == "builtins" and b is not object]
        assert any(b not in (Exception, BaseException) for b in builtin), cls
    assert issubclass(errors.InputError, ValueError)
    assert issubclass(errors.OutputExistsError, FileExistsError)
    assert issubclass(errors.ImageReadError, OSError)
