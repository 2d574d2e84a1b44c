"""Run the code blocks of a documentation page, in order, in a fresh folder.

The convention (docs/tutorials/ and docs/how-to/): every fenced ``bash`` and ``python``
block runs; python blocks of one page share one namespace; bash blocks run with
``bash -euo pipefail`` with this interpreter's ``unet-edge``/``python`` first on PATH and
``$SHARED_DATA`` set. A block preceded by ``<!-- docs-test: skip (REASON) -->`` is not run;
one preceded by ``<!-- docs-test: replace-env NAME=VALUE -->`` runs with that variable set.
Other fences (``text``, ``console``...) are output, never run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RUN_DIRS = ("tutorials", "how-to")
SHARED_DATA = ROOT.parent / "shared" / "data"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<what>skip|replace-env)\s*(?P<arg>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, code, first line (1-based) and markers."""

    lang: str
    code: str
    line: int
    skip: str | None = None  # the reason, when marked skip
    env: dict[str, str] = field(default_factory=dict)


class DocExampleError(AssertionError):
    """A page's block failed: the message names the page, the block's line and its output."""


def _marker(lines: list[str], i: int) -> re.Match[str] | None:
    """The ``docs-test`` marker on the last non-blank line before line ``i``, if any."""
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    return _MARKER.match(lines[j]) if j >= 0 else None


def _close(lines: list[str], start: int, fence: str) -> int:
    """Index of the line closing the fence opened at ``start`` (or the end of the page)."""
    for k in range(start + 1, len(lines)):
        s = lines[k].strip()
        if s.startswith(fence[0] * len(fence)) and not s.strip(fence[0]):
            return k
    return len(lines)


def parse(text: str) -> list[Block]:
    """Every fenced block of a Markdown page, runnable or not, in page order."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        end = _close(lines, i, m["fence"])
        indent = len(m["indent"])
        code = "\n".join(ln[indent:] for ln in lines[i + 1 : end]) + "\n"
        lang = m["info"].strip().split(" ")[0].lower() if m["info"].strip() else ""
        mark, skip, env = _marker(lines, i), None, {}
        if mark and mark["what"] == "skip":
            skip = mark["arg"].strip("() ") or "no reason given"
        elif mark:
            name, _, value = mark["arg"].partition("=")
            env[name.strip()] = value.strip()
        blocks.append(Block(lang, code, i + 2, skip, env))
        i = end + 1
    return blocks


def runnable(blocks: list[Block]) -> list[Block]:
    """The blocks the test runs: bash and python, not marked skip."""
    return [b for b in blocks if b.lang in ("bash", "python") and b.skip is None]


def pages() -> list[Path]:
    """The pages whose examples run, sorted."""
    return sorted(p for d in RUN_DIRS for p in (DOCS / d).rglob("*.md"))


# Runs in a child interpreter so that each page gets a fresh namespace, folder and imports.
_DRIVER = r"""
import json, os, subprocess, sys, traceback
blocks = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__"}
for b in blocks:
    env = dict(os.environ, **b["env"])
    print(f"--- block at line {b['line']} ({b['lang']})", flush=True)
    if b["lang"] == "bash":
        rc = subprocess.run(["bash", "-euo", "pipefail", "-c", b["code"]], env=env).returncode
        if rc:
            print(f"@@FAILED {b['line']} bash exit status {rc}", flush=True)
            sys.exit(1)
        continue
    saved = dict(os.environ)
    os.environ.update(b["env"])
    try:
        exec(compile(b["code"], f"{sys.argv[2]}:{b['line']}", "exec"), ns)
    except BaseException as e:
        traceback.print_exc()
        sys.stdout.flush()
        print(f"@@FAILED {b['line']} python {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
    finally:
        os.environ.clear()
        os.environ.update(saved)
"""


def environment(shared_data: Path = SHARED_DATA) -> dict[str, str]:
    """The blocks' environment: this interpreter's bin folder first on PATH, SHARED_DATA set."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["SHARED_DATA"] = str(shared_data.resolve())
    env["MPLBACKEND"] = "Agg"
    return env


def run_page(page: Path, timeout: float = 600.0) -> str:
    """Run ``page``'s blocks in order in a fresh temporary folder; return their output.

    Raises :class:`DocExampleError` naming the page and the failing block's line.
    """
    blocks = runnable(parse(page.read_text(encoding="utf-8")))
    try:
        name = str(page.resolve().relative_to(ROOT))
    except ValueError:
        name = str(page)
    with tempfile.TemporaryDirectory(prefix="unet-edge-docs-") as tmp:
        spec = Path(tmp) / ".blocks.json"
        spec.write_text(json.dumps([b.__dict__ for b in blocks]))
        work = Path(tmp) / "work"
        work.mkdir()
        cmd = [sys.executable, "-c", _DRIVER, str(spec), name]
        try:
            done = subprocess.run(
                cmd, cwd=work, env=environment(), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as e:
            raise DocExampleError(f"{name}: its blocks took more than {timeout:.0f} s") from e
    out = done.stdout + done.stderr
    if done.returncode:
        failed = re.search(r"@@FAILED (\d+) (.*)", done.stdout)
        where = f"{name}:{failed[1]}: {failed[2]}" if failed else f"{name}: exit {done.returncode}"
        raise DocExampleError(f"{where}\n{out[-4000:]}")
    return out
