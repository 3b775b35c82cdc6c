"""The README's curl walkthrough, replayed request by request against the app, so the front door cannot drift.

The walkthrough is the README's one ```sh block. It is read as the shell would read it (shlex), with the small
vocabulary it uses: `NAME=value`, `NAME=$(curl … | jq -r FILTER)`, `curl … | jq [-r|-c] FILTER`, and `# → output`
lines giving what the command before them prints. Anything else fails the test, so the README cannot use a
construct this replay would silently skip.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.testclient import TestClient

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
ASSIGN = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.*)$", re.DOTALL)
CAPTURE = re.compile(r"^\$\((.*)\)$", re.DOTALL)
VARIABLE = re.compile(r"\$(?:\{([A-Z_][A-Z0-9_]*)\}|([A-Z_][A-Z0-9_]*))")
EXPECTED = "# → "
REQUESTS_IN_WALKTHROUGH = 7


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None


def walkthrough() -> str:
    blocks = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) == 1, "the README should have exactly one ```sh block: the walkthrough"
    return str(blocks[0])


def commands(block: str) -> list[tuple[str, str | None]]:
    """Whole commands (continuations joined, quotes spanning lines kept), each with the output shown after it."""
    found: list[tuple[str, str | None]] = []
    pending = ""
    for line in block.splitlines():
        if not pending and line.startswith(EXPECTED):
            assert found, "an expected output before any command"
            found[-1] = (found[-1][0], line.removeprefix(EXPECTED))
            continue
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if pending.endswith("\\\n"):
            pending = pending[:-2] + " "
            continue
        try:
            shlex.split(pending)
        except ValueError:  # a quote still open: the command goes on
            continue
        found.append((pending.strip(), None))
        pending = ""
    assert not pending, f"unfinished command: {pending!r}"
    return found


def expand(word: str, env: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in env, f"${name} is used before it is set"
        return env[name]

    return VARIABLE.sub(value, word)


def parse_curl(words: list[str]) -> Request:
    assert words[0] == "curl", words
    method, url, headers, body = None, None, {}, None
    args = iter(words[1:])
    for arg in args:
        if arg == "-s":
            continue
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            body = next(args)
        elif not arg.startswith("-") and url is None:
            url = arg
        else:
            raise AssertionError(f"curl option the replay does not know: {arg!r}")
    assert url is not None, words
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return Request(method or ("POST" if body is not None else "GET"), path, headers, body)


def jq(document: Any, words: list[str]) -> str:
    """The few jq filters the walkthrough uses: `.a.b` (with -r) and `{a, b}` (with -c)."""
    assert words[0] == "jq" and len(words) == 3 and words[1] in ("-r", "-c"), words
    flag, expression = words[1], words[2]
    if expression.startswith("{"):
        names = [name.strip() for name in expression.strip("{}").split(",")]
        picked = {name: document[name] for name in names}
        return json.dumps(picked, separators=(",", ":"), ensure_ascii=False)
    value = document
    for key in filter(None, expression.split(".")):
        value = value[key]
    return value if flag == "-r" and isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def run(client: TestClient, pipeline: str, env: dict[str, str], sent: list[Request]) -> str:
    """One `curl … [| jq …]`; the printed output, as the shell would print it."""
    curl_part, _, jq_part = pipeline.partition("|")
    request = parse_curl([expand(word, env) for word in shlex.split(curl_part)])
    response = client.request(request.method, request.path, headers=request.headers, content=request.body)
    assert response.is_success, f"{request.method} {request.path}: {response.status_code} {response.text}"
    sent.append(request)
    if not jq_part:
        return response.text
    return jq(response.json(), shlex.split(jq_part))


def test_the_readme_walkthrough_runs_as_written(client: TestClient) -> None:
    env: dict[str, str] = {}
    sent: list[Request] = []
    for command, expected in commands(walkthrough()):
        assignment = ASSIGN.match(command)
        if assignment:
            name, value = assignment.groups()
            captured = CAPTURE.match(value)
            env[name] = run(client, captured.group(1), env, sent) if captured else shlex.split(value)[0]
            assert expected is None, f"{name}=… prints nothing"
            continue
        printed = run(client, command, env, sent)
        if expected is not None:
            assert json_or_text(printed) == json_or_text(expected), f"{command}\nprinted {printed}"
    paths = [f"{request.method} {re.sub('/[0-9a-f]{32}', '/{id}', request.path)}" for request in sent]
    assert paths == [
        "POST /api/auth/register",
        "POST /api/auth/register",
        "POST /api/auth/login",
        "POST /api/projects",
        "POST /api/proposals",
        "POST /api/proposals/{id}/accept",
        "POST /api/contracts",
    ]
    assert len(sent) == REQUESTS_IN_WALKTHROUGH


def json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def test_the_replay_reads_commands_as_the_shell_does() -> None:
    block = "A=1\n# a comment\nB=$(curl -s $X/p -d '{\"a\":\n 1}' \\\n  | jq -r .id)\n# → out\n"
    assert commands(block) == [("A=1", None), ("B=$(curl -s $X/p -d '{\"a\":\n 1}'    | jq -r .id)", "out")]
    words = [expand(word, {"X": "http://h:1"}) for word in shlex.split("curl -s $X/a?b=1 -H 'K: v' -d '{}'")]
    assert parse_curl(words) == Request("POST", "/a?b=1", {"K": "v"}, "{}")
    assert jq({"a": {"b": "c"}}, ["jq", "-r", ".a.b"]) == "c"
    assert jq({"a": 1, "b": "x", "c": 2}, ["jq", "-c", "{b, a}"]) == '{"b":"x","a":1}'
