"""`/api/contracts`: the project owner contracts the hired freelancer; both parties (and admins) see it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator
from starlette.responses import Response

from api.cache import cached_page, cached_view
from api.commanding import execute, if_match, written
from api.routing import Call, Operation
from api.schemas import AmountIn, Omittable, Page, Party, Strict
from api.text import single_line, visible_length
from commands.contracts import CancelContract, CreateContract, Milestone, ReviseContract
from core.db import Connection
from core.ids import new_id
from core.money import BadAmount, parse_amount, to_minor
from queries.contracts import get_contract, list_contracts

Currency = Literal["USDC", "USD"]
ContractStatus = Literal["active", "completed", "cancelled", "disputed"]
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(value: str) -> str:
    if not ISO_DATE.match(value):
        raise ValueError("must be an ISO date (YYYY-MM-DD)")
    date.fromisoformat(value)  # a ValueError for 2026-02-30 becomes a validation error
    return value


def _text(value: str) -> str:
    value = single_line(value)
    if not visible_length(value):
        raise ValueError("must not be blank")
    return value


IsoDate = Annotated[
    str, Field(min_length=10, max_length=10, json_schema_extra={"examples": ["2026-12-01"]}), AfterValidator(_iso_date)
]
Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_text)]
Description = Annotated[str, Field(max_length=10000)]
Terms = Annotated[str, Field(max_length=20000)]


class MilestoneIn(Strict):
    title: Title
    amount: AmountIn
    due_date: IsoDate | None = None


Milestones = Annotated[list[MilestoneIn], Field(max_length=50)]


def minor(amount: object, currency: str) -> int:
    """A validated amount in the currency's minor units; ValueError when it has too many decimals for it."""
    try:
        return to_minor(parse_amount(amount, currency), currency)
    except BadAmount as exc:
        raise ValueError(str(exc)) from exc


class ContractBody(Strict):
    project_id: str = Field(min_length=1, max_length=64)
    freelancer_id: str = Field(min_length=1, max_length=64)
    amount: AmountIn
    currency: Currency = "USDC"
    description: Description | None = None
    start_date: IsoDate | None = None
    end_date: IsoDate | None = None
    milestones: Milestones = Field(default_factory=list)
    terms: Terms | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ContractBody:
        amount = minor(self.amount, self.currency)
        if sum(minor(m.amount, self.currency) for m in self.milestones) > amount:
            raise ValueError("the milestone amounts add up to more than the contract amount")
        if self.start_date and self.end_date and self.end_date <= self.start_date:
            raise ValueError("end_date must be after start_date")
        return self


class ContractPatch(Strict):
    """Client: description, terms, end_date (null clears them), milestones. Either party: status."""

    description: Description | None = None
    terms: Terms | None = None
    end_date: IsoDate | None = None
    milestones: Omittable[Milestones] = None
    status: Omittable[ContractStatus] = None


class ContractFilters(Page):
    status: ContractStatus | None = None


class MilestoneOut(Strict):
    title: str
    amount: str
    due_date: str | None


class ContractOut(Strict):
    id: str
    project_id: str
    client_id: str
    freelancer_id: str
    client: Party
    freelancer: Party
    amount: str
    currency: Currency
    platform_fee: str
    description: str | None
    start_date: str | None
    end_date: str | None
    milestones: list[MilestoneOut]
    terms: str | None
    status: ContractStatus
    amount_paid: str
    created_at: str
    updated_at: str


class ContractList(Strict):
    items: list[ContractOut]
    next_cursor: str | None


def patch_changes(body: ContractPatch) -> dict[str, Any]:
    """What the client asked to change; milestone amounts stay decimal strings (the contract knows its currency)."""
    return body.model_dump(exclude_unset=True, exclude={"status"})


def read_back(call: Call, contract_id: str) -> Callable[[Connection], tuple[dict[str, Any], int]]:
    """The contract as its caller sees it, read inside the write's transaction (Runtime.execute)."""
    viewer, role = call.user.sub, call.user.role
    return lambda conn: get_contract(conn, contract_id, viewer, role)


async def list_all(call: Call) -> Response:
    f: ContractFilters = call.query
    viewer, role = call.user.sub, call.user.role
    return await cached_page(
        call,
        ("contracts", viewer, role, f),
        lambda conn: list_contracts(
            conn, viewer_id=viewer, viewer_role=role, limit=f.limit, cursor=f.cursor, status=f.status
        ),
    )


async def get_one(call: Call) -> Response:
    contract_id, viewer, role = call.path["contract_id"], call.user.sub, call.user.role
    return await cached_view(
        call, ("contract", viewer, role, contract_id), lambda conn: get_contract(conn, contract_id, viewer, role)
    )


async def create(call: Call) -> Response:
    body: ContractBody = call.body
    contract_id = new_id()
    command = CreateContract(
        contract_id=contract_id,
        project_id=body.project_id,
        client_id=call.user.sub,
        freelancer_id=body.freelancer_id,
        amount_minor=minor(body.amount, body.currency),
        currency=body.currency,
        fee_bps=call.runtime.settings.platform_fee_bps,
        description=body.description,
        start_date=body.start_date,
        end_date=body.end_date,
        milestones=[
            Milestone(title=m.title, amount_minor=minor(m.amount, body.currency), due_date=m.due_date)
            for m in body.milestones
        ],
        terms=body.terms,
    )
    (contract, version), position = await execute(call, command, read_back(call, contract_id))
    return written(contract, position, 201, etag=version)


async def update(call: Call) -> Response:
    body: ContractPatch = call.body
    contract_id = call.path["contract_id"]
    command = ReviseContract(
        contract_id=contract_id,
        actor_id=call.user.sub,
        changes=patch_changes(body),
        status=body.status,
        expected_versions=if_match(call),
        actor_is_admin=call.user.role == "admin",
    )
    (contract, version), position = await execute(call, command, read_back(call, contract_id))
    return written(contract, position, etag=version)


async def cancel(call: Call) -> Response:
    command = CancelContract(
        contract_id=call.path["contract_id"],
        actor_id=call.user.sub,
        expected_versions=if_match(call),
        actor_is_admin=call.user.role == "admin",
    )
    _, position = await execute(call, command)
    return Response(status_code=204, headers={"X-Consistency-Token": str(position)})


OPERATIONS = [
    Operation(
        "GET",
        "/api/contracts",
        list_all,
        "Contracts the caller is a party to (admins: all)",
        "contracts",
        query=ContractFilters,
        response=ContractList,
        errors=(401, 422),
    ),
    Operation(
        "GET",
        "/api/contracts/{contract_id}",
        get_one,
        "One contract (parties, admins)",
        "contracts",
        response=ContractOut,
        etag=True,
        errors=(401, 404),
    ),
    Operation(
        "POST",
        "/api/contracts",
        create,
        "Contract the hired freelancer (project owner)",
        "contracts",
        body=ContractBody,
        response=ContractOut,
        status=201,
        etag=True,
        errors=(400, 401, 403, 404, 409, 415, 422),
    ),
    Operation(
        "PUT",
        "/api/contracts/{contract_id}",
        update,
        "Edit an active contract (client) or move its status (parties)",
        "contracts",
        body=ContractPatch,
        response=ContractOut,
        if_match=True,
        etag=True,
        errors=(400, 401, 403, 404, 409, 415, 422),
    ),
    Operation(
        "DELETE",
        "/api/contracts/{contract_id}",
        cancel,
        "Cancel an active contract nothing was paid on (client)",
        "contracts",
        status=204,
        if_match=True,
        errors=(401, 403, 404, 409),
    ),
]
