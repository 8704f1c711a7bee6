"""Imports point one way: the deny-list of ``docs/architecture.md`` (from ``shared/design.md``).

Each rule names a set of source files and what they must never import. "At module level" rules
allow an import inside a function (an optional converter such as ``Couplings.from_bqm`` imports
its library when called); the others forbid it anywhere in the file.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORMAT = [
    "pbitsim/couplings.py",
    "pbitsim/fixedpoint.py",
    "pbitsim/fileformat.py",
    "pbitsim/rng.py",
]
CORE_PARTS = ("pbitsim.sampling", "pbitsim.sim", "pbitsim.diagnostics", "pbitsim.cli")
CORE_PARTS += ("pbitsim.sweep",)
GATEWARE_AND_BOARDS = ("pbitsim.hdl", "pbitsim.firmware", "pbitsim.host")

# (name, files (globs relative to ROOT), never anywhere, never at module level)
RULES = [
    (
        "format and board",
        FORMAT + ["pbitsim/board/*.py"],
        CORE_PARTS + GATEWARE_AND_BOARDS,
        ("numba", "amaranth", "serial"),
    ),
    ("sim", ["pbitsim/sim/*.py"], ("pbitsim.diagnostics",) + GATEWARE_AND_BOARDS, ()),
    (
        "diagnostics",
        ["pbitsim/diagnostics/*.py"],
        ("pbitsim.sim", "pbitsim.board") + GATEWARE_AND_BOARDS,
        (),
    ),
    ("sweep", ["pbitsim/sweep/**/*.py"], GATEWARE_AND_BOARDS, ()),
    ("core", ["pbitsim/**/*.py"], GATEWARE_AND_BOARDS, ()),
    ("hdl", ["hdl/**/*.py"], ("pbitsim.sim", "pbitsim.firmware", "pbitsim.host"), ()),
    ("firmware", ["firmware/**/*.py"], ("pbitsim.host", "pbitsim.sim"), ()),
    ("host", ["host/**/*.py"], ("pbitsim.hdl", "pbitsim.firmware"), ()),
]


def imports(path: Path):
    """(module, at module level) for every absolute import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, id(node) in top


def _hits(module: str, names) -> bool:
    return any(module == f or module.startswith(f + ".") for f in names)


def violations(files, never, never_top) -> list[str]:
    bad = []
    for path in files:
        for module, top in imports(path):
            if _hits(module, never) or (top and _hits(module, never_top)):
                where = "at module level " if top else ""
                name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                bad.append(f"{name} imports {module} {where}".strip())
    return bad


def files_of(globs) -> list[Path]:
    return sorted({p for g in globs for p in ROOT.glob(g)})


@pytest.mark.parametrize("rule", RULES, ids=[r[0] for r in RULES])
def test_imports_point_one_way(rule):
    _, globs, never, never_top = rule
    bad = violations(files_of(globs), never, never_top)
    assert not bad, "layering violated:\n" + "\n".join(bad)


def test_core_does_not_name_hdl_host_or_firmware():
    """Core never names them, not even in a string: plug-ins arrive through entry points."""
    bad = [
        f"{p.relative_to(ROOT)}:{k + 1}"
        for p in files_of(["pbitsim/**/*.py"])
        for k, line in enumerate(p.read_text().splitlines())
        if any(name in line for name in GATEWARE_AND_BOARDS)
    ]
    assert not bad, "core names a plug-in package:\n" + "\n".join(bad)


def test_layering_check_can_fail(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("import numba\nfrom pbitsim.hdl import thing\n\ndef f():\n    import amaranth\n")
    assert list(imports(p)) == [("numba", True), ("pbitsim.hdl", True), ("amaranth", False)]
    assert len(violations([p], ("pbitsim.hdl",), ("numba", "amaranth"))) == 2
    assert RULES and all(files_of(r[1]) or r[0] == "sweep" for r in RULES)


@pytest.mark.parametrize(
    "module", ["pbitsim.hdl.hardware", "pbitsim.hdl.engine", "pbitsim.board.session", "pbitsim"]
)
def test_no_compiler_loaded(module):
    """Building RTL, or speaking to a board, does not load Numba."""
    code = f"import sys, {module}; assert 'numba' not in sys.modules, 'numba loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_package_is_listed_in_pyproject():
    """package-dir remaps folders, so a subpackage missing from `packages` is silently left out
    of a non-editable install (an editable install would still find it)."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    mapping = {
        "pbitsim": "pbitsim",
        "hdl": "pbitsim.hdl",
        "firmware": "pbitsim.firmware",
        "host": "pbitsim.host",
    }
    found = set()
    for folder, package in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *rel)))
    assert found == listed
