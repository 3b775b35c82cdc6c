"""One visible registry: which handler carries out which command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commands import sessions, users
from core.store import UnitOfWork

Handler = Callable[[UnitOfWork, Any], Any]

COMMAND_HANDLERS: dict[type, Handler] = {
    users.RegisterUser: users.register_user,
    users.UpdateProfile: users.update_profile,
    users.ChangeAccount: users.change_account,
    users.RecordLogin: users.record_login,
    users.RecordLoginFailure: users.record_login_failure,
    sessions.RotateRefreshToken: sessions.rotate_refresh_token,
    sessions.RevokeSession: sessions.revoke_session,
}
