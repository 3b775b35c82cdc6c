"""Contracts, write side: create (one live contract per project), revise, move status, and fold payments."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from commands import projects, users
from commands.common import Command, check_version, fold
from core.errors import Forbidden, InvalidState, NotFound, ValidationFailed
from core.events.base import StoredEvent
from core.events.contracts import ContractCreated, ContractRevised, ContractStatusChanged
from core.money import BadAmount, parse_amount, to_minor
from core.store import UnitOfWork

STREAM = "contract"
CLAIM = "contract"  # key project_id → the id of its one contract that is not cancelled
# Where an active contract may go, and which side may send it there.
MOVES = {
    "completed": frozenset({"client"}),
    "cancelled": frozenset({"client", "freelancer"}),
    "disputed": frozenset({"client", "freelancer"}),
}
CLIENT_FIELDS = frozenset({"description", "terms", "end_date", "milestones"})


class Milestone(BaseModel):
    """One planned payment step: a title, an amount in minor units, an optional ISO due date."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    amount_minor: int
    due_date: str | None = None


class CreateContract(Command):
    """Sign a contract with the freelancer whose proposal was accepted on the project (its owner only)."""

    contract_id: str
    project_id: str
    client_id: str
    freelancer_id: str
    amount_minor: int
    currency: str
    fee_bps: int = Field(ge=0, le=10_000)  # the server's PLATFORM_FEE_BPS, never the client's
    description: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    milestones: list[Milestone] = Field(default_factory=list)
    terms: str | None = None


class ReviseContract(Command):
    """Edit an active contract (client: description, terms, end_date, milestones) and/or move its status.

    Milestone amounts in `changes` are decimal strings: only the contract knows its currency's decimals.
    """

    contract_id: str
    actor_id: str
    changes: dict[str, Any]
    status: str | None = None
    expected_versions: frozenset[int] | None = None
    actor_is_admin: bool = False  # admins see every contract, so they are refused (403), not told it is missing


class CancelContract(Command):
    """Call off an active contract nothing has been paid on (client only)."""

    contract_id: str
    actor_id: str
    expected_versions: frozenset[int] | None = None
    actor_is_admin: bool = False


@dataclass(frozen=True, slots=True)
class Contract:
    """What the write side needs to know about a contract."""

    id: str
    project_id: str
    client_id: str
    freelancer_id: str
    amount_minor: int
    currency: str
    start_date: str | None
    end_date: str | None
    status: str
    paid_minor: int
    version: int
    due_dates: tuple[str, ...] = ()  # the milestones' due dates (those that have one)
    pending_minor: int = 0  # held back by pending payments (ContractPaymentReserved, not yet completed/released)
    reserved: frozenset[str] = frozenset()  # ids of the payments holding those reservations


def evolve(state: Contract | None, event: StoredEvent) -> Contract | None:
    d = event.data
    if event.type == "ContractCreated":
        return Contract(
            d["contract_id"],
            d["project_id"],
            d["client_id"],
            d["freelancer_id"],
            d["amount_minor"],
            d["currency"],
            d["start_date"],
            d["end_date"],
            "active",
            0,
            event.version,
            _due_dates(d["milestones"]),
        )
    if state is None:
        return None
    state = replace(state, version=event.version)
    if event.type == "ContractRevised":
        changes = d["changes"]
        due_dates = _due_dates(changes["milestones"]) if "milestones" in changes else state.due_dates
        return replace(state, end_date=changes.get("end_date", state.end_date), due_dates=due_dates)
    if event.type == "ContractStatusChanged":
        return replace(state, status=d["status"])
    if event.type == "ContractPaymentReserved":
        return replace(
            state,
            pending_minor=state.pending_minor + d["amount_minor"],
            reserved=state.reserved | {d["payment_id"]},
        )
    if event.type == "ContractPaymentReleased":
        return _unreserve(state, d["payment_id"], d["amount_minor"])
    if event.type == "ContractPaymentCompleted":
        state = _unreserve(state, d["payment_id"], d["amount_minor"])
        return replace(state, paid_minor=state.paid_minor + d["amount_minor"])
    if event.type == "ContractPaymentRefunded":
        return replace(state, paid_minor=state.paid_minor - d["amount_minor"])
    return state


def _due_dates(milestones: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(m["due_date"] for m in milestones if m.get("due_date") is not None)


def _unreserve(state: Contract, payment_id: str, amount_minor: int) -> Contract:
    """A reserved payment settled or failed: its amount is no longer pending (unreserved payments change nothing)."""
    if payment_id not in state.reserved:
        return state
    return replace(state, pending_minor=state.pending_minor - amount_minor, reserved=state.reserved - {payment_id})


def load_contract(uow: UnitOfWork, contract_id: str) -> Contract:
    return fold(uow, contract_id, evolve, "contract")


def party_contract(uow: UnitOfWork, contract_id: str, actor_id: str, *, admin: bool = False) -> Contract:
    """The contract, if the actor is its client or freelancer. An admin (who may read it) is refused; anyone
    else is told it does not exist."""
    contract = load_contract(uow, contract_id)
    if actor_id not in (contract.client_id, contract.freelancer_id):
        if admin:
            raise Forbidden("Only the contract's parties can change it")
        raise NotFound("No contract with that id")
    return contract


def platform_fee_minor(amount_minor: int, fee_bps: int) -> int:
    """amount * fee_bps / 10000 in minor units, exact integer arithmetic, rounded half to even."""
    quotient, remainder = divmod(amount_minor * fee_bps, 10000)
    if remainder * 2 > 10000 or (remainder * 2 == 10000 and quotient % 2 == 1):
        quotient += 1
    return quotient


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", errors=[{"loc": ["body", field], "msg": message}])


def check_dates(start_date: str | None, end_date: str | None) -> None:
    # ISO `YYYY-MM-DD` strings order like the dates they name.
    if start_date is not None and end_date is not None and end_date <= start_date:
        raise _invalid("end_date", "must be after start_date")


def check_milestones(
    milestones: list[dict[str, Any]], amount_minor: int, start_date: str | None, end_date: str | None
) -> None:
    """Within the amount, each due between start_date and end_date (inclusive), no two titles alike."""
    if sum(m["amount_minor"] for m in milestones) > amount_minor:
        raise _invalid("milestones", "the milestone amounts add up to more than the contract amount")
    titles: set[str] = set()
    for index, milestone in enumerate(milestones):
        title, due = milestone["title"].strip().casefold(), milestone["due_date"]
        if title in titles:
            raise _milestone_invalid(index, "title", "another milestone has this title")
        titles.add(title)
        if due is not None and start_date is not None and due < start_date:
            raise _milestone_invalid(index, "due_date", "must not be before the contract's start_date")
        if due is not None and end_date is not None and due > end_date:
            raise _milestone_invalid(index, "due_date", "must not be after the contract's end_date")


def _milestone_invalid(index: int, field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"milestones[{index}].{field}: {message}",
        errors=[{"loc": ["body", "milestones", index, field], "msg": message}],
    )


def create_contract(uow: UnitOfWork, cmd: CreateContract) -> str:
    project = projects.load_project(uow, cmd.project_id)
    if project.client_id != cmd.client_id:
        raise Forbidden("Only the project's owner can make a contract for it")
    if project.accepted_freelancer_id is None:
        raise InvalidState("The project has no accepted proposal yet")
    if project.status != "in_progress":
        raise InvalidState(f"Only a project in progress gets a contract (it is {project.status})")
    if project.accepted_freelancer_id != cmd.freelancer_id:
        raise _invalid("freelancer_id", "must be the freelancer whose proposal was accepted on this project")
    if not users.load_user(uow, cmd.freelancer_id).is_active:
        raise _invalid("freelancer_id", "that account is deactivated")
    fee_minor = platform_fee_minor(cmd.amount_minor, cmd.fee_bps)
    event = ContractCreated(**cmd.model_dump(exclude={"fee_bps"}), platform_fee_minor=fee_minor)
    check_dates(event.start_date, event.end_date)
    check_milestones(event.milestones, event.amount_minor, event.start_date, event.end_date)
    uow.claim(
        CLAIM, cmd.project_id, cmd.contract_id, detail="This project already has a contract that is not cancelled"
    )
    uow.append(cmd.contract_id, STREAM, 0, [event])
    return cmd.contract_id


def revise_contract(uow: UnitOfWork, cmd: ReviseContract) -> None:
    contract = party_contract(uow, cmd.contract_id, cmd.actor_id, admin=cmd.actor_is_admin)
    if cmd.changes and cmd.actor_id != contract.client_id:
        raise Forbidden("Only the client can edit a contract's description, terms, end_date or milestones")
    check_version(contract.version, cmd.expected_versions, "contract")
    events: list[Any] = []
    if cmd.changes:
        if contract.status != "active":
            raise InvalidState(f"A contract can only be edited while active (it is {contract.status})")
        events.append(ContractRevised(contract_id=contract.id, changes=_revision(contract, cmd.changes)))
    if cmd.status is not None and cmd.status != contract.status:
        events.append(_move(contract, cmd.status, cmd.actor_id))
    _append(uow, contract, events)


def cancel_contract(uow: UnitOfWork, cmd: CancelContract) -> None:
    contract = party_contract(uow, cmd.contract_id, cmd.actor_id, admin=cmd.actor_is_admin)
    if cmd.actor_id != contract.client_id:
        raise Forbidden("Only the client can delete a contract; the freelancer may set its status to cancelled")
    check_version(contract.version, cmd.expected_versions, "contract")
    _append(uow, contract, [_move(contract, "cancelled", cmd.actor_id)])


def _revision(contract: Contract, changes: dict[str, Any]) -> dict[str, Any]:
    """The changes as the event stores them: milestone amounts in minor units, every rule checked."""
    unknown = changes.keys() - CLIENT_FIELDS
    if unknown:
        raise _invalid(sorted(unknown)[0], "cannot be changed")
    revision = dict(changes)
    end_date = revision.get("end_date", contract.end_date)
    if "end_date" in revision:
        check_dates(contract.start_date, end_date)
    if "milestones" in revision:
        revision["milestones"] = [_milestone(contract.currency, i, m) for i, m in enumerate(revision["milestones"])]
        check_milestones(revision["milestones"], contract.amount_minor, contract.start_date, end_date)
    elif end_date is not None and any(due > end_date for due in contract.due_dates):
        raise _invalid("end_date", "must not be before a milestone's due_date")
    return revision


def _milestone(currency: str, index: int, milestone: dict[str, Any]) -> dict[str, Any]:
    try:
        amount_minor = to_minor(parse_amount(milestone["amount"], currency), currency)
    except BadAmount as exc:
        raise _milestone_invalid(index, "amount", str(exc)) from exc
    return {"title": milestone["title"], "amount_minor": amount_minor, "due_date": milestone.get("due_date")}


def _move(contract: Contract, status: str, actor_id: str) -> ContractStatusChanged:
    if contract.status != "active" or status not in MOVES:
        raise InvalidState(f"A contract cannot move from {contract.status} to {status}")
    side = "client" if actor_id == contract.client_id else "freelancer"
    if side not in MOVES[status]:
        raise Forbidden(f"Only the client can mark a contract {status}")
    if status == "cancelled" and contract.paid_minor > 0:
        raise InvalidState("A contract cannot be cancelled once money has been paid on it")
    if status == "cancelled" and contract.pending_minor > 0:
        raise InvalidState("A contract cannot be cancelled while payments on it are pending; cancel them first")
    return ContractStatusChanged(
        contract_id=contract.id,
        project_id=contract.project_id,
        status=status,
        previous_status=contract.status,
        actor_id=actor_id,
    )


def _append(uow: UnitOfWork, contract: Contract, events: list[Any]) -> None:
    if not events:
        return
    uow.append(contract.id, STREAM, contract.version, events)
    if any(isinstance(e, ContractStatusChanged) and e.status == "cancelled" for e in events):
        # The project may get a new contract once this one is called off.
        uow.release_claim(CLAIM, contract.project_id, contract.id)
