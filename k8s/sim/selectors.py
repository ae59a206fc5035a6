"""Label selectors as the API server parses them.

``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x)``, comma-separated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_SET = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_TERM_SPLIT = re.compile(r",(?![^(]*\))")


def _term_matches(term: str, labels: Mapping[str, str]) -> bool:
    term = term.strip()
    found = _SET.match(term)
    if found:
        key, op, values = found.groups()
        allowed = {v.strip() for v in values.split(",")}
        return (labels.get(key) in allowed) if op == "in" else (labels.get(key) not in allowed)
    if "!=" in term:
        key, value = (part.strip() for part in term.split("!=", 1))
        return labels.get(key) != value
    if "=" in term:
        key, value = (part.strip() for part in term.replace("==", "=").split("=", 1))
        return labels.get(key) == value
    if term.startswith("!"):
        return term[1:].strip() not in labels
    return term in labels


def matches(selector: str | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every comma-separated requirement of ``selector``."""
    if not selector:
        return True
    return all(_term_matches(term, labels) for term in _TERM_SPLIT.split(selector) if term.strip())


def fields_match(selector: str | None, obj: Mapping[str, object]) -> bool:
    """Field selectors (``involvedObject.name=x,reason!=y``): dotted paths compared as strings."""
    for term in filter(None, (part.strip() for part in (selector or "").split(","))):
        negate = "!=" in term
        path, value = (part.strip() for part in term.replace("!=", "=").replace("==", "=").split("=", 1))
        found: object = obj
        for step in path.split("."):
            found = found.get(step, "") if isinstance(found, Mapping) else ""
        if (str(found) == value) == negate:
            return False
    return True
