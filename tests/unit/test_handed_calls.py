"""Which writes a reader worker hands worker 0 as calls, and that every part of such a call can travel."""

from __future__ import annotations

import pickle
from pathlib import Path

from api.app import operations
from api.routing import WRITE_METHODS, handed_endpoints
from core.tokens import Claims
from node.runtime import Runtime
from tests.conftest import make_settings


def test_every_buffered_write_but_sign_in_and_sign_up_is_handed_as_a_call(tmp_path: Path) -> None:
    ops = operations()
    handed = handed_endpoints(ops, Runtime(make_settings(tmp_path)))
    writes = {(op.method, op.path) for op in ops if op.method in WRITE_METHODS}
    relayed = writes - set(handed)
    assert handed and relayed < writes
    for op in ops:
        if (op.method, op.path) in relayed:
            assert op.ip_limited or not op.idempotent, op.path  # limited before parsing, or a streamed body
    assert ("POST", "/api/auth/login") in relayed and ("POST", "/api/proposals") in handed


def test_the_body_and_query_models_of_handed_writes_pickle_by_reference(tmp_path: Path) -> None:
    """A model class pickles by its module and name: one defined where pickle cannot find it would fail here."""
    ops = {(op.method, op.path): op for op in operations()}
    handed = handed_endpoints(list(ops.values()), Runtime(make_settings(tmp_path)))
    models = {model for key in handed for model in (ops[key].body, ops[key].query) if model is not None}
    assert models
    for model in models:
        assert pickle.loads(pickle.dumps(model)) is model
    claims = Claims(sub="u", role="client", type="access", jti="j", iat=1, exp=2, fam="f", pos=3)
    assert pickle.loads(pickle.dumps(claims)) == claims
