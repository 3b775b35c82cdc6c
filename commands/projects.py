"""Projects, write side: post, revise, move status, delete."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from commands.common import Command, check_version, fold
from core.errors import Forbidden, InvalidState, ValidationFailed
from core.events.base import StoredEvent
from core.events.projects import ProjectDeleted, ProjectPosted, ProjectRevised, ProjectStatusChanged
from core.store import UnitOfWork

STREAM = "project"
# Status moves the owner may make with PUT; in_progress comes only from accepting a proposal.
OWNER_MOVES = {("open", "closed"), ("open", "cancelled"), ("in_progress", "completed")}


class PostProject(Command):
    """Publish a new project, open for proposals."""

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
    skills: list[str]


class ReviseProject(Command):
    """Edit a project's content and/or move its status (owner only)."""

    project_id: str
    actor_id: str
    changes: dict[str, Any]
    status: str | None = None
    expected_versions: frozenset[int] | None = None


class DeleteProject(Command):
    """Withdraw an open project nobody has been hired for."""

    project_id: str
    actor_id: str
    expected_versions: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class Project:
    """What the write side needs to know about a project."""

    id: str
    client_id: str
    status: str
    budget_min_minor: int
    budget_max_minor: int
    accepted_proposal_id: str | None
    accepted_freelancer_id: str | None
    version: int


def evolve(state: Project | None, event: StoredEvent) -> Project | None:
    d = event.data
    if event.type == "ProjectPosted":
        return Project(
            d["project_id"],
            d["client_id"],
            "open",
            d["budget_min_minor"],
            d["budget_max_minor"],
            None,
            None,
            event.version,
        )
    if state is None or event.type == "ProjectDeleted":
        return None
    state = replace(state, version=event.version)
    if event.type == "ProjectRevised":
        changes = d["changes"]
        return replace(
            state,
            budget_min_minor=changes.get("budget_min_minor", state.budget_min_minor),
            budget_max_minor=changes.get("budget_max_minor", state.budget_max_minor),
        )
    if event.type == "ProjectStatusChanged":
        return replace(state, status=d["status"])
    if event.type == "ProjectAwarded":
        return replace(
            state,
            status="in_progress",
            accepted_proposal_id=d["proposal_id"],
            accepted_freelancer_id=d["freelancer_id"],
        )
    return state


def load_project(uow: UnitOfWork, project_id: str) -> Project:
    return fold(uow, project_id, evolve, "project")


def owned_project(uow: UnitOfWork, project_id: str, actor_id: str) -> Project:
    """The project, if the actor owns it. Anyone signed in can read it, so others are refused (403)."""
    project = load_project(uow, project_id)
    if project.client_id != actor_id:
        raise Forbidden("Only the project's owner can change it")
    return project


def post_project(uow: UnitOfWork, cmd: PostProject) -> str:
    uow.append(cmd.project_id, STREAM, 0, [ProjectPosted(**cmd.model_dump())])
    return cmd.project_id


def revise_project(uow: UnitOfWork, cmd: ReviseProject) -> None:
    project = owned_project(uow, cmd.project_id, cmd.actor_id)
    check_version(project.version, cmd.expected_versions, "project")
    events: list[Any] = []
    if cmd.changes:
        if project.status != "open":
            raise InvalidState(f"A project's content can only be edited while open (it is {project.status})")
        low = cmd.changes.get("budget_min_minor", project.budget_min_minor)
        high = cmd.changes.get("budget_max_minor", project.budget_max_minor)
        if low > high:
            raise ValidationFailed(
                "budget_min must not exceed budget_max",
                errors=[{"loc": ["body", "budget_min"], "msg": "greater than budget_max"}],
            )
        events.append(ProjectRevised(project_id=project.id, changes=dict(cmd.changes)))
    if cmd.status is not None and cmd.status != project.status:
        if (project.status, cmd.status) not in OWNER_MOVES:
            raise InvalidState(f"A project cannot move from {project.status} to {cmd.status}")
        events.append(ProjectStatusChanged(project_id=project.id, status=cmd.status, previous_status=project.status))
    if events:
        uow.append(project.id, STREAM, project.version, events)


def delete_project(uow: UnitOfWork, cmd: DeleteProject) -> None:
    project = owned_project(uow, cmd.project_id, cmd.actor_id)
    check_version(project.version, cmd.expected_versions, "project")
    if project.status != "open" or project.accepted_proposal_id is not None:
        raise InvalidState(f"Only an open project with no accepted proposal can be deleted (it is {project.status})")
    uow.append(project.id, STREAM, project.version, [ProjectDeleted(project_id=project.id)])
