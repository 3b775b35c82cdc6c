"""`/api/proposals`: freelancers bid; project owners accept or reject; each side sees only its own."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field
from starlette.responses import Response

from api.cache import cached_page, cached_view
from api.commanding import execute, if_match, written
from api.routing import Call, Operation
from api.schemas import Attachment, MoneyIn, Omittable, Page, Party, Strict, cents, json_integer
from api.text import at_least_visible, free_text
from api.uploads.ownership import require_own_uploads
from commands.proposals import AcceptProposal, RejectProposal, ReviseProposal, SubmitProposal, WithdrawProposal
from core.ids import new_id
from queries.proposals import get_proposal, list_proposals

FREELANCER = frozenset({"freelancer"})
Availability = Literal["immediate", "1-2_weeks", "1_month", "flexible"]
ProposalStatus = Literal["submitted", "accepted", "rejected", "withdrawn"]


CoverLetter = Annotated[
    str, Field(min_length=50, max_length=5000), AfterValidator(free_text), AfterValidator(at_least_visible(50))
]
# The bounds before the JSON-integer check: nested inside JsonInt's Annotated they were documented as `gt`/`le`.
Hours = Annotated[int, Field(gt=0, le=100000), BeforeValidator(json_integer)]


class ProposalBody(Strict):
    project_id: str = Field(min_length=1, max_length=64)
    cover_letter: CoverLetter
    estimated_hours: Hours
    hourly_rate: MoneyIn
    availability: Availability
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)


class ProposalPatch(Strict):
    cover_letter: Omittable[CoverLetter] = None
    estimated_hours: Omittable[Hours] = None
    hourly_rate: Omittable[MoneyIn] = None
    availability: Omittable[Availability] = None
    attachments: Omittable[list[Attachment]] = Field(None, max_length=10)


class ProposalFilters(Page):
    project_id: str | None = Field(None, max_length=64)
    status: ProposalStatus | None = None


class ProposalOut(Strict):
    id: str
    project_id: str
    freelancer_id: str
    freelancer: Party
    cover_letter: str
    estimated_hours: int
    hourly_rate: str
    availability: Availability
    attachments: list[str]
    status: ProposalStatus
    created_at: str
    updated_at: str


class ProposalList(Strict):
    items: list[ProposalOut]
    next_cursor: str | None


async def submit(call: Call, command: Any, proposal_id: str, status: int = 200) -> Response:
    """Run the command, then answer with the proposal as the caller now sees it (read in the same transaction)."""
    viewer, role = call.user.sub, call.user.role
    (proposal, version), position = await execute(
        call, command, lambda conn: get_proposal(conn, proposal_id, viewer, role)
    )
    return written(proposal, position, status, etag=version)


async def list_all(call: Call) -> Response:
    f: ProposalFilters = call.query
    viewer, role = call.user.sub, call.user.role
    return await cached_page(
        call,
        ("proposals", viewer, role, f),
        lambda conn: list_proposals(
            conn,
            viewer_id=viewer,
            viewer_role=role,
            limit=f.limit,
            cursor=f.cursor,
            project_id=f.project_id,
            status=f.status,
        ),
    )


async def get_one(call: Call) -> Response:
    proposal_id, viewer, role = call.path["proposal_id"], call.user.sub, call.user.role
    return await cached_view(
        call, ("proposal", viewer, role, proposal_id), lambda conn: get_proposal(conn, proposal_id, viewer, role)
    )


async def create(call: Call) -> Response:
    body: ProposalBody = call.body
    await require_own_uploads(call, body.attachments, "attachments")
    proposal_id = new_id()
    command = SubmitProposal(
        proposal_id=proposal_id,
        project_id=body.project_id,
        freelancer_id=call.user.sub,
        cover_letter=body.cover_letter,
        estimated_hours=body.estimated_hours,
        hourly_rate_minor=cents(body.hourly_rate),
        availability=body.availability,
        attachments=list(body.attachments),
    )
    return await submit(call, command, proposal_id, 201)


async def update(call: Call) -> Response:
    body: ProposalPatch = call.body
    await require_own_uploads(call, body.attachments or [], "attachments")
    changes = body.model_dump(exclude_unset=True)
    if "hourly_rate" in changes:
        changes["hourly_rate_minor"] = cents(changes.pop("hourly_rate"))
    proposal_id = call.path["proposal_id"]
    command = ReviseProposal(
        proposal_id=proposal_id,
        actor_id=call.user.sub,
        changes=changes,
        expected_versions=if_match(call),
        actor_is_admin=call.user.role == "admin",
    )
    return await submit(call, command, proposal_id)


async def withdraw(call: Call) -> Response:
    _, position = await execute(
        call,
        WithdrawProposal(
            proposal_id=call.path["proposal_id"],
            actor_id=call.user.sub,
            expected_versions=if_match(call),
            actor_is_admin=call.user.role == "admin",
        ),
    )
    return Response(status_code=204, headers={"X-Consistency-Token": str(position)})


async def accept(call: Call) -> Response:
    proposal_id = call.path["proposal_id"]
    command = AcceptProposal(proposal_id=proposal_id, actor_id=call.user.sub, actor_is_admin=call.user.role == "admin")
    return await submit(call, command, proposal_id)


async def reject(call: Call) -> Response:
    proposal_id = call.path["proposal_id"]
    command = RejectProposal(proposal_id=proposal_id, actor_id=call.user.sub, actor_is_admin=call.user.role == "admin")
    return await submit(call, command, proposal_id)


OPERATIONS = [
    Operation(
        "GET",
        "/api/proposals",
        list_all,
        "Proposals the caller may see",
        "proposals",
        query=ProposalFilters,
        response=ProposalList,
        errors=(401, 422),
    ),
    Operation(
        "GET",
        "/api/proposals/{proposal_id}",
        get_one,
        "One proposal (author, project owner, admin)",
        "proposals",
        response=ProposalOut,
        etag=True,
        errors=(401, 404),
    ),
    Operation(
        "POST",
        "/api/proposals",
        create,
        "Bid on an open project (freelancers)",
        "proposals",
        body=ProposalBody,
        response=ProposalOut,
        status=201,
        roles=FREELANCER,
        etag=True,
        errors=(400, 401, 403, 404, 409, 415, 422),
    ),
    Operation(
        "PUT",
        "/api/proposals/{proposal_id}",
        update,
        "Revise a submitted proposal (author)",
        "proposals",
        body=ProposalPatch,
        response=ProposalOut,
        if_match=True,
        etag=True,
        errors=(400, 401, 403, 404, 409, 415, 422),
    ),
    Operation(
        "DELETE",
        "/api/proposals/{proposal_id}",
        withdraw,
        "Withdraw a submitted proposal (author)",
        "proposals",
        status=204,
        if_match=True,
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "POST",
        "/api/proposals/{proposal_id}/accept",
        accept,
        "Accept: hire this freelancer (project owner)",
        "proposals",
        response=ProposalOut,
        etag=True,
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "POST",
        "/api/proposals/{proposal_id}/reject",
        reject,
        "Decline a proposal (project owner)",
        "proposals",
        response=ProposalOut,
        etag=True,
        errors=(401, 403, 404, 409),
    ),
]
