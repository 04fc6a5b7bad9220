"""The package's layout holds: packages import only the floors below them, the rule families
import only the base and the common floor, no module imports itself back through a cycle, and
no function is longer than 60 lines.

Imports are read from the source (also those inside functions; not those under
``if TYPE_CHECKING:``), so a lazy import cannot hide an upward one.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "bpfree"

# Each top-level part of bpfree and its floor: a part imports only parts on lower floors.
FLOORS = {
    "core": 0,
    "data": 1,
    "models": 1,
    "theory": 1,
    "cluster": 1,
    "rules": 2,
    "diagnostics": 3,
    "parallel": 3,
    "training": 4,
    "bench": 5,
    "reproduce": 5,
    "sweep": 5,
    "testing": 6,
    "cli": 7,
    "__main__": 8,
}
FAMILIES = ("feedback", "projection", "forward_only", "forward_forward", "forward_gradient", "bp")
LONGEST_FUNCTION = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The bpfree modules a file imports (``from a import b`` counts a.b when b is a module)."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == "bpfree" and name in MODULES}


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
IMPORTS = {name: imported_modules(path) for name, path in MODULES.items()}


def part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


@pytest.mark.parametrize("module", sorted(m for m in MODULES if part(m)))
def test_a_module_imports_no_higher_floor(module):
    floor = FLOORS[part(module)]
    upward = [
        target
        for target in IMPORTS[module]
        if target == "bpfree" or (part(target) != part(module) and FLOORS[part(target)] >= floor)
    ]
    assert upward == [], f"{module} imports the same or a higher floor"


def allowed_in_rules(module: str, target: str) -> bool:
    """Inside ``bpfree.rules``: the common floor stands alone, the base on it, the families on
    both (and the registry), each family apart from the others."""
    inner = target.split(".")[2:] if target.startswith("bpfree.rules.") else None
    if inner is None:
        return True
    where = module.split(".")[2:]
    if not where:  # bpfree.rules itself, the package's face
        return True
    if where[0] == "common":
        return inner[0] == "common"
    if where[0] == "base":
        return inner[0] == "common"
    if where[0] == "registry":
        return inner[0] in ("base", "common")
    return inner[0] in ("base", "registry", "common", where[0])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("bpfree.rules.")))
def test_rule_families_import_only_the_base_and_the_common_floor(module):
    # compiled: the step through torch.compile, on the base alone like a family
    assert module.split(".")[2] in (*FAMILIES, "common", "base", "registry", "compiled")
    bad = [target for target in IMPORTS[module] if not allowed_in_rules(module, target)]
    assert bad == [], f"{module} imports {bad}"


def test_no_module_imports_itself_back_through_a_cycle():
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(IMPORTS[module]):
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    # A package's __init__ importing its own modules is not a cycle of the code.
    cycles = [c for c in cycles if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert cycles == []


def test_no_function_is_longer_than_60_lines():
    long = [
        f"{module}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for module, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION
    ]
    assert long == []
