"""README.md fits on two screens, states nothing that goes stale, and shows only real commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from unet_edge.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _shown_commands() -> list[str]:
    """Every command line in the README's bash blocks and `inline code`, comments removed."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.DOTALL)
    lines = [ln.split("  #")[0].strip() for b in blocks for ln in b.splitlines()]
    inline = re.findall(r"`((?:unet-edge|make|pip install) [^`]*)`", README)
    return [ln for ln in lines + inline if ln]


def test_readme_is_under_150_lines() -> None:
    assert len(README.splitlines()) < 150


def test_readme_states_no_test_count_or_suite_timing() -> None:
    stale = re.compile(
        r"\d[\d,]*\s+tests|\btests?\b[^.\n]{0,40}\d+\s*(s|sec|seconds|min|minutes)\b"
        r"|about \d+ (s|minutes)|~\s?\d",
        re.IGNORECASE,
    )
    assert not stale.findall(README), stale.findall(README)


def test_readme_shows_the_demo_picture_and_links_the_docs() -> None:
    pictures = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", README)
    assert pictures and all((ROOT / p).is_file() for p in pictures)
    assert "make docs" in README and "ARCHITECTURE.md" in README


def test_every_unet_edge_command_and_option_shown_exists() -> None:
    shown = [c for c in _shown_commands() if c.startswith("unet-edge")]
    assert len(shown) >= 2
    for line in shown:
        words = shlex.split(line)
        if words[1:] in (["--version"], ["--help"], ["-h"]):
            continue
        assert words[1] in main.commands, f"README shows unknown command: {line}"
        command = main.commands[words[1]]
        known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        flags = [w.split("=")[0] for w in words[2:] if w.startswith("-")]
        assert set(flags) <= known, f"{line}: unknown {set(flags) - known}"


def test_every_make_target_shown_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.MULTILINE))
    shown = {w for c in _shown_commands() if c.startswith("make ") for w in c.split()[1:]}
    assert shown and shown <= targets, shown - targets


@pytest.mark.parametrize("extra", ["cuda", "tensorrt", "openvino", "napari", "eval", "bioimageio"])
def test_install_lines_name_real_extras(extra: str) -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert extra in extras
    assert f'pip install "unet-edge[{extra}]"' in README
    shown = set(re.findall(r"unet-edge\[(\w+)\]", README))
    assert shown <= set(extras), shown - set(extras)


def test_the_version_option_exists() -> None:
    assert any(isinstance(p, click.Option) and "--version" in p.opts for p in main.params)


def test_readme_links_lead_to_files_that_exist() -> None:
    links = [u for u in re.findall(r"\]\(([^)#]+)\)", README) if "://" not in u]
    assert links and [u for u in links if not (ROOT / u).exists()] == []
