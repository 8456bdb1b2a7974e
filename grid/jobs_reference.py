"""The job file's field reference (docs/jobs.md), generated from the pydantic models, and
the shipped jobs (``egrid jobs list | copy | doc``).

Each field's type, default and allowed values come from the model's JSON schema; its
meaning from the ``Attributes:`` section of the model's docstring, so the reference and
the validation never disagree (``tests/unit/test_jobs_reference.py`` fails when
docs/jobs.md is stale).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from embodiment.errors import InputError, did_you_mean

#: where the shipped jobs live (the repository's jobs/ folder)
JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"


def _sections():
    from embodiment.training import TrainConfig
    from grid.spec import ConditionSpec, EvalSpec, JobSpec, NormsSpec, ResourcesSpec, TuneSpec

    return [
        ("(top level)", JobSpec),
        ("norms.<language>", NormsSpec),
        ("conditions[]", ConditionSpec),
        ("training (and conditions[].training, search)", TrainConfig),
        ("tune", TuneSpec),
        ("evaluation", EvalSpec),
        ("resources", ResourcesSpec),
    ]


def _meanings(model) -> dict[str, str]:
    """Field -> its one-line meaning, from the docstring's ``Attributes:`` section
    (``a, b: text`` gives both names the text)."""
    doc = model.__doc__ or ""
    if "Attributes:" not in doc:
        return {}
    out, name = {}, None
    for line in doc.split("Attributes:", 1)[1].splitlines():
        found = re.match(r"^\s{8}([\w, ]+):\s*(.*)$", line)
        if found:
            names = [n.strip() for n in found.group(1).split(",")]
            for n in names:
                out[n] = found.group(2).strip()
            name = names
        elif name and line.startswith(" " * 12) and line.strip():
            for n in name:
                out[n] += " " + line.strip()
        elif line.strip() and not line.startswith(" " * 8):
            break
    return out


def _type_of(prop: dict, defs: dict) -> str:
    if "$ref" in prop:
        return defs.get(prop["$ref"].rsplit("/", 1)[-1], {}).get("title", "section")
    if "anyOf" in prop:
        kinds = [_type_of(p, defs) for p in prop["anyOf"]]
        return " or ".join(dict.fromkeys(k for k in kinds if k))
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "")
    if kind == "array":
        return f"list of {_type_of(prop.get('items', {}), defs)}"
    if kind == "object":
        return "mapping"
    bounds = [
        f"{op} {prop[key]}"
        for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
        if key in prop
    ]
    return {"integer": "int", "number": "float", "string": "text", "boolean": "bool", "null": "null"}.get(
        kind, kind
    ) + (f" ({', '.join(bounds)})" if bounds else "")


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if hasattr(value, "model_dump"):
        return "its section's defaults"
    if isinstance(value, list) and value and hasattr(value[0], "model_dump"):
        return "one condition of the defaults"
    if isinstance(value, dict) and value and all(hasattr(v, "model_dump") for v in value.values()):
        return f"`{{{', '.join(value)}}}` with the defaults"
    return f"`{json.dumps(value)}`".replace("|", "\\|")


def render_job_reference() -> str:
    """docs/jobs.md: every job field with type, default, allowed values and meaning."""
    lines = [
        "# The job file: every field",
        "",
        "Generated from the job's pydantic models (`egrid jobs doc --out docs/jobs.md`); a test fails when it is "
        "stale. Every field is checked before anything starts (`egrid validate JOB`). Shipped jobs: "
        "`egrid jobs list`; start from one with `egrid jobs copy NAME [DEST]`.",
        "",
    ]
    for title, model in _sections():
        schema = model.model_json_schema()
        defs = schema.get("$defs", {})
        meanings = _meanings(model)
        lines += [f"## `{title}`", "", "| field | type and allowed values | default | meaning |", "|---|---|---|---|"]
        for name, prop in schema["properties"].items():
            meaning = meanings.get(name, "").replace("``", "`").replace("|", "\\|")
            kind = _type_of(prop, defs).replace("|", "\\|")
            lines.append(f"| `{name}` | {kind} | {_default(model.model_fields[name])} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def shipped_jobs() -> dict[str, Path]:
    """Name -> file of each shipped job."""
    if not JOBS_DIR.is_dir():
        raise InputError(
            "the shipped jobs are not installed beside this egrid (an editable install of the "
            "repository has them in jobs/)",
            source=JOBS_DIR,
        )
    return {p.stem: p for p in sorted(JOBS_DIR.glob("*.yaml"))}


def describe(path: Path) -> str:
    """A job's first comment line: what it is for."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def copy_job(name: str, dest: str | None = None) -> Path:
    """Copy a shipped job to ``dest`` (a file or folder; default ``./<name>.yaml``) as a
    starting point; never overwrites a file.

    Raises:
        InputError: an unknown job name (with "did you mean"), or ``dest`` exists.
    """
    jobs = shipped_jobs()
    if name not in jobs:
        raise InputError(f"no shipped job {name!r}{did_you_mean(name, jobs)}; shipped: {', '.join(jobs)}", key="NAME")
    target = Path(dest) if dest else Path(f"{name}.yaml")
    if target.is_dir():
        target = target / f"{name}.yaml"
    if target.exists():
        raise InputError("exists; choose another destination (nothing is overwritten)", source=target, key="DEST")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(jobs[name], target)
    return target
