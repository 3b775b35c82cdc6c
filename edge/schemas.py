"""Shapes shared by several routes (request validation and OpenAPI), all strict about unknown fields."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from core.money import BadAmount, format_amount, parse_amount

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")  # an upload's id (see /api/uploads)
EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _email(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not EMAIL.match(value):
        raise ValueError("not a valid e-mail address")
    return value


def _name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if any(ord(c) < 32 for c in value):
        raise ValueError("must not contain control characters")
    return value


def _https_url(value: str) -> str:
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("must be an https URL without spaces")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https URL")
    return value


def _image(value: str) -> str:
    return value if UPLOAD_ID.match(value) else _https_url(value)


def _money(value: Any) -> str:
    try:
        return format_amount(parse_amount(value, "USD"))
    except BadAmount as exc:
        raise ValueError(str(exc)) from exc


Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_name)]
Password = Annotated[str, Field(min_length=8, max_length=128)]
MoneyIn = Annotated[
    str,
    BeforeValidator(_money),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}], "examples": ["45.00"]}),
]
Skill = Annotated[str, Field(min_length=1, max_length=50), AfterValidator(_name)]
HttpsUrl = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_https_url)]
# Portfolio and profile images; an upload id's owner and kind are checked by the route (`require_own_image`).
ImageUrl = Annotated[
    str, Field(min_length=1, max_length=2048, description="an https URL or an upload id"), AfterValidator(_image)
]


class Page(Strict):
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=512)


class UserPublic(BaseModel):
    id: str
    name: str
    role: Literal["client", "freelancer", "admin"]
    bio: str | None
    skills: list[str]
    hourly_rate: str | None
    location: str | None
    profile_image_url: str | None
    wallet_address: str | None
    joined_at: str


class UserPrivate(UserPublic):
    email: str
    is_active: bool


class UserAdminView(UserPublic):
    email: str | None = None
    is_active: bool | None = None


class UserList(BaseModel):
    items: list[UserAdminView]
    next_cursor: str | None


class TokenPair(BaseModel):
    user: UserPrivate
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int


class ErrorBody(BaseModel):
    detail: str
    error_type: str
    errors: list[dict[str, Any]] | None = None
