"""Imports run one way (issue 12): entry points at the top, contracts at the bottom.

Every product module is parsed with `ast` (imports inside functions and TYPE_CHECKING blocks count:
a lazy import is still an arrow) and each import is mapped to the unit it lands in. An arrow the
table below does not allow fails the test, as does an entry in KNOWN_EXCEPTIONS that is no longer
needed, so the list of exceptions only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "workflows",
    "activities",
    "starter",
    "contracts",
    "policy",
    "roles",
    "config",
    "telemetry",
    "payloads",
    "storage",
    "testkit",
)
SKIPPED = (ROOT / "starter" / "demo",)  # the demo's sample repository: data, not forgeflow code

# Entry points: processes and commands start here, and nothing may import them.
ENTRY_POINTS = frozenset({"worker", "starter.cli", "starter.__main__", "benchmarks"})
# activities/ holds three subsystems, each its own unit: none imports another (tools use the code hosts).
SUBSYSTEMS = ("activities.sandbox", "activities.codehost", "activities.model")
# storage/ is the object store every part that keeps run content uses: I/O, but below activities.
_IO = frozenset({"activities", *SUBSYSTEMS, "storage"})
_LIBRARY = frozenset({"starter", "workflows", "telemetry", "payloads", "config", "roles", "policy"}) | _IO

# Which unit may import which; read top to bottom. A unit not listed here imports nothing of ours.
ALLOWED: dict[str, frozenset[str]] = {
    # entry points: anything below them, and each other only as a command wraps a command
    "worker": _LIBRARY | {"contracts"},
    "starter.__main__": _LIBRARY | {"contracts", "starter.cli"},
    "starter.cli": _LIBRARY | {"contracts"},
    "benchmarks": _LIBRARY | {"contracts", "testkit"},
    # the wiring library: clients, workers, the embedded server, the demo (starter/ minus its commands)
    "starter": _LIBRARY - {"starter"} | {"contracts"},
    # orchestration: no I/O, so no activities, settings or telemetry exporters
    "workflows": frozenset({"roles", "policy", "contracts"}),
    # all I/O: values are injected by starter/workers.py, so no Settings and no role registry. The
    # shared part (heartbeats, the blob store, the workspace tools, research) is used by every
    # subsystem; the subsystems use only it.
    "activities": frozenset({"activities.codehost", "storage", "telemetry", "policy", "contracts"}),
    **{unit: frozenset({"activities", "storage", "telemetry", "policy", "contracts"}) for unit in SUBSYSTEMS},
    "telemetry": frozenset({"config", "policy", "contracts"}),
    "payloads": frozenset({"config", "storage", "policy", "contracts"}),
    # one object store for run content, local or S3 (FORGEFLOW_STORAGE_URL): imports nothing of ours
    "storage": frozenset(),
    "config": frozenset({"policy", "contracts"}),
    # data and pure rules
    "roles": frozenset({"policy", "contracts"}),
    # example LangGraph graphs: they reach forgeflow only through their run's config
    "graphs": frozenset(),
    "policy": frozenset({"contracts"}),
    "contracts": frozenset(),
    # what tests and benchmarks share (loopback servers, scripted conversations): development only
    "testkit": frozenset({"contracts"}),
}

# Arrows that break the table but stay, each with its reason (issue 12 removed the last one:
# benchmarks -> tests, now benchmarks -> testkit).
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def unit_of(module: str) -> str:
    """The unit a dotted module name belongs to: an entry point, an activities subsystem, `starter`
    (its library) or a package."""
    if module == "worker":
        return "worker"
    for entry in ("starter.cli", "starter.__main__", *SUBSYSTEMS):
        if module == entry or module.startswith(entry + "."):
            return entry
    return module.split(".")[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every module name `tree` imports, relative imports resolved; `from x import y` counts as `x.y`
    (it may be a submodule, such as `from starter import cli`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*package, *([base] if base else [])])
            yield from (f"{base}.{alias.name}" for alias in node.names)


def product_files() -> list[Path]:
    files = [ROOT / "worker.py", *sorted((ROOT / "benchmarks").rglob("*.py"))]
    for package in PACKAGES:
        files += sorted(p for p in (ROOT / package).rglob("*.py") if not any(p.is_relative_to(s) for s in SKIPPED))
    return files


def edges() -> dict[tuple[str, str], list[str]]:
    """(importer unit, imported unit) → the files with that arrow; only arrows between our units."""
    ours = {*PACKAGES, "worker", "benchmarks", "tests"}
    found: dict[tuple[str, str], list[str]] = {}
    for path in product_files():
        module = module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for target in imported(tree, module, path.name == "__init__.py"):
            source, dest = unit_of(module), unit_of(target)
            if dest.split(".")[0] in ours and dest != source:
                found.setdefault((source, dest), []).append(str(path.relative_to(ROOT)))
    return found


def backward(found: dict[tuple[str, str], list[str]]) -> dict[tuple[str, str], list[str]]:
    return {edge: files for edge, files in found.items() if edge[1] not in ALLOWED.get(edge[0], frozenset())}


def test_every_unit_has_a_row_in_the_table() -> None:
    units = {unit_of(module_name(path)) for path in product_files()}
    assert units <= set(ALLOWED), f"add {sorted(units - set(ALLOWED))} to ALLOWED"


def test_nothing_imports_an_entry_point() -> None:
    for source, allowed in ALLOWED.items():
        assert not allowed & ENTRY_POINTS - {"starter.cli"}, source
    assert {s for s, allowed in ALLOWED.items() if "starter.cli" in allowed} == {"starter.__main__"}


def test_imports_only_run_down_the_layers() -> None:
    found = backward(edges())
    unexpected = {edge: sorted(set(files)) for edge, files in found.items() if edge not in KNOWN_EXCEPTIONS}
    assert not unexpected, f"imports against the layering (see ALLOWED): {unexpected}"


def test_every_known_exception_is_still_needed() -> None:
    found = backward(edges())
    stale = KNOWN_EXCEPTIONS - set(found)
    assert not stale, f"{sorted(stale)} no longer happen: remove them from KNOWN_EXCEPTIONS"


def test_a_backward_import_is_caught() -> None:
    """The check itself: the arrows issue 12 removed would each fail it."""
    for module, source in [
        ("telemetry.instrument", "from activities.model.providers import ModelResponse"),
        ("activities.model.turns", "from roles import ROLES"),
        ("activities.sandbox.run_tests", "from activities.codehost._commit_cache import mapping_ref"),
        ("activities.codehost.github", "from activities.sandbox import _safefs"),
        ("activities.sandbox.run_tests", "from config.settings import Settings"),
        ("starter.demo", "import worker"),
        ("starter.workers", "from starter import cli"),
        ("policy.routing", "def lazy() -> None:\n    from workflows.issue import IssueWorkflow"),
    ]:
        targets = imported(ast.parse(source), module, is_package=False)
        arrows = {(unit_of(module), unit_of(t)): [module] for t in targets}
        assert backward(arrows), source
