"""Imports stay one-way: pbitsim core <- hdl <- firmware; core <- host."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# folder -> subpackages of pbitsim it must not import
FORBIDDEN = {
    "pbitsim": ("pbitsim.hdl", "pbitsim.firmware", "pbitsim.host"),
    "hdl": ("pbitsim.firmware", "pbitsim.host"),
    "host": ("pbitsim.hdl", "pbitsim.firmware"),
    "firmware": ("pbitsim.host",),
}


def imported_modules(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_are_one_way(folder):
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for mod in imported_modules(path):
            if any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN[folder]):
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "layering violated:\n" + "\n".join(bad)


def test_layering_check_can_fail(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("from pbitsim.hdl import thing\nimport pbitsim.host.link\n")
    assert list(imported_modules(p)) == ["pbitsim.hdl", "pbitsim.host.link"]


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
