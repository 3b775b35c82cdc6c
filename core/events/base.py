"""What every event is: a named, versioned fact with a JSON body."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """A fact to append. Subclasses set TYPE (stable, past tense) and VERSION."""

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def to_data(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class StoredEvent(NamedTuple):
    """An event as the log holds it, upcast to the newest version of its type.

    Immutable like a frozen dataclass, but built four times faster (a frozen dataclass sets each field
    through object.__setattr__): a replay builds one per event (docs/performance.md, "Where the time goes").
    """

    position: int
    stream_id: str
    stream_type: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    meta: dict[str, Any]
    recorded_at: str
