"""Rows two parties share (a contract's client and freelancer, a payment's payer and payee): one get and
one newest-first list, each showing a row only to its parties and to admins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.db import Connection
from core.errors import NotFound
from queries.pagination import decode_cursor, page

Row = tuple[Any, ...]  # the selected columns, in `columns` order
Filters = Sequence[tuple[str, object | None]]  # (clause, value): a clause applies only when its value is given


@dataclass(frozen=True)
class PartyTable:
    """A read table keyed by `id` (newest id first), with two party columns that see their rows."""

    table: str
    columns: tuple[str, ...]  # selected in this order
    parties: tuple[str, str]  # e.g. ("client_id", "freelancer_id"); a row never names one user in both
    missing: str  # the NotFound detail for a row the viewer may not see
    cursor: str  # the list's cursor name
    select: str = field(init=False)
    select_one: str = field(init=False)
    party_index: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        # Table and column names come from the read model's constants, never from a request.
        object.__setattr__(self, "select", f"SELECT {', '.join(self.columns)} FROM {self.table}")
        object.__setattr__(self, "select_one", f"{self.select} WHERE id = ?")
        object.__setattr__(self, "party_index", tuple(self.columns.index(p) for p in self.parties))

    def may_see(self, row: Sequence[Any], viewer_id: str, viewer_role: str) -> bool:
        first, second = self.party_index
        return viewer_role == "admin" or viewer_id in (row[first], row[second])

    def get(self, conn: Connection, row_id: str, viewer_id: str, viewer_role: str) -> Row:
        """The row, if the viewer is one of its parties or an admin; else NotFound."""
        row: Row | None = conn.execute(self.select_one, (row_id,)).fetchone()
        if row is None or not self.may_see(row, viewer_id, viewer_role):
            raise NotFound(self.missing)
        return row

    def list_page(
        self, conn: Connection, viewer_id: str, viewer_role: str, limit: int, cursor: str | None, filters: Filters
    ) -> tuple[list[Row], str | None]:
        """The rows this viewer may see, newest first, with the next page's cursor."""
        after = decode_cursor(cursor, self.cursor, 1)[0] if cursor else None
        wanted = [("id < ?", after), *filters]
        first, second = self.parties
        if viewer_role == "admin":
            branches = [self._branch((), wanted)]
        else:
            # Two index-ordered scans merged by id: (first, id) and (second, id). `first <> ?` keeps the
            # branches disjoint even if a row named one user as both parties.
            branches = [
                self._branch(((f"{first} = ?", viewer_id),), wanted),
                self._branch(((f"{second} = ?", viewer_id), (f"{first} <> ?", viewer_id)), wanted),
            ]
        sql = " UNION ALL ".join(b[0] for b in branches) + " ORDER BY id DESC LIMIT ?"
        params = [p for b in branches for p in b[1]]
        rows, next_cursor = page(conn.execute(sql, (*params, limit + 1)).fetchall(), limit, (0,), self.cursor)
        return rows, next_cursor

    def _branch(self, fixed: Filters, filters: Filters) -> tuple[str, list[Any]]:
        pairs = [*fixed, *((clause, value) for clause, value in filters if value is not None)]
        sql = self.select
        if pairs:
            sql += " WHERE " + " AND ".join(clause for clause, _ in pairs)
        return sql, [value for _, value in pairs]
