"""Facts about projects (money as integer cents in `*_minor` fields)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectPosted(Event):
    """A client posted a project, open for proposals."""

    TYPE = "ProjectPosted"
    project_id: str
    client_id: str
    title: str
    description: str
    category: str
    budget_type: str
    budget_min_minor: int
    budget_max_minor: int
    experience_level: str
    estimated_duration: str
    skills: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectRevised(Event):
    """The client changed the content of an open project; only changed fields are present."""

    TYPE = "ProjectRevised"
    project_id: str
    changes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectStatusChanged(Event):
    """The project moved between open, closed, cancelled and completed."""

    TYPE = "ProjectStatusChanged"
    project_id: str
    status: str
    previous_status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectAwarded(Event):
    """The client accepted a proposal: the project is in progress with that freelancer."""

    TYPE = "ProjectAwarded"
    project_id: str
    proposal_id: str
    freelancer_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectDeleted(Event):
    """The client withdrew an open project; it vanishes from reads but stays in the log."""

    TYPE = "ProjectDeleted"
    project_id: str
