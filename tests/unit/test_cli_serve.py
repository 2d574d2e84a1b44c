"""``unet-edge serve``'s refusals through click (the server: tests/contracts/test_serve_http.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from unet_edge.cli import main


def test_other_host_needs_a_token(tiny_onnx: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "-m", str(tiny_onnx), "--host", "0.0.0.0"], env={"UNET_EDGE_TOKEN": None}
    )
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--token" in result.output


def test_port_in_use_is_one_line(tiny_onnx: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main, ["serve", "-m", str(tiny_onnx), "-q", "--port", str(port)]
        )
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output


def test_help_shows_an_example() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "/segment?shape=" in result.output


@pytest.mark.parametrize(
    ("value", "said"), [("inf", "pixel count"), ("0.5", "whole number"), ("-1", ">= 0")]
)
def test_max_pixels_is_parsed_like_run_s(value: str, said: str) -> None:
    """The same pixel-count parser as ``run --max-pixels``: refused by name before serving."""
    res = CliRunner().invoke(main, ["serve", "--max-pixels", value])
    assert res.exit_code == 2 and "--max-pixels" in res.output and said in res.output
