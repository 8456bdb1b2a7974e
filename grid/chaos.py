"""Chaos run: a small grid on the local Ray while random processes are SIGKILLed —
training workers and the results actor — then a count of what survived.

    python -m grid.chaos --kills 6 [--trials 4] [--seed 0]

Prints: kills made, kills survived (the run still finished), rows lost and rows
duplicated in every table (both must be 0).
"""

from __future__ import annotations

import argparse
import random
import signal
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import yaml

#: Processes the chaos thread may kill, by the name Ray gives them.
VICTIMS = ("ray::RayTrainWorker", "ray::ResultsActor")
KEYS = {"ratings": ["trial_id", "concept", "dimension"], "embeddings": ["trial_id", "concept", "layer", "pooling"],
        "trials": ["trial_id"]}


def _processes(name: str):
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        if name in " ".join(proc.info["cmdline"] or []):
            yield proc


def chaos(kills: int, rng: random.Random, done: threading.Event, log: list) -> None:
    """Make ``kills`` SIGKILLs, alternating a running training worker and the results
    actor, each a few seconds after its victim appears, until the run ends."""
    for i in range(kills):
        kind = VICTIMS[i % len(VICTIMS)]
        procs: list = []
        while not done.is_set() and not procs:  # wait for a victim of this kind
            procs = list(_processes(kind))
            time.sleep(1)
        if done.is_set():
            return
        time.sleep(rng.uniform(2, 8))  # let it get into its work (training steps, a write)
        procs = list(_processes(kind))
        if not procs:
            continue
        victim = rng.choice(procs)
        try:
            victim.send_signal(signal.SIGKILL)
            log.append((round(time.time()), kind, victim.pid))
            print(f"[chaos] SIGKILL {kind} pid {victim.pid}", flush=True)
        except Exception:  # it ended on its own meanwhile
            pass
        time.sleep(rng.uniform(4, 10))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from embodiment.models.tiny import save_tiny_model
    from grid.data import prepare_norms
    from grid.runner import run_job
    from grid.job_file import load_job

    work = Path(tempfile.mkdtemp(prefix="egrid-chaos-"))
    job = {"name": "chaos", "models": [save_tiny_model(work / "tiny", hidden=48, layers=2)],
           "norms": {"en": {"source": "embedded", "max_train": 60, "max_test": 24}},
           "training": {"steps": 15, "batch_size": 4, "checkpoint_every": 3, "engine": "deepspeed"},
           "search": {"learning_rate": {"grid": [1e-3 * (i + 1) for i in range(args.trials)]}},
           "tune": {"max_failures": 20}, "evaluation": {"layers": [2], "n_boot": 10},
           "resources": {"workers": 1, "max_concurrent_trials": 2}, "storage": str(work / "runs")}
    (work / "job.yaml").write_text(yaml.safe_dump(job))
    spec = load_job(work / "job.yaml")
    done, log = threading.Event(), []
    thread = threading.Thread(target=chaos, args=(args.kills, random.Random(args.seed), done, log), daemon=True)
    thread.start()
    finished = True
    try:
        run_job(spec, num_cpus=2, say=lambda m: print(f"[egrid] {m}", flush=True))
    except Exception as exc:  # the run did not survive
        print(f"run failed: {type(exc).__name__}: {exc}")
        finished = False
    done.set()
    run_dir = Path(spec.run_dir())
    test = prepare_norms(spec.norms, spec.seed)["en"].test
    models = args.trials + 1  # the base and each trial
    expected = {"trials": args.trials, "ratings": models * len(test.words) * len(test.dimensions),
                "embeddings": models * len(test.words) * len(spec.evaluation.layers)}  # mean pooling is kept
    lost = duplicated = 0
    for table, keys in KEYS.items():
        frame = pd.read_parquet(run_dir / "tables" / table) if (run_dir / "tables" / table).exists() else pd.DataFrame(columns=keys)
        unique = len(frame.drop_duplicates(keys))
        lost += max(0, expected[table] - unique)
        duplicated += len(frame) - unique
        print(f"{table:<11} rows {len(frame):6d}  expected {expected[table]:6d}")
    kinds = {k: sum(1 for _, kind, _ in log if kind == k) for k in VICTIMS}
    print(f"kills made: {len(log)} ({', '.join(f'{v} {k}' for k, v in kinds.items())}); "
          f"kills survived: {len(log) if finished else 0}; rows lost: {lost}; rows duplicated: {duplicated}")
    return 0 if finished and lost == 0 and duplicated == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
