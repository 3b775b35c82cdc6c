"""Route lookup shortcuts: the group key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.routing import group_key

SEGMENT = st.text(alphabet=st.sampled_from("ab/-_{}.%"), max_size=12)


@given(st.builds(lambda rest: "/" + rest, SEGMENT))
def test_group_key_is_the_first_two_segments(path: str) -> None:
    assert group_key(path) == "/".join(path.split("/", 3)[:3])


def test_group_key_examples() -> None:
    assert group_key("/api/projects/1/accept") == "/api/projects"
    assert group_key("/api/projects") == "/api/projects"
    assert group_key("/api") == "/api"
    assert group_key("/") == "/"
