"""Matching (FEATURE_FLAG_AI_MATCHING): freelancers ranked for a project, open projects for a freelancer."""

from __future__ import annotations

from starlette.responses import Response

from api.matcher import matched_page, matcher_of
from api.routing import Call, Operation
from api.schemas import Page, ProjectOut, Strict, UserPublic
from core.errors import Forbidden
from queries.matches import list_project_matches, list_project_recommendations, require_project

FREELANCER = frozenset({"freelancer"})


class FreelancerMatch(Strict):
    freelancer: UserPublic
    score: float
    matched_skills: list[str]
    reasons: list[str]


class FreelancerMatches(Strict):
    items: list[FreelancerMatch]
    next_cursor: str | None


class ProjectMatch(Strict):
    project: ProjectOut
    score: float
    matched_skills: list[str]
    reasons: list[str]


class ProjectMatches(Strict):
    items: list[ProjectMatch]
    next_cursor: str | None


async def project_matches(call: Call) -> Response:
    matcher = matcher_of(call)
    project_id, q = call.path["project_id"], call.query
    project = await call.runtime.read(lambda conn: require_project(conn, project_id))
    if call.user.role != "admin" and project["client_id"] != call.user.sub:
        raise Forbidden("Only the project's owner sees its matches")
    return await matched_page(
        call,
        ("project_matches", project_id, q.limit, q.cursor),
        lambda conn: list_project_matches(conn, matcher.cache, project_id, limit=q.limit, cursor=q.cursor),
    )


async def project_recommendations(call: Call) -> Response:
    matcher, q, me = matcher_of(call), call.query, call.user.sub
    if call.user.role not in FREELANCER:  # checked here, after the flag: off answers 404 to everyone
        raise Forbidden("Only freelancers get project recommendations")
    return await matched_page(
        call,
        ("recommendations", me, q.limit, q.cursor),
        lambda conn: list_project_recommendations(conn, matcher.cache, me, limit=q.limit, cursor=q.cursor),
    )


OPERATIONS = [
    Operation(
        "GET",
        "/api/projects/{project_id}/matches",
        project_matches,
        "Active freelancers ranked for a project (owner, admin); 404 feature_disabled when AI matching is off",
        "matching",
        query=Page,
        response=FreelancerMatches,
        errors=(401, 403, 404, 422, 503),
    ),
    Operation(
        "GET",
        "/api/matches/projects",
        project_recommendations,
        "Open projects ranked for the caller's profile (freelancers); 404 feature_disabled when AI matching is off",
        "matching",
        query=Page,
        response=ProjectMatches,
        errors=(401, 403, 404, 422, 503),
    ),
]
