"""Proposals, write side: submit, revise, withdraw, reject, and accept (one atomic multi-stream command).

A project that ends without a hire (deleted, closed, cancelled) rejects its submitted proposals in the same
transaction: those commands run here, as they span the project's stream and its proposals'.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from commands import projects, users
from commands.common import Command, check_version, fold
from core.errors import Forbidden, InvalidState, NotFound
from core.events.base import StoredEvent
from core.events.projects import ProjectAwarded
from core.events.proposals import (
    ProposalAccepted,
    ProposalRejected,
    ProposalRevised,
    ProposalSubmitted,
    ProposalWithdrawn,
)
from core.store import UnitOfWork

STREAM = "proposal"
CLAIM = "proposal"  # key "<project_id>:<freelancer_id>" → proposal id: one per freelancer per project
# A project that closes or is cancelled takes no more hires: its submitted proposals are rejected with these reasons.
CLOSING = {"closed": "project_closed", "cancelled": "project_cancelled"}


class SubmitProposal(Command):
    """Bid on an open project."""

    proposal_id: str
    project_id: str
    freelancer_id: str
    cover_letter: str
    estimated_hours: int
    hourly_rate_minor: int
    availability: str
    attachments: list[str]


class ReviseProposal(Command):
    """Change a proposal that is still submitted (author only)."""

    proposal_id: str
    actor_id: str
    changes: dict[str, Any]
    expected_versions: frozenset[int] | None = None
    actor_is_admin: bool = False  # admins see every proposal, so they are refused (403), not told it is missing


class WithdrawProposal(Command):
    """Take a submitted proposal back (author only)."""

    proposal_id: str
    actor_id: str
    expected_versions: frozenset[int] | None = None
    actor_is_admin: bool = False


class AcceptProposal(Command):
    """Hire: this proposal accepted, the project in progress, every other submitted one rejected (project owner
    only, whatever their role now)."""

    proposal_id: str
    actor_id: str
    actor_is_admin: bool = False


class RejectProposal(Command):
    """Decline a submitted proposal (project owner only)."""

    proposal_id: str
    actor_id: str
    actor_is_admin: bool = False


@dataclass(frozen=True, slots=True)
class Proposal:
    id: str
    project_id: str
    freelancer_id: str
    client_id: str
    status: str
    version: int


def evolve(state: Proposal | None, event: StoredEvent) -> Proposal | None:
    d = event.data
    if event.type == "ProposalSubmitted":
        return Proposal(
            d["proposal_id"], d["project_id"], d["freelancer_id"], d["client_id"], "submitted", event.version
        )
    if state is None:
        return None
    status = {"ProposalWithdrawn": "withdrawn", "ProposalAccepted": "accepted", "ProposalRejected": "rejected"}
    return replace(state, status=status.get(event.type, state.status), version=event.version)


def load_proposal(uow: UnitOfWork, proposal_id: str) -> Proposal:
    return fold(uow, proposal_id, evolve, "proposal")


def visible_proposal(uow: UnitOfWork, proposal_id: str, actor_id: str, *, admin: bool = False) -> Proposal:
    """Author and project owner may act on it; an admin (who may read it) is refused; anyone else is told it
    does not exist."""
    proposal = load_proposal(uow, proposal_id)
    if actor_id not in (proposal.freelancer_id, proposal.client_id):
        if admin:
            raise Forbidden("Only the proposal's author can change it")
        raise NotFound("No proposal with that id")
    return proposal


def submit_proposal(uow: UnitOfWork, cmd: SubmitProposal) -> str:
    try:
        project = projects.load_project(uow, cmd.project_id)
    except NotFound:
        raise NotFound("No project with that id") from None
    if project.client_id == cmd.freelancer_id:
        raise Forbidden("You cannot bid on your own project")
    if project.status != "open":
        raise InvalidState(f"The project is not open for proposals (it is {project.status})")
    uow.claim(
        CLAIM,
        f"{cmd.project_id}:{cmd.freelancer_id}",
        cmd.proposal_id,
        code="duplicate_proposal",
        detail="You already sent a proposal for this project",
    )
    event = ProposalSubmitted(client_id=project.client_id, **cmd.model_dump())
    uow.append(cmd.proposal_id, STREAM, 0, [event])
    return cmd.proposal_id


def _authored(uow: UnitOfWork, cmd: ReviseProposal | WithdrawProposal) -> Proposal:
    proposal = visible_proposal(uow, cmd.proposal_id, cmd.actor_id, admin=cmd.actor_is_admin)
    if proposal.freelancer_id != cmd.actor_id:
        raise Forbidden("Only the proposal's author can change it")
    check_version(proposal.version, cmd.expected_versions, "proposal")
    if proposal.status != "submitted":
        raise InvalidState(f"Only a submitted proposal can be changed (it is {proposal.status})")
    return proposal


def revise_proposal(uow: UnitOfWork, cmd: ReviseProposal) -> None:
    proposal = _authored(uow, cmd)
    if cmd.changes:
        uow.append(
            proposal.id, STREAM, proposal.version, [ProposalRevised(proposal_id=proposal.id, changes=dict(cmd.changes))]
        )


def withdraw_proposal(uow: UnitOfWork, cmd: WithdrawProposal) -> None:
    proposal = _authored(uow, cmd)
    uow.append(
        proposal.id,
        STREAM,
        proposal.version,
        [ProposalWithdrawn(proposal_id=proposal.id, project_id=proposal.project_id)],
    )


def _owned_submitted(uow: UnitOfWork, cmd: AcceptProposal | RejectProposal) -> Proposal:
    proposal = visible_proposal(uow, cmd.proposal_id, cmd.actor_id, admin=cmd.actor_is_admin)
    if proposal.client_id != cmd.actor_id:
        raise Forbidden("Only the project's owner can accept or reject proposals")
    if proposal.status != "submitted":
        raise InvalidState(f"Only a submitted proposal can be accepted or rejected (it is {proposal.status})")
    return proposal


def reject_proposal(uow: UnitOfWork, cmd: RejectProposal) -> None:
    proposal = _owned_submitted(uow, cmd)
    uow.append(
        proposal.id,
        STREAM,
        proposal.version,
        [ProposalRejected(proposal_id=proposal.id, project_id=proposal.project_id, reason="declined")],
    )


def accept_proposal(uow: UnitOfWork, cmd: AcceptProposal) -> None:
    """Several streams, one transaction: a lost race on any of them undoes all (VersionConflict)."""
    proposal = _owned_submitted(uow, cmd)
    project = projects.load_project(uow, proposal.project_id)
    if project.status != "open":
        raise InvalidState(f"The project is not open (it is {project.status})")
    if not users.load_user(uow, proposal.freelancer_id).is_active:
        # Hired, they could get no contract, and a project in progress cannot be closed or cancelled.
        raise InvalidState("The proposal's author has a deactivated account")
    uow.append(
        proposal.id,
        STREAM,
        proposal.version,
        [ProposalAccepted(proposal_id=proposal.id, project_id=project.id, freelancer_id=proposal.freelancer_id)],
    )
    uow.append(
        project.id,
        projects.STREAM,
        project.version,
        [ProjectAwarded(project_id=project.id, proposal_id=proposal.id, freelancer_id=proposal.freelancer_id)],
    )
    reject_submitted(uow, project.id, "another_accepted", accepted=proposal.id)


def delete_project(uow: UnitOfWork, cmd: projects.DeleteProject) -> None:
    """The project deleted and, in the same transaction, every proposal still submitted on it rejected."""
    projects.delete_project(uow, cmd)
    reject_submitted(uow, cmd.project_id, "project_deleted")


def revise_project(uow: UnitOfWork, cmd: projects.ReviseProject) -> None:
    """The project revised; closing or cancelling it rejects every proposal still submitted on it, atomically."""
    projects.revise_project(uow, cmd)
    if cmd.status in CLOSING:
        reject_submitted(uow, cmd.project_id, CLOSING[cmd.status])


def reject_submitted(uow: UnitOfWork, project_id: str, reason: str, accepted: str | None = None) -> None:
    """Every proposal on the project that is still submitted (but the one just `accepted`) → rejected."""
    for proposal_id in _proposal_ids(uow, project_id):
        if proposal_id == accepted:
            continue
        other = load_proposal(uow, proposal_id)
        if other.status == "submitted":
            uow.append(
                other.id,
                STREAM,
                other.version,
                [ProposalRejected(proposal_id=other.id, project_id=project_id, reason=reason)],
            )


def _proposal_ids(uow: UnitOfWork, project_id: str) -> list[str]:
    return uow.claim_owners(CLAIM, f"{project_id}:")
