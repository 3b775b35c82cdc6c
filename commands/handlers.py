"""One visible registry: which handler carries out which command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commands import (
    contracts,
    password_reset,
    payments,
    portfolio,
    projects,
    proposals,
    sessions,
    uploads,
    users,
    wallets,
)
from core.store import UnitOfWork

Handler = Callable[[UnitOfWork, Any], Any]

COMMAND_HANDLERS: dict[type, Handler] = {
    users.RegisterUser: users.register_user,
    users.UpdateProfile: users.update_profile,
    users.ChangeAccount: users.change_account,
    users.RecordLogin: users.record_login,
    users.RecordLoginFailure: users.record_login_failure,
    password_reset.RequestPasswordReset: password_reset.request_password_reset,
    password_reset.ConfirmPasswordReset: password_reset.confirm_password_reset,
    projects.PostProject: projects.post_project,
    projects.ReviseProject: proposals.revise_project,  # closing a project rejects its submitted proposals
    projects.DeleteProject: proposals.delete_project,  # and so does deleting it
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
    uploads.StoreUpload: uploads.store_upload,
    uploads.PresignUpload: uploads.presign_upload,
    uploads.CompleteUpload: uploads.complete_upload,
    uploads.DiscardUpload: uploads.discard_upload,
    payments.CreatePayment: payments.create_payment,
    payments.ConfirmPayment: payments.confirm_payment,
    payments.RefundPayment: payments.refund_payment,
    payments.CancelPayment: payments.cancel_payment,
    wallets.IssueWalletNonce: wallets.issue_wallet_nonce,
    wallets.LinkWallet: wallets.link_wallet,
    sessions.RotateRefreshToken: sessions.rotate_refresh_token,
    sessions.RevokeSession: sessions.revoke_session,
}
