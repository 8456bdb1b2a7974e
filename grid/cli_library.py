"""``egrid data`` (the named datasets) and ``egrid jobs`` (the shipped jobs and the field
reference): what a user starts from."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_data_list(args: argparse.Namespace) -> int:
    """The named datasets, their tables and whether they are in the cache."""
    from embodiment.datasets import DATASETS, cache_dir

    for name, dataset in DATASETS.items():
        tables = cache_dir(name) / "tables"
        here = all((tables / t.filename).is_file() for t in dataset.tables.values())
        print(f"{name}  ({'fetched: ' + str(tables) if here else 'not fetched: egrid data fetch ' + name})")
        print(f"  {dataset.description}")
        for table, spec in dataset.tables.items():
            print(f"  {name}:{table:<14} {spec.description}")
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    """Download (or copy from --data-dir), check and convert a named dataset."""
    from embodiment.datasets import fetch, get_dataset

    folder = fetch(args.name, data_dir=args.data_dir, say=print)
    for table, spec in get_dataset(args.name).tables.items():
        print(f"  {args.name}:{table:<14} {folder / spec.filename}")
    return 0


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="named datasets (the study's norms and colour questions): list, fetch")
    data = p.add_subparsers(dest="data_command", required=True)
    q = data.add_parser("list", help="the named datasets and their tables")
    q.set_defaults(func=cmd_data_list)
    q = data.add_parser("fetch", help="download, check (sha256) and convert a dataset into the user cache")
    q.add_argument("name", help="a dataset name, e.g. wu2026")
    q.add_argument(
        "--data-dir",
        default=None,
        help="a folder holding the source files (offline; default $EGRID_DATA_DIR, else download)",
    )
    q.set_defaults(func=cmd_data_fetch)


def cmd_jobs_list(args: argparse.Namespace) -> int:
    """The shipped jobs, each with what it is for."""
    from grid.jobs_reference import describe, shipped_jobs

    for name, path in shipped_jobs().items():
        print(f"{name:<18} {describe(path)}")
    print("\nstart from one: egrid jobs copy NAME [DEST]; every field: docs/jobs.md")
    return 0


def cmd_jobs_copy(args: argparse.Namespace) -> int:
    """Copy a shipped job as a starting point."""
    from grid.jobs_reference import copy_job

    print(
        f"copied to {copy_job(args.name, args.dest)}; check it with: egrid validate {args.dest or args.name + '.yaml'}"
    )
    return 0


def cmd_jobs_doc(args: argparse.Namespace) -> int:
    """Write (or print) the job field reference."""
    from grid.jobs_reference import render_job_reference

    text = render_job_reference()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def _add_jobs(sub) -> None:
    p = sub.add_parser("jobs", help="the shipped jobs: list, copy one as a starting point, the field reference")
    jobs = p.add_subparsers(dest="jobs_command", required=True)
    q = jobs.add_parser("list", help="the shipped jobs and what each is for")
    q.set_defaults(func=cmd_jobs_list)
    q = jobs.add_parser("copy", help="copy a shipped job (never overwrites)")
    q.add_argument("name", help="a shipped job's name (egrid jobs list)")
    q.add_argument("dest", nargs="?", default=None, help="a file or folder (default ./NAME.yaml)")
    q.set_defaults(func=cmd_jobs_copy)
    q = jobs.add_parser("doc", help="every job field with its type, default and meaning (docs/jobs.md)")
    q.add_argument("--out", default=None, help="write it to this file (default: print)")
    q.set_defaults(func=cmd_jobs_doc)
