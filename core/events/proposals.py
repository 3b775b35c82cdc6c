"""Facts about proposals (hourly rates as integer cents)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalSubmitted(Event):
    """A freelancer bid on an open project."""

    TYPE = "ProposalSubmitted"
    proposal_id: str
    project_id: str
    freelancer_id: str
    client_id: str
    cover_letter: str
    estimated_hours: int
    hourly_rate_minor: int
    availability: str
    attachments: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalRevised(Event):
    """The freelancer changed a submitted proposal; only changed fields are present."""

    TYPE = "ProposalRevised"
    proposal_id: str
    changes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalWithdrawn(Event):
    """The freelancer took the proposal back."""

    TYPE = "ProposalWithdrawn"
    proposal_id: str
    project_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalAccepted(Event):
    """The project's client chose this proposal."""

    TYPE = "ProposalAccepted"
    proposal_id: str
    project_id: str
    freelancer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalRejected(Event):
    """The client declined it, accepted another one, or ended the project without a hire.

    `reason`: declined / another_accepted / project_deleted / project_closed / project_cancelled.
    """

    TYPE = "ProposalRejected"
    proposal_id: str
    project_id: str
    reason: str
