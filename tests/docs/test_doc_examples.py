"""Every bash and python block of docs/tutorials/ and docs/how-to/ runs, page by page.

The convention is in ``tests/docs/doc_examples.py``. A page per test, so a failure names
its page; the failing block's line is in the message.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from doc_examples import (  # tests/docs/ is on sys.path (pytest prepends it)
    DOCS,
    ROOT,
    SHARED_DATA,
    DocExampleError,
    pages,
    parse,
    run_page,
    runnable,
)

RUNTIME_ONLY = os.environ.get("UNET_EDGE_RUNTIME_ONLY") == "1"


def test_there_are_pages_with_examples() -> None:
    assert pages(), "no pages under docs/tutorials or docs/how-to"
    assert sum(len(runnable(parse(p.read_text()))) for p in pages()) >= 10


@pytest.mark.slow
@pytest.mark.skipif(RUNTIME_ONLY, reason="the docs' examples use the extras of the dev install")
@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_page_examples_run(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    if not runnable(parse(text)):
        pytest.skip("no runnable block on this page (every block is output or marked skip)")
    if "$SHARED_DATA" in text and not SHARED_DATA.is_dir():
        pytest.skip(f"its examples use the ISBI data in {SHARED_DATA}, which is not here")
    run_page(page)


BROKEN = """# A page

```bash
echo fine > fine.txt
test -f fine.txt
```

Text between blocks.

```python
x = 1
```

<!-- docs-test: skip (needs a GPU) -->
```bash
exit 7
```

```python
assert x == 2, "x is 1"
```
"""


def test_a_broken_example_fails_naming_page_and_line(tmp_path: Path) -> None:
    page = tmp_path / "broken.md"
    page.write_text(BROKEN)
    with pytest.raises(DocExampleError) as e:
        run_page(page)
    line = BROKEN.splitlines().index('assert x == 2, "x is 1"') + 1
    assert f"broken.md:{line}: python AssertionError: x is 1" in str(e.value)


def test_a_failing_bash_block_fails_and_later_blocks_do_not_run(tmp_path: Path) -> None:
    page = tmp_path / "bash.md"
    page.write_text(
        "```bash\necho $SHARED_DATA > seen\n```\n\n"
        "```bash\nfalse | true  # pipefail: the pipe fails\n```\n\n```bash\nexit 0\n```\n"
    )
    with pytest.raises(DocExampleError, match=r"bash.md:6: bash exit status 1") as e:
        run_page(page)
    assert "block at line 10" not in str(e.value)


def test_bash_runs_strict_in_a_fresh_folder_with_the_venv_first(tmp_path: Path) -> None:
    page = tmp_path / "env.md"
    page.write_text(
        "```bash\ntest ! -e env.md\ncommand -v unet-edge python > which\n"
        'test -n "$SHARED_DATA"\n```\n\n'
        "<!-- docs-test: replace-env UNET_EDGE_DOCS_FAST=1 -->\n"
        '```python\nimport os\nassert os.environ["UNET_EDGE_DOCS_FAST"] == "1"\n'
        'which = open("which").read().split()\n```\n\n'
        '```python\nimport os, sys\nassert "UNET_EDGE_DOCS_FAST" not in os.environ\n'
        "assert all(w.startswith(os.path.dirname(sys.executable)) for w in which), which\n```\n"
    )
    run_page(page)


def test_markers_and_fences_are_parsed() -> None:
    blocks = parse(BROKEN + "\n```text\nunet-edge run x\n```\n\n  ```python\n  y = 2\n  ```\n")
    assert [b.lang for b in blocks] == ["bash", "python", "bash", "python", "text", "python"]
    assert blocks[2].skip == "needs a GPU"
    assert blocks[-1].code == "y = 2\n"
    assert [b.lang for b in runnable(blocks)] == ["bash", "python", "python", "python"]


def test_every_tutorial_and_how_to_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [str(p.relative_to(DOCS)) for p in pages() if str(p.relative_to(DOCS)) not in nav]
    assert not missing, f"pages missing from mkdocs.yml's nav: {missing}"


def test_every_nav_page_exists() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w./-]+\.md)\s*$", nav, re.MULTILINE)
    assert len(listed) > 20
    assert [p for p in listed if not (DOCS / p).is_file()] == []


def test_skip_markers_give_a_reason() -> None:
    for page in pages():
        for b in parse(page.read_text(encoding="utf-8")):
            assert b.skip != "no reason given", f"{page}:{b.line}: skip marker without a reason"
