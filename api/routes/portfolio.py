"""`/api/portfolio`: freelancers show past work; anyone signed in may browse any freelancer's portfolio."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field
from starlette.responses import Response

from api.cache import cached_page, cached_view
from api.commanding import execute, if_match, written
from api.routing import Call, Operation
from api.schemas import HttpsUrl, ImageUrl, Omittable, Page, Strict
from api.text import free_text, single_line, visible_length
from api.uploads.ownership import require_own_image
from commands.portfolio import AddPortfolioItem, RemovePortfolioItem, RevisePortfolioItem
from core.ids import new_id
from queries.portfolio import get_portfolio_item, list_portfolio_items

FREELANCER = frozenset({"freelancer"})


def _text(value: str) -> str:
    value = single_line(value)
    if not visible_length(value):
        raise ValueError("must not be blank")
    return value


Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_text)]
Description = Annotated[str, Field(max_length=5000), AfterValidator(free_text)]
Tag = Annotated[str, Field(min_length=1, max_length=50), AfterValidator(_text)]
Tags = Annotated[list[Tag], Field(max_length=20)]


class PortfolioItemBody(Strict):
    title: Title
    description: Description = ""
    image_url: ImageUrl
    project_url: HttpsUrl | None = None
    tags: Tags = Field(default_factory=list)


class PortfolioItemPatch(Strict):
    """Only the fields sent change; `project_url: null` removes the link."""

    title: Omittable[Title] = None
    description: Omittable[Description] = None
    image_url: Omittable[ImageUrl] = None
    project_url: HttpsUrl | None = None
    tags: Omittable[Tags] = None


class PortfolioFilters(Page):
    freelancer_id: str | None = Field(None, max_length=64, description="whose portfolio (default: your own)")


class PortfolioItemOut(Strict):
    id: str
    freelancer_id: str
    title: str
    description: str
    image_url: str
    project_url: str | None
    tags: list[str]
    created_at: str
    updated_at: str


class PortfolioList(Strict):
    items: list[PortfolioItemOut]
    next_cursor: str | None


async def list_all(call: Call) -> Response:
    f: PortfolioFilters = call.query
    owner = f.freelancer_id or call.user.sub
    return await cached_page(
        call,
        ("portfolio", owner, f.limit, f.cursor),
        lambda conn: list_portfolio_items(conn, freelancer_id=owner, limit=f.limit, cursor=f.cursor),
    )


async def get_one(call: Call) -> Response:
    item_id = call.path["item_id"]
    return await cached_view(call, ("portfolio_item", item_id), lambda conn: get_portfolio_item(conn, item_id))


async def create(call: Call) -> Response:
    body: PortfolioItemBody = call.body
    await require_own_image(call, body.image_url, "image_url")
    item_id = new_id()
    command = AddPortfolioItem(
        item_id=item_id,
        freelancer_id=call.user.sub,
        title=body.title,
        description=body.description,
        image_url=body.image_url,
        project_url=body.project_url,
        tags=list(body.tags),
    )
    (item, version), position = await execute(call, command, lambda conn: get_portfolio_item(conn, item_id))
    return written(item, position, 201, etag=version)


async def update(call: Call) -> Response:
    body: PortfolioItemPatch = call.body
    await require_own_image(call, body.image_url, "image_url")
    item_id = call.path["item_id"]
    command = RevisePortfolioItem(
        item_id=item_id,
        actor_id=call.user.sub,
        changes=body.model_dump(exclude_unset=True),
        expected_versions=if_match(call),
    )
    (item, version), position = await execute(call, command, lambda conn: get_portfolio_item(conn, item_id))
    return written(item, position, etag=version)


async def delete(call: Call) -> Response:
    command = RemovePortfolioItem(
        item_id=call.path["item_id"], actor_id=call.user.sub, expected_versions=if_match(call)
    )
    _, position = await execute(call, command)
    return Response(status_code=204, headers={"X-Consistency-Token": str(position)})


OPERATIONS = [
    Operation(
        "GET",
        "/api/portfolio",
        list_all,
        "A freelancer's portfolio (default: your own)",
        "portfolio",
        query=PortfolioFilters,
        response=PortfolioList,
        errors=(401, 422),
    ),
    Operation(
        "GET",
        "/api/portfolio/{item_id}",
        get_one,
        "One portfolio item",
        "portfolio",
        response=PortfolioItemOut,
        etag=True,
        errors=(401, 404),
    ),
    Operation(
        "POST",
        "/api/portfolio",
        create,
        "Add a portfolio item (freelancers)",
        "portfolio",
        body=PortfolioItemBody,
        response=PortfolioItemOut,
        status=201,
        roles=FREELANCER,
        etag=True,
        errors=(400, 401, 403, 415, 422),
    ),
    Operation(
        "PUT",
        "/api/portfolio/{item_id}",
        update,
        "Edit your portfolio item (owner)",
        "portfolio",
        body=PortfolioItemPatch,
        response=PortfolioItemOut,
        if_match=True,
        etag=True,
        errors=(400, 401, 403, 404, 415, 422),
    ),
    Operation(
        "DELETE",
        "/api/portfolio/{item_id}",
        delete,
        "Remove your portfolio item (owner)",
        "portfolio",
        status=204,
        if_match=True,
        errors=(401, 403, 404),
    ),
]
