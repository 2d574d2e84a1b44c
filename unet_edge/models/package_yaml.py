"""A package's ``rdf.yaml`` as plain data, bounded before any YAML parser expands it.

YAML aliases let a few hundred bytes stand for billions of values (the
"billion laughs" bomb): the loader shares the aliased objects, but whoever
walks the result (bioimage.io's validation, a dump, a comparison) expands
them. So :func:`load_rdf` first streams the file's parser *events* (a flat
sequence, no values built, aliases not followed) and counts, on the way,
the nesting depth, the aliases and the number of values the document stands
for once every alias is expanded (each anchor's size is known when its node
ends); past a limit it stops reading and refuses. Only then is the text
loaded, with ruyaml's safe loader (the one bioimageio.spec uses: no Python
objects, no tags beyond plain data). The text itself is at most
:data:`unet_edge.models.package_files.MAX_RDF_BYTES` long.
"""

from __future__ import annotations

import io
from typing import Any

from ..errors import ModelError

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_VALUES", "load_rdf"]

#: Deepest nesting of mappings and lists (a model rdf needs about 10).
MAX_DEPTH = 32
#: Most aliases (``*name``) in one rdf.yaml (unet-edge writes none).
MAX_ALIASES = 100
#: Most values (scalars, lists, mappings) the rdf may stand for, aliases expanded.
MAX_VALUES = 100_000
#: The explicit tags plain data may carry (``!!str 5``); any other tag is refused.
_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")
}


def _yaml() -> Any:
    """ruyaml's safe, pure-Python YAML object (bioimageio.spec's own dependency)."""
    try:
        import ruyaml
    except ModuleNotFoundError:  # not "invalid YAML": the reader is not installed
        raise ModelError(
            "reading a bioimage.io package needs the [bioimageio] extra: "
            "pip install 'unet-edge[bioimageio]'"
        ) from None
    return ruyaml.YAML(typ="safe", pure=True)


def _problem(e: Exception) -> str:
    """A YAML error in one line: what, and where (``line N``)."""
    lines = str(e).strip().splitlines()
    what = getattr(e, "problem", None) or (lines[0] if lines else type(e).__name__)
    line = getattr(getattr(e, "problem_mark", None), "line", None)
    where = f" at line {line + 1}" if isinstance(line, int) else ""
    return f"{' '.join(str(what).split())[:200]}{where}"


def _check_events(text: str, name: str) -> None:
    """Stream the parser's events of ``text``; refuse depth, aliases or expanded size past the
    limits, and tags that are not plain data, before anything is built."""
    anchors: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # per open collection: [anchor, values inside]
    aliases = 0
    for ev in _yaml().parse(io.StringIO(text)):
        kind = type(ev).__name__
        tag = getattr(ev, "tag", None)
        if tag is not None and tag not in _PLAIN_TAGS:
            raise ModelError(
                f"{name}: its rdf.yaml uses the YAML tag {tag!r:.80}; a model description holds "
                "plain data only (text, numbers, lists, mappings)"
            )
        if kind in ("MappingStartEvent", "SequenceStartEvent"):
            stack.append([ev.anchor, 1])
            if len(stack) - 1 > MAX_DEPTH:
                raise ModelError(
                    f"{name}: its rdf.yaml nests lists and mappings more than {MAX_DEPTH} levels "
                    "deep; refused as damaged or malicious"
                )
            continue
        if kind in ("MappingEndEvent", "SequenceEndEvent"):
            anchor, size = stack.pop()
        elif kind == "ScalarEvent":
            anchor, size = ev.anchor, 1
        elif kind == "AliasEvent":
            aliases += 1
            anchor, size = None, anchors.get(ev.anchor, 0)
            if aliases > MAX_ALIASES:
                raise ModelError(
                    f"{name}: its rdf.yaml uses more than {MAX_ALIASES} YAML aliases; refused as "
                    "damaged or malicious (a model description needs none)"
                )
        else:
            continue
        if anchor is not None:
            anchors[anchor] = size
        stack[-1][1] += size
        if stack[0][1] + sum(s for _, s in stack[1:]) > MAX_VALUES:
            bomb = " once its YAML aliases are expanded (a 'billion laughs' bomb)"
            raise ModelError(
                f"{name}: its rdf.yaml stands for more than {MAX_VALUES:,} values"
                f"{bomb if aliases else ''}; refused as damaged or malicious"
            )


def load_rdf(text: str, name: str) -> dict[str, Any]:
    """The rdf's content as plain data (a mapping with text keys), or a one-line ModelError
    naming the package ``name``: bounded first (:func:`_check_events`), then loaded safely."""
    try:
        _check_events(text, name)
        content = _yaml().load(text)
    except ModelError:
        raise
    except Exception as e:  # ruyaml's scanner, parser and constructor errors, RecursionError
        raise ModelError(f"{name}: its rdf.yaml is not valid YAML ({_problem(e)})") from None
    if not isinstance(content, dict) or not all(isinstance(k, str) for k in content):
        raise ModelError(
            f"{name}: its rdf.yaml is not a mapping of field names to values (got "
            f"{type(content).__name__}); it is not a bioimage.io description"
        )
    return content
