"""``egrid``: the command line of embodiment-grid.

Each subcommand is one function registered in :data:`COMMANDS`; bad input of any kind
ends in one ``egrid: error:`` line naming the file and key, and exit status 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from embodiment.errors import InputError, StorageError
from grid.cli_evaluate import _add_evaluate_ratings
from grid.cli_library import _add_data, _add_jobs
from grid.cli_plan import add_plan
from grid.cli_report import _add_report
from grid.cli_status import cmd_status, read_manifest
from grid.location import RunLocation

if TYPE_CHECKING:
    import pandas as pd


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a job file without running anything."""
    from grid.configure import configure
    from grid.job_file import load_job

    for path in args.jobs:
        spec = load_job(path)
        configure(spec)  # the data too: splits, validation concepts, each trial's examples
        trials = _count_trials(spec)
        print(
            f"{path}: ok -- run {spec.run_name}, {len(spec.models)} model(s), {len(spec.conditions)} condition(s), "
            f"{trials} trial(s), {spec.resources.workers} worker(s) per trial"
        )
    return 0


def _count_trials(spec) -> str:
    from grid.tuning import expected_trials

    return str(expected_trials(spec))


def cmd_run(args: argparse.Namespace, resume: bool = False) -> int:
    """Run a job end to end (or finish it, with resume)."""
    from grid.console import summary_lines
    from grid.runner import run_job
    from grid.job_file import load_job

    spec = load_job(args.job)
    _say_plan(spec)
    summary = run_job(
        spec,
        address=args.address,
        storage=args.storage,
        resume=resume or args.resume,
        num_cpus=args.num_cpus,
        dashboard_host=args.dashboard_host,
        progress=args.progress,
    )
    print("\n" + "\n".join(summary_lines(summary)))
    print(f"\nRun folder: {summary['run_dir']}")
    if not getattr(args, "no_report", False):
        _write_report(summary["run_dir"], summary.get("differences"))
    return 0


def _say_plan(spec) -> None:
    """The plan's one-line total before a run starts (``egrid plan`` has the details);
    a model the plan cannot read (a hub id not yet downloaded) only skips the line."""
    from grid.cli_plan import DEFAULT_MFU, plan_rows, plan_total

    try:
        frame = plan_rows(spec, gpu_memory_gib=None, gpu=None, mfu=DEFAULT_MFU)
    except (InputError, OSError, ValueError) as exc:
        print(f"plan: not available ({type(exc).__name__}: {str(exc)[:200]})", flush=True)
        return
    print(plan_total(frame, spec.resources.max_concurrent_trials or 1), flush=True)


def _write_report(folder: str, differences: pd.DataFrame | None = None) -> None:
    """The run's figures and HTML page; a failure here never costs the run its tables.
    ``differences``: the paired differences the run's summary already computed."""
    from grid.report import build_report

    try:
        report = build_report(folder, differences=differences)
    except Exception as exc:  # the tables are written; a report can be made later with `egrid report`
        print(f"report not written ({type(exc).__name__}: {exc}); try: egrid report {folder}", file=sys.stderr)
        return
    print(
        f"Report:    {report.index} ({len(report.figures)} figures as PNG and SVG in {report.index.parent / 'figures'})"
    )
    if RunLocation(str(folder)).remote:
        print(f"           (a copy in the run's storage: {RunLocation(str(folder)).child('report')})")


def cmd_resume(args: argparse.Namespace) -> int:
    """Finish an interrupted run from its folder: the job is read back from the manifest."""
    from grid.console import summary_lines
    from grid.runner import run_job
    from grid.spec import parse_job

    manifest = read_manifest(args.run)
    spec = parse_job(manifest["job"], manifest.get("job_file", "<job>"))
    # the folder itself (its name holds the hash of the egrid version that started it)
    summary = run_job(
        spec,
        address=args.address,
        resume=True,
        progress=args.progress,
        run_dir=args.run,
        trust_tune_state=args.trust_tune_state,
    )
    print("\n" + "\n".join(summary_lines(summary)))
    if not args.no_report:
        _write_report(summary["run_dir"], summary.get("differences"))
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    """Recompute a run's metrics and transfer tables from its stored tables (no Ray)."""
    from grid.console import summary_lines
    from grid.run_summary import reaggregate

    summary = reaggregate(args.run)
    print("\n" + "\n".join(summary_lines(summary)))
    if not args.no_report:
        _write_report(summary["run_dir"], summary.get("differences"))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit a job to a cluster through the Ray Jobs API, shipping this folder."""
    # Ray clusters authenticate job-API calls with a token; a plain client process sends it
    # only once token mode is on, which Ray's CLI switches on when a token is at hand.
    from grid.internals import enable_token_auth

    enable_token_auth()
    from ray.job_submission import JobSubmissionClient

    from grid.progress import environment
    from grid.job_file import load_job

    spec = load_job(args.job)  # validate here: a mistyped job costs seconds, not a cluster slot
    storage = args.storage or spec.storage
    if "://" not in storage and not Path(storage).is_absolute():
        # on the cluster a relative path lands inside Ray's unpacked working dir of the head
        raise InputError(
            f"storage {storage!r} is a relative path: a submitted job needs a URI (s3://, gs://, ...) or "
            "an absolute path that every node mounts (--storage or the job's storage)",
            source=args.job,
            key="storage",
        )
    client = JobSubmissionClient(args.address)
    # The job's text travels in an environment variable, so any job file works, wherever
    # it lives; `python -m grid.cli` runs from the shipped working directory even where
    # the console script is not installed.
    entry = f"python -m grid.cli run env:EGRID_JOB --address auto --progress {args.progress}" + (
        f" --storage {shlex.quote(args.storage)}" if args.storage else ""
    )
    # a job's log is a file: plain lines unless asked otherwise
    shown = environment(args.progress, submitted=True)
    try:
        submission = _submit(client, entry, shown, args, allow_download=spec.allow_download)
    except RuntimeError as exc:  # the job API answered with an error (e.g. its agent not up yet)
        raise InputError(
            f"the cluster did not take the job: {exc}; if it just started, try again in a few seconds",
            source=args.address,
            key="--address",
        ) from None
    print(
        f"submitted {spec.run_name} as {submission}; follow with: ray job logs --follow {submission} --address {args.address}"
    )
    return 0


def _submit(client, entry: str, shown: dict, args: argparse.Namespace, *, allow_download: bool = False) -> str:
    from grid.ray_session import WORKER_ENV, hub_env

    return client.submit_job(
        entrypoint=entry,
        runtime_env={
            "working_dir": ".",
            "excludes": [
                ".venv",
                ".git",
                "egrid_runs",
                "results",
                "*.parquet",
                "__pycache__",
                "bench/.peers",
                ".whl",
                ".gpu_assets",
            ],
            # The driver of a submitted job inherits this runtime env (Ray refuses a second one
            # from its ray.init): it carries the workers' variables and the job's text.
            "env_vars": {
                **WORKER_ENV,
                **hub_env(allow_download),
                **shown,
                "EGRID_SUBMITTED": "1",
                "EGRID_JOB": Path(args.job).read_text(encoding="utf-8"),
            },
        },
    )


def _progress_option(parser, default: str = "auto") -> None:
    from grid.progress import MODES

    parser.add_argument(
        "--progress",
        choices=MODES,
        default=default,
        help="live displays (a terminal) or plain timestamped lines (a file); "
        "auto: plain unless stdout is a terminal [%(default)s]",
    )


def _add_grid_commands(sub) -> None:
    p = sub.add_parser("run", help="run a job (YAML) on a local Ray or a cluster")
    p.add_argument("job")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--storage", default=None, help="where run folders go (path or URI); overrides the job's storage")
    p.add_argument("--num-cpus", type=int, default=None, help="logical CPUs of the local Ray")
    p.add_argument("--resume", action="store_true", help="continue the run of this job if it exists")
    p.add_argument(
        "--dashboard-host",
        default="127.0.0.1",
        help="interface of the local Ray dashboard/job API (default 127.0.0.1; others get a warning)",
    )
    p.add_argument("--no-report", action="store_true", help="skip the figures and HTML report at the end")
    _progress_option(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("resume", help="finish an interrupted run")
    p.add_argument("run", help="the run folder")
    p.add_argument("--address", default=None)
    p.add_argument("--no-report", action="store_true", help="skip the figures and HTML report at the end")
    p.add_argument(
        "--trust-tune-state",
        action="store_true",
        help="let Tune read a tune/tuner.pkl whose digest egrid never recorded (runs from before it did); "
        "a pickle runs code when read: only for folders whose every writer you trust",
    )
    _progress_option(p)
    p.set_defaults(func=cmd_resume)
    p = sub.add_parser(
        "aggregate",
        help="recompute a run's metrics and transfer tables from its stored tables "
        "(after an upgrade, or on a partial run; nothing is trained or scored again)",
    )
    p.add_argument("run", help="the run folder")
    p.add_argument("--no-report", action="store_true", help="skip the figures and HTML report at the end")
    p.set_defaults(func=cmd_aggregate)
    p = sub.add_parser("status", help="trials, states, steps, losses and the best so far")
    p.add_argument("run", help="the run folder")
    p.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=5.0,
        default=0.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 5) while the run is running",
    )
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("validate", help="check job files without running them")
    p.add_argument("jobs", nargs="+")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("submit", help="submit a job through the Ray Jobs API")
    p.add_argument("job")
    p.add_argument("--address", required=True, help="Ray dashboard address, e.g. http://127.0.0.1:8265")
    p.add_argument("--storage", default=None)
    _progress_option(p, default="plain")
    p.set_defaults(func=cmd_submit)


#: Subcommand registrars; each adds its parser and sets ``func``.
COMMANDS = [_add_grid_commands, add_plan, _add_evaluate_ratings, _add_report, _add_data, _add_jobs]


def build_parser() -> argparse.ArgumentParser:
    """The ``egrid`` argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="egrid",
        description="How human-like is a language model's grasp of physical "
        "experience, and how does fine-tuning change it?",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    return parser


def _shutdown_ray() -> None:
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``egrid`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"egrid: error: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:  # the run folder filled up or turned read-only mid-run
        _shutdown_ray()  # its log forwarding would print after the message otherwise
        print(f"egrid: error: {exc.strerror}", file=sys.stderr)
        return 2
    except OSError as exc:  # storage that cannot be written, a disk that filled up
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            f"egrid: error: {where}{exc.strerror or exc}; tables already written are complete "
            "(free space or fix the path, then `egrid resume RUN`)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("egrid: interrupted; tables already written are complete", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
