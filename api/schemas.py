"""Shapes shared by several routes (request validation and OpenAPI), all strict about unknown fields."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.config import JsonDict

from api.text import email_text, single_line, visible_length
from core.money import BadAmount, format_amount, parse_amount, to_minor

UPLOAD_ID = re.compile(r"[0-9a-f]{32}")  # an upload's id (see /api/uploads), matched whole
EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


T = TypeVar("T")


def _not_null(value: T) -> T:
    if value is None:
        raise ValueError("cannot be null (send a value or leave the field out)")
    return value


def _email(value: str) -> str:
    value = email_text(value)
    if len(value) > 254 or not EMAIL.match(value):
        raise ValueError("not a valid e-mail address")
    return value


def _name(value: str) -> str:
    value = single_line(value)
    if not visible_length(value):
        raise ValueError("must not be blank")
    return value


def _https_url(value: str) -> str:
    # Characters RFC 3986 never allows unescaped in a URL: markup and quotes must come percent-encoded.
    if any(c.isspace() or ord(c) < 32 or c in URL_FORBIDDEN for c in value):
        raise ValueError("must be an https URL without spaces, quotes or angle brackets (percent-encode them)")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https URL")
    return value


URL_FORBIDDEN = frozenset("<>\"'`\\{}|^")


def _image(value: str) -> str:
    return value if UPLOAD_ID.fullmatch(value) else _https_url(value)


def _money(value: Any) -> str:
    try:
        return format_amount(parse_amount(value, "USD"))
    except BadAmount as exc:
        raise ValueError(str(exc)) from exc


def json_integer(value: Any) -> Any:
    # Lax int would take JSON true as 1 and "20" as 20; an integral number (20.0) is an integer, as in JSON Schema.
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON integer")
    return value


def _no_null_in_schema(schema: JsonDict) -> None:
    """An `Omittable` field is documented as its value type alone: null is refused, so neither branch nor default."""
    schema.pop("default", None)
    branches = schema.get("anyOf")
    if isinstance(branches, list) and {"type": "null"} in branches:
        del schema["anyOf"]
        rest = [branch for branch in branches if branch != {"type": "null"}]
        only = rest[0] if len(rest) == 1 and isinstance(rest[0], dict) else {"anyOf": rest}
        for key, value in only.items():
            schema.setdefault(key, value)


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
# Proposal attachments: the same rule; an upload id must be a stored upload of the sender's (checked by the route).
Attachment = Annotated[
    str,
    Field(min_length=1, max_length=2048, description="an https URL or the id of one of your uploads"),
    AfterValidator(_image),
]
# For JSON bodies only: query values are always strings, so query models keep plain `int`.
JsonInt = Annotated[int, BeforeValidator(json_integer)]
# A field of a partial update that may be left out (None: not sent) but not sent as null. Defaults are not
# validated, so only an explicit null reaches the check; fields whose null means "clear it" stay `X | None`.
Omittable = Annotated[T | None, AfterValidator(_not_null), Field(json_schema_extra=_no_null_in_schema)]


class Page(Strict):
    """A list's query: `limit`, `cursor` and the list's own filters; a blank value (`?q=`) counts as not given."""

    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=512)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        blank = {k for k, v in data.items() if k in cls.model_fields and isinstance(v, str) and not v.strip()}
        return {k: v for k, v in data.items() if k not in blank}


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


class Notifications(Strict):
    """Which e-mail notifications the user gets (all on by default)."""

    proposal_received: bool
    proposal_decided: bool
    contract_created: bool
    payment_confirmed: bool


class NotificationChanges(Strict):
    """The switches to change; those left out keep their value."""

    proposal_received: Omittable[bool] = None
    proposal_decided: Omittable[bool] = None
    contract_created: Omittable[bool] = None
    payment_confirmed: Omittable[bool] = None


class UserPrivate(UserPublic):
    email: str
    is_active: bool
    notifications: Notifications


class UserAdminView(UserPublic):
    email: str | None = None
    is_active: bool | None = None
    notifications: Notifications | None = None


class UserList(BaseModel):
    items: list[UserAdminView]
    next_cursor: str | None


class TokenPair(BaseModel):
    user: UserPrivate
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int


class Accepted(BaseModel):
    detail: str


class ErrorBody(BaseModel):
    detail: str
    error_type: str
    errors: list[dict[str, Any]] | None = None


Status = Literal["open", "in_progress", "completed", "cancelled", "closed"]
BudgetType = Literal["fixed", "hourly"]
Experience = Literal["entry", "intermediate", "expert"]


def cents(value: str) -> int:
    return to_minor(parse_amount(value, "USD"), "USD")


def _amount(value: Any) -> str:
    # The finest currency (USDC, 6 decimals) here; the body's own currency is checked once it is known.
    try:
        return format_amount(parse_amount(value, "USDC"))
    except BadAmount as exc:
        raise ValueError(str(exc)) from exc


# One validator before any type check: a bad value is one error at the field, not one per union branch.
AmountIn = Annotated[
    str,
    BeforeValidator(_amount),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}], "examples": ["1250.00"]}),
]


class Party(Strict):
    id: str
    name: str


class ProjectOut(Strict):
    id: str
    client_id: str
    client: Party
    title: str
    description: str
    category: str
    budget_type: BudgetType
    budget_min: str
    budget_max: str
    experience_level: Experience
    estimated_duration: str
    skills: list[str]
    status: Status
    proposals_count: int
    created_at: str
    updated_at: str
