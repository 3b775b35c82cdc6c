"""docs/configuration.md, generated from `Settings`: `python -m core.settings_doc > docs/configuration.md`."""

from __future__ import annotations

import sys
import typing
from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from core.settings import Settings

HEADER = """# Configuration

<!-- Generated from core/settings.py by `python -m core.settings_doc > docs/configuration.md`; do not edit. -->

Every setting is an environment variable; the defaults suit a laptop, so `make run` needs none.
A value the service cannot use (not a number, out of range, not one of the choices, a URL without
`http(s)://`, a CIDR or key ring that does not parse) stops `megilance` at start with one line naming
the variable. A variable written `A` / `B` may be given under either name; the first wins.

| variable | default | allowed | meaning |
|---|---|---|---|
"""


def env_names(field: FieldInfo) -> list[str]:
    """The environment variables a field is read from, in the order pydantic tries them."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [field.alias] if field.alias else []


def default_text(field: FieldInfo) -> str:
    """The default as a reader needs it: a computed one in words, none as a dash."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("default_text"), str):
        return str(extra["default_text"])
    default = field.get_default(call_default_factory=False)
    if default is None or default == "":
        return "-"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


def allowed_text(field: FieldInfo) -> str:
    """Choices of a Literal, or the numeric range its constraints give."""
    if typing.get_origin(field.annotation) is typing.Literal:
        return ", ".join(f"`{choice}`" for choice in typing.get_args(field.annotation))
    low = high = ""
    for rule in field.metadata:  # pydantic keeps ge/gt/le as annotated-types objects with that one attribute
        if getattr(rule, "ge", None) is not None:
            low = f"≥ {rule.ge}"
        elif getattr(rule, "gt", None) is not None:
            low = f"> {rule.gt}"
        elif getattr(rule, "le", None) is not None:
            high = f"≤ {rule.le}"
    if field.annotation is bool:
        return "`true`, `false`"
    return ", ".join(part for part in (low, high) if part) or "text"


class MissingDescription(ValueError):
    """A setting has no description, so the page would have a blank row."""


def row(name: str, field: FieldInfo) -> str:
    if not field.description:
        raise MissingDescription(f"Settings.{name} has no Field(description=...)")
    variables = " / ".join(f"`{env}`" for env in env_names(field))
    return f"| {variables} | {default_text(field)} | {allowed_text(field)} | {field.description} |"


def render() -> str:
    """The whole page, one row per field of `Settings` in declaration order."""
    rows = [row(name, field) for name, field in Settings.model_fields.items()]
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    """Print the page, or with a path write it there."""
    text = render()
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
