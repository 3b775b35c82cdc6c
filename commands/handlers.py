"""One visible registry: which handler carries out which command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commands import contracts, portfolio, projects, proposals, sessions, users
from core.store import UnitOfWork

Handler = Callable[[UnitOfWork, Any], Any]

COMMAND_HANDLERS: dict[type, Handler] = {
    users.RegisterUser: users.register_user,
    users.UpdateProfile: users.update_profile,
    users.ChangeAccount: users.change_account,
    users.RecordLogin: users.record_login,
    users.RecordLoginFailure: users.record_login_failure,
    projects.PostProject: projects.post_project,
    projects.ReviseProject: projects.revise_project,
    projects.DeleteProject: projects.delete_project,
    proposals.SubmitProposal: proposals.submit_proposal,
    proposals.ReviseProposal: proposals.revise_proposal,
    proposals.WithdrawProposal: proposals.withdraw_proposal,
    proposals.AcceptProposal: proposals.accept_proposal,
    proposals.RejectProposal: proposals.reject_proposal,
    contracts.CreateContract: contracts.create_contract,
    contracts.ReviseContract: contracts.revise_contract,
    contracts.CancelContract: contracts.cancel_contract,
    portfolio.AddPortfolioItem: portfolio.add_portfolio_item,
    portfolio.RevisePortfolioItem: portfolio.revise_portfolio_item,
    portfolio.RemovePortfolioItem: portfolio.remove_portfolio_item,
    sessions.RotateRefreshToken: sessions.rotate_refresh_token,
    sessions.RevokeSession: sessions.revoke_session,
}
