"""docs/jobs.md is the job models' own reference; `egrid jobs list | copy | doc`."""

from __future__ import annotations

from pathlib import Path

import yaml

from grid.cli import main
from grid.jobs_reference import _sections, render_job_reference
from grid.job_file import load_job

REPO = Path(__file__).resolve().parents[2]


def test_docs_jobs_md_is_current():
    assert (REPO / "docs" / "jobs.md").read_text(encoding="utf-8") == render_job_reference(), (
        "docs/jobs.md is stale: egrid jobs doc --out docs/jobs.md"
    )


def test_every_field_has_a_meaning():
    text = render_job_reference()
    for _, model in _sections():
        for name in model.model_fields:
            row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
            assert row.rstrip(" |").split("|")[-1].strip(), f"{model.__name__}.{name} has no meaning in its docstring"


def test_jobs_list_and_copy(tmp_path, capsys, monkeypatch):
    assert main(["jobs", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("demo", "finetune", "replication", "paper", "objective_search"))
    monkeypatch.chdir(tmp_path)
    assert main(["jobs", "copy", "demo"]) == 0
    copied = tmp_path / "demo.yaml"
    assert yaml.safe_load(copied.read_text()) == yaml.safe_load((REPO / "jobs" / "demo.yaml").read_text())
    assert load_job(copied).name == "demo"
    capsys.readouterr()
    assert main(["jobs", "copy", "demo"]) == 2  # never overwrites
    assert "nothing is overwritten" in capsys.readouterr().err
    assert main(["jobs", "copy", "demmo"]) == 2
    assert "did you mean 'demo'" in capsys.readouterr().err
