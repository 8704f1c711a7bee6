"""Examples in README.md and docs/ run: every ```python block that is not marked ``no-run``."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def blocks():
    for doc in DOCS:
        for k, code in enumerate(BLOCK.findall(doc.read_text())):
            if not code.lstrip().startswith("# no-run"):
                yield pytest.param(code, id=f"{doc.name}-{k}")


@pytest.mark.parametrize("code", list(blocks()))
def test_doc_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "model.pbit" in code:  # the file-format page reads a model someone saved
        from pbitsim import models

        models.rbm(4, 3).save(tmp_path / "model.pbit")
    exec(compile(code, "<doc>", "exec"), {"__name__": "__doc_example__"})


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    bash = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert "pbitsim demo" in bash[0]
    assert "pytest" in bash[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert bash[1].strip() in ci, ".ci/run must call README's test command verbatim"
