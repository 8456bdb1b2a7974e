"""What the architecture page promises of the code itself, checked."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_LINES = 80


def test_no_function_in_grid_or_embodiment_is_over_80_lines():
    long = []
    for path in sorted([*REPO.joinpath("grid").rglob("*.py"), *REPO.joinpath("embodiment").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these into named stages: " + "; ".join(long)


def test_architecture_page_names_every_module():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [
        str(p.relative_to(REPO))
        for p in sorted([*REPO.joinpath("grid").rglob("*.py"), *REPO.joinpath("embodiment").rglob("*.py")])
        if p.name != "__init__.py" and f"{p.name}" not in page
    ]
    assert not missing, "docs/architecture.md names no row for: " + ", ".join(missing)


MAX_MODULE_LINES = 400


def test_no_module_in_grid_or_embodiment_is_over_400_lines():
    long = [
        f"{p.relative_to(REPO)} ({n} lines)"
        for p in sorted([*REPO.joinpath("grid").rglob("*.py"), *REPO.joinpath("embodiment").rglob("*.py")])
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, "split these by concern: " + "; ".join(long)


def _tracked() -> set[str] | None:
    import subprocess

    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return set(out.splitlines())


def test_every_relative_link_in_the_docs_reaches_a_file_in_git():
    """A page linked from the README or docs/ that exists only in one checkout (untracked,
    or caught by .gitignore) is missing from every clone."""
    import re

    tracked = _tracked()
    assert tracked is not None, "git ls-files failed: the docs' links cannot be checked"
    pages = [REPO / "README.md", *sorted(REPO.joinpath("docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            path = (page.parent / target).resolve()
            rel = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else None
            if rel is None or not (rel in tracked or any(t.startswith(rel + "/") for t in tracked)):
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, "links to files git does not track: " + "; ".join(broken)
