"""Text rules at the HTTP boundary: one normal form, no invisible characters in one-line fields, visible lengths.

- One-line fields (names, titles, skills, tags, categories, locations): NFKC (fullwidth and other compatibility
  forms become their plain letters), trimmed, and refused if they hold a control, format (zero-width, bidi
  override, soft hyphen…), surrogate, private-use or line/paragraph-separator character.
- Free text (descriptions, cover letters, bios): NFC only (NFKC would change what was written, `x²` into `x2`);
  tab and newline stay allowed.
- A length minimum counts visible characters: letters, digits, marks on them aside, punctuation and symbols;
  not spaces, controls, format characters or combining marks alone.
- E-mail addresses: NFKC, trimmed, ASCII only (an international domain in its `xn--` form); compared
  case-folded (`commands.users.normalize_email`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
NOT_COUNTED = ("Z", "C", "Mn", "Me")


def visible_length(text: str) -> int:
    """Characters a reader sees as one each (spaces, invisible characters and lone combining marks excluded)."""
    return sum(1 for c in text if not unicodedata.category(c).startswith(NOT_COUNTED))


def single_line(value: str) -> str:
    """NFKC, trimmed; a ValueError naming the first control or invisible character."""
    text = unicodedata.normalize("NFKC", value).strip()
    for c in text:
        if unicodedata.category(c) in INVISIBLE:
            raise ValueError(f"must not contain control or invisible characters (found U+{ord(c):04X})")
    return text


def free_text(value: str) -> str:
    """NFC, as written otherwise."""
    return unicodedata.normalize("NFC", value)


def at_least_visible(minimum: int) -> Callable[[str], str]:
    """A validator: at least `minimum` visible characters."""

    def check(value: str) -> str:
        if visible_length(value) < minimum:
            raise ValueError(f"must have at least {minimum} visible characters")
        return value

    return check


def email_text(value: str) -> str:
    """An address in the one form it is stored and compared in (before case folding): NFKC, trimmed, ASCII."""
    text = unicodedata.normalize("NFKC", value).strip()
    if not text.isascii():
        raise ValueError("must be an ASCII address (write an international domain in its xn-- form)")
    return text
