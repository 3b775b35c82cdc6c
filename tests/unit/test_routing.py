"""Route lookup shortcuts: the group key, and that every shortcut picks the route Starlette would."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from starlette.routing import BaseRoute, Match, Route

from api.app import create_app
from api.routing import IndexedRouter, group_key
from tests.conftest import make_settings

SEGMENT = st.text(alphabet=st.sampled_from("ab/-_{}.%"), max_size=12)


@given(st.builds(lambda rest: "/" + rest, SEGMENT))
def test_group_key_is_the_first_two_segments(path: str) -> None:
    assert group_key(path) == "/".join(path.split("/", 3)[:3])


def test_group_key_examples() -> None:
    assert group_key("/api/projects/1/accept") == "/api/projects"
    assert group_key("/api/projects") == "/api/projects"
    assert group_key("/api") == "/api"
    assert group_key("/") == "/"


def starlette_choice(routes: list[BaseRoute], scope: dict[str, object]) -> BaseRoute | None:
    """What Starlette's Router picks: the first route in declaration order that fully matches."""
    for route in routes:
        if route.matches(scope)[0] is Match.FULL:
            return route
    return None


def test_the_shortcuts_pick_what_starlette_would(tmp_path: Path) -> None:
    """Exact paths, `/prefix/{id}` tails and groups resolve every operation's paths as Starlette's Router does."""
    app = create_app(make_settings(tmp_path))
    router = app.router
    assert isinstance(router, IndexedRouter)
    routes = [r for r in router.routes if isinstance(r, Route)]
    # Every literal segment of every route, as a value for each parameter: "me" against "{user_id}" and so on.
    values = {seg for r in routes for seg in r.path.split("/") if seg and "{" not in seg} | {"0190a0b0-0000-7000"}
    paths = set()
    for route in routes:
        for value in values:
            paths.add(re.sub(r"\{[^}]+\}", value, route.path))
    paths |= {"/", "/api", "/api/", "/nowhere", "/api/projects/", "/api/projects/x/y/z"}
    checked = 0
    for path in sorted(paths):
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            scope = {"type": "http", "path": path, "root_path": "", "method": method}
            found = router.resolve(scope)
            expected = starlette_choice(list(router.routes), scope)
            assert (found[0] if found else None) is (expected if found else None), (method, path)
            if found is None:  # left to Starlette: no shortcut may have skipped a full match
                assert expected is None or not isinstance(expected, Route) or expected.param_convertors
            else:
                assert found[1]["path_params"] == expected.matches(scope)[1]["path_params"], (method, path)
            checked += 1
    assert checked > 1000
    assert router.tails, "the resource reads take the tail shortcut"
