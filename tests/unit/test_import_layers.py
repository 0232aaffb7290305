"""The packages of ``src/`` stand on floors, and every import points down or stays in its room.

Floors, bottom up (a package imports only from its own floor or below; two packages on one floor not at all):
leaf helpers (``utils``, ``toyworld``); pure maths and leaf infrastructure (``losses``, ``interleave``'s schedules,
``loggers``); data; the objectives (``modules``); evaluation; callbacks and SDFT; the generated config nodes; and on
top the run's plumbing (``run``) and the Python API. Lazy imports inside functions count too, and no module-level
import cycle exists between files.

Inside a room its sub-packages stand on floors by the same rule (``ROOM_FLOORS``; ``""`` is the room's own files).
``eval``: scoring (``metrics``), then generation (``engine``) and the writers of tables and figures (``reports``),
then the tasks, and on top the files that run them (``run.py``, the command lines). ``datamodules``: the generic
DataModules below the toy world's (``toy``), which nothing generic imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

FLOORS = [
    {"utils", "toyworld"},
    {"losses", "interleave", "loggers"},
    {"datamodules"},
    {"modules"},
    {"eval"},
    {"callbacks", "sdft"},
    {"configs"},
    {"run", "api"},
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}
ROOM_FLOORS = {
    "eval": [{"metrics"}, {"engine", "reports"}, {"tasks"}, {""}],
    "datamodules": [{""}, {"toy"}],
}
SUBFLOOR = {top: {sub: level for level, subs in enumerate(floors) for sub in subs}
            for top, floors in ROOM_FLOORS.items()}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The ``src.*`` modules ``path`` imports (``from src.x import y`` counts ``src.x``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("src"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("src")}
    return found


def room(module: str) -> str:
    return module.split(".")[1]


def subroom(module: str) -> str:
    """``src.eval.metrics.answers`` -> ``metrics``; a file directly in the room (``src.eval.run``) -> ``""``."""
    parts = module.split(".")
    if len(parts) > 3 or (len(parts) == 3 and parts[2] in SUBFLOOR.get(parts[1], {})):
        return parts[2]
    return ""


SOURCES = sorted((ROOT / "src").rglob("*.py"))


def test_every_room_has_a_floor():
    assert {room(module_name(p)) for p in SOURCES if module_name(p) != "src"} <= set(FLOOR)


def test_no_import_points_up_or_sideways():
    wrong = [f"{module_name(p)} -> {target}" for p in SOURCES if module_name(p) != "src"
             for target in imports(p) if target != "src" and room(target) != room(module_name(p))
             and FLOOR[room(target)] >= FLOOR[room(module_name(p))]]
    assert wrong == []


def test_every_subroom_has_a_floor():
    found = {(room(m), subroom(m)) for m in map(module_name, SOURCES) if m != "src" and room(m) in SUBFLOOR}
    assert {(top, sub) for top, sub in found if sub not in SUBFLOOR[top]} == set()


def test_no_import_points_up_or_sideways_inside_a_room():
    wrong = [f"{module_name(p)} -> {target}" for p in SOURCES if module_name(p) != "src"
             and room(module_name(p)) in SUBFLOOR
             for target in imports(p) if target != "src" and room(target) == room(module_name(p))
             and subroom(target) != subroom(module_name(p))
             and SUBFLOOR[room(target)][subroom(target)] >= SUBFLOOR[room(target)][subroom(module_name(p))]]
    assert wrong == []


def test_no_import_cycle_between_files():
    graph = {module_name(p): {t for t in imports(p, top_level_only=True)} for p in SOURCES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt in graph and state.get(nxt) is None and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = 2
        return None

    cycles = [c for n in sorted(graph) if state.get(n) is None and (c := visit(n, []))]
    assert cycles == []
