"""Turning user text into a safe FTS5 query: words only, each quoted, never FTS syntax."""

from __future__ import annotations

import re

WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 8


def match_expression(text: str) -> str | None:
    """`rust "web" OR x*` → `"rust" "web" "OR" "x"*`: every word a quoted literal, AND-ed; last one a prefix."""
    words = WORD.findall(text)[:MAX_TERMS]
    if not words:
        return None
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)
