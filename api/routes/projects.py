"""`/api/projects`: the project board (any signed-in user) and a client's own projects."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator
from starlette.responses import Response

from api.cache import cached_page, cached_view
from api.commanding import execute, if_match, written
from api.matcher import matched_page, matcher_of
from api.routing import Call, Operation
from api.schemas import (
    BudgetType,
    Experience,
    MoneyIn,
    Omittable,
    Page,
    ProjectOut,
    Skill,
    Status,
    Strict,
    cents,
)
from api.text import at_least_visible, free_text, single_line
from commands.projects import DeleteProject, PostProject, ReviseProject
from core.ids import new_id
from queries.matches import search_projects
from queries.projects import get_project, get_project_json, list_projects

CLIENT = frozenset({"client"})


# Trimmed before the lengths are checked: the stored text is the trimmed one, and docs/api.md's lengths hold for it.
# Minimums count visible characters (api.text): ten zero-width characters are not a five-character title.
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=5, max_length=200),
    AfterValidator(single_line),
    AfterValidator(at_least_visible(5)),
]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=20, max_length=10000),
    AfterValidator(free_text),
    AfterValidator(at_least_visible(20)),
]
Short = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(single_line),
    AfterValidator(at_least_visible(1)),
]


class ProjectBody(Strict):
    title: Title
    description: Description
    category: Short
    budget_type: BudgetType
    budget_min: MoneyIn
    budget_max: MoneyIn
    experience_level: Experience
    estimated_duration: Short
    skills: list[Skill] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _budget_order(self) -> ProjectBody:
        if cents(self.budget_min) > cents(self.budget_max):
            raise ValueError("budget_min must not exceed budget_max")
        return self


class ProjectPatch(Strict):
    title: Omittable[Title] = None
    description: Omittable[Description] = None
    category: Omittable[Short] = None
    budget_type: Omittable[BudgetType] = None
    budget_min: Omittable[MoneyIn] = None
    budget_max: Omittable[MoneyIn] = None
    experience_level: Omittable[Experience] = None
    estimated_duration: Omittable[Short] = None
    skills: Omittable[list[Skill]] = Field(None, max_length=20)
    status: Omittable[Literal["closed", "cancelled", "completed"]] = None


class ProjectFilters(Page):
    status: Status | None = None
    # Trimmed as the stored categories and skills are.
    category: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    skill: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] | None = None
    q: str | None = Field(None, max_length=200)
    budget_min: MoneyIn | None = Field(None, description="projects whose budget_max is at least this")
    budget_max: MoneyIn | None = Field(None, description="projects whose budget_min is at most this")
    client_id: str | None = Field(None, max_length=64)
    sort: Literal["newest", "relevance"] = Field(
        "newest", description="relevance (with q): hybrid lexical and semantic ranking, see matching"
    )

    @model_validator(mode="after")
    def _budget_order(self) -> ProjectFilters:
        # An inverted range is empty; as two overlap bounds it would still match every project spanning it.
        if self.budget_min and self.budget_max and cents(self.budget_min) > cents(self.budget_max):
            raise ValueError("budget_min must not exceed budget_max")
        return self


class ProjectList(Strict):
    items: list[ProjectOut]
    next_cursor: str | None


def patch_changes(body: ProjectPatch) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True, exclude={"status"})
    for field in ("budget_min", "budget_max"):
        if field in changes:
            changes[f"{field}_minor"] = cents(changes.pop(field))
    return changes


async def list_all(call: Call) -> Response:
    f: ProjectFilters = call.query
    if f.sort == "relevance" and f.q is not None:
        return await search_by_relevance(call, f)
    return await cached_page(
        call,
        ("projects", f),
        lambda conn: list_projects(
            conn,
            limit=f.limit,
            cursor=f.cursor,
            status=f.status,
            category=f.category,
            skill=f.skill,
            q=f.q,
            budget_min_minor=cents(f.budget_min) if f.budget_min else None,
            budget_max_minor=cents(f.budget_max) if f.budget_max else None,
            client_id=f.client_id,
            fragments=True,
        ),
    )


async def search_by_relevance(call: Call, f: ProjectFilters) -> Response:
    """`q` ranked by the matching model's hybrid fusion; the board's other filters still apply."""
    matcher, q = matcher_of(call), f.q or ""
    vector = await matcher.encode_query(q)
    filters = {
        "status": f.status,
        "category": f.category,
        "skill": f.skill,
        "budget_min_minor": cents(f.budget_min) if f.budget_min else None,
        "budget_max_minor": cents(f.budget_max) if f.budget_max else None,
        "client_id": f.client_id,
    }
    return await matched_page(
        call,
        ("projects_relevance", f),
        lambda conn: search_projects(conn, matcher.cache, q, vector, filters, limit=f.limit, cursor=f.cursor),
    )


async def get_one(call: Call) -> Response:
    project_id = call.path["project_id"]
    return await cached_view(call, ("project", project_id), lambda conn: get_project_json(conn, project_id))


async def create(call: Call) -> Response:
    body: ProjectBody = call.body
    project_id = new_id()
    command = PostProject(
        project_id=project_id,
        client_id=call.user.sub,
        title=body.title,
        description=body.description,
        category=body.category,
        budget_type=body.budget_type,
        budget_min_minor=cents(body.budget_min),
        budget_max_minor=cents(body.budget_max),
        experience_level=body.experience_level,
        estimated_duration=body.estimated_duration,
        skills=list(body.skills),
    )
    (project, version), position = await execute(call, command, lambda conn: get_project(conn, project_id))
    return written(project, position, 201, etag=version)


async def update(call: Call) -> Response:
    body: ProjectPatch = call.body
    project_id = call.path["project_id"]
    command = ReviseProject(
        project_id=project_id,
        actor_id=call.user.sub,
        changes=patch_changes(body),
        status=body.status,
        expected_versions=if_match(call),
    )
    (project, version), position = await execute(call, command, lambda conn: get_project(conn, project_id))
    return written(project, position, etag=version)


async def delete(call: Call) -> Response:
    command = DeleteProject(
        project_id=call.path["project_id"], actor_id=call.user.sub, expected_versions=if_match(call)
    )
    _, position = await execute(call, command)
    return Response(status_code=204, headers={"X-Consistency-Token": str(position)})


OPERATIONS = [
    Operation(
        "GET",
        "/api/projects",
        list_all,
        "Browse and search projects (q: full text; sort=relevance: hybrid ranking, 404 feature_disabled when off)",
        "projects",
        query=ProjectFilters,
        response=ProjectList,
        errors=(401, 404, 422, 503),
    ),
    Operation(
        "GET",
        "/api/projects/{project_id}",
        get_one,
        "One project",
        "projects",
        response=ProjectOut,
        etag=True,
        errors=(401, 404),
    ),
    Operation(
        "POST",
        "/api/projects",
        create,
        "Post a project (clients)",
        "projects",
        body=ProjectBody,
        response=ProjectOut,
        status=201,
        roles=CLIENT,
        etag=True,
        errors=(400, 401, 403, 415, 422),
    ),
    Operation(
        "PUT",
        "/api/projects/{project_id}",
        update,
        "Edit an open project or move its status (owner); closing or cancelling it rejects its submitted proposals",
        "projects",
        body=ProjectPatch,
        response=ProjectOut,
        if_match=True,
        etag=True,
        errors=(400, 401, 403, 404, 409, 415, 422),
    ),
    Operation(
        "DELETE",
        "/api/projects/{project_id}",
        delete,
        "Delete an open project (owner); its submitted proposals are rejected",
        "projects",
        status=204,
        if_match=True,
        errors=(401, 403, 404, 409),
    ),
]
