"""Chaos across nodes: a small grid on a local multi-node Ray cluster while processes of
that cluster are killed at random — training workers, scorer actors, the results actor, a
whole worker node, the driver (then finished by ``egrid resume``) — and a count of what
survived, against an uninterrupted run of the same job on the same cluster.

    python -m grid.chaos --kills 20 --nodes 3 [--trials 6] [--seed 0] [--work DIR] [--reference RUN]

Prints each kill as it is made, then: the kinds used, kills survived, rows lost and rows
duplicated in every table (both must be 0), and whether the final metrics equal the
uninterrupted run's (``--reference``: a finished run of any job, whose job is then rerun
under the kills instead of the built-in one, and no uninterrupted run is made). Only
processes of the cluster it started are ever killed (found under that cluster's own
raylets), never another Ray on the machine. Exit status 0 when the run
finished with nothing lost, nothing duplicated and the same metrics.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from grid.chaos_runs import METRIC_TOLERANCE, chaos_job, count_rows, job_of_reference, metrics_gap, tables_of

#: what can be killed, and the Ray process name of each kind that is one process
KINDS = ("training worker", "scorer actor", "results actor", "worker node", "driver")
PROCESS_NAMES = {
    "training worker": "ray::RayTrainWorker",
    "scorer actor": "ray::MapWorker",
    "results actor": "ray::ResultsActor",
}
#: seconds to wait for a victim of a kind no kill has reached yet (a training worker)
RARE_PATIENCE_S = 90.0


@dataclass
class Kill:
    """One kill: seconds since the chaos run started, its kind, what was killed."""

    at: float
    kind: str
    target: str


class ChaosCluster:
    """A head (no CPUs: it holds no work) and worker nodes, each with its own cache and scratch folder."""

    def __init__(self, nodes: int, work: Path, cpus_per_node: int = 2):
        from ray.cluster_utils import Cluster

        self.work = work
        self.cpus = cpus_per_node
        self.added = 0
        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "env_vars": self._env("head")})
        for _ in range(max(1, nodes - 1)):
            self.add_worker()
        self.cluster.wait_for_nodes()

    def _env(self, name: str) -> dict[str, str]:
        folder = self.work / "nodes" / name
        for sub in ("cache", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {"EGRID_CACHE": str(folder / "cache"), "TMPDIR": str(folder / "tmp")}

    def add_worker(self) -> None:
        self.added += 1
        self.cluster.add_node(num_cpus=self.cpus, env_vars=self._env(f"worker{self.added}"))

    @property
    def address(self) -> str:
        return self.cluster.address

    def processes(self, name: str) -> list:
        """Live processes of this cluster whose command line holds ``name`` (children of its raylets)."""
        import psutil

        nodes = [self.cluster.head_node, *self.cluster.worker_nodes]
        raylets = [info.process.pid for node in nodes for info in node.all_processes.get("raylet", [])]
        found = []
        for pid in raylets:
            try:
                children = psutil.Process(pid).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for proc in children:
                try:
                    if name in " ".join(proc.cmdline()):
                        found.append(proc)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        return found

    def kill_worker_node(self, rng: random.Random) -> str:
        """SIGKILL every process of a random worker node, then add a fresh node in its place."""
        node = rng.choice(list(self.cluster.worker_nodes))
        name = node.node_id[:8]
        self.cluster.remove_node(node, allow_graceful=False)
        self.add_worker()
        return f"node {name}"

    def shutdown(self) -> None:
        self.cluster.shutdown()


def _egrid(work: Path, log, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "grid.cli", *args, "--no-report"],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _victims(cluster: ChaosCluster, kind: str) -> list:
    name = PROCESS_NAMES.get(kind)
    return cluster.processes(name) if name else [kind]  # a node or the driver: always there


def run_with_chaos(
    cluster: ChaosCluster,
    job: Path,
    run_dir: str,
    kills: int,
    rng: random.Random,
    gap: tuple[float, float] = (4.0, 10.0),
    say=print,
) -> tuple[list[Kill], bool]:
    """Run ``job`` on ``cluster`` and make up to ``kills`` kills while it runs.

    Each kill goes to a kind used least so far (:func:`_next_kind`), so every kind gets its
    turn as the run goes through its stages.
    A killed driver is followed by ``egrid resume``; so is a driver that exits with an
    error after a kill (at most a few times).

    Returns:
        The kills made, and whether the run finished.
    """
    t0 = time.time()
    made: list[Kill] = []
    with open(cluster.work / "driver.log", "a") as log:
        driver = _egrid(cluster.work, log, "run", str(job), "--address", cluster.address)
        resumes = 0
        while True:
            # a short run (the test suite's) never waits long: it must make its kills before the run ends
            kind = (
                _next_kind(cluster, made, driver, rng, gap, patient=kills >= 2 * len(KINDS))
                if len(made) < kills
                else None
            )
            code = driver.poll()
            if code == 0:
                return made, True
            if code is not None:  # it stopped with an error: resume it, a few times
                if resumes >= max(3, kills // 2):
                    return made, False
                resumes += 1
                say(f"[chaos] driver exited with {code}; egrid resume")
                driver = _restart(cluster, log, job, run_dir)
                continue
            if kind is None:
                time.sleep(0.5)  # no kills left (or no victim): let it run
                continue
            target = _kill(cluster, kind, driver, rng)
            if target is None:
                continue
            made.append(Kill(round(time.time() - t0, 1), kind, target))
            say(f"[chaos] {made[-1].at:7.1f} s  kill {len(made)}: {kind} ({target})")
            if kind == "driver":
                driver.wait()
                driver = _restart(cluster, log, job, run_dir)


def _restart(cluster: ChaosCluster, log, job: Path, run_dir: str) -> subprocess.Popen:
    """``egrid resume`` of the run; ``egrid run`` again when the driver died before the run
    folder held its manifest (nothing to resume yet)."""
    from grid.results import ResultsStore

    if ResultsStore(run_dir).read_json("manifest.json") is None:
        return _egrid(cluster.work, log, "run", str(job), "--address", cluster.address)
    return _egrid(cluster.work, log, "resume", run_dir, "--address", cluster.address)


def _next_kind(
    cluster: ChaosCluster,
    made: list[Kill],
    driver: subprocess.Popen,
    rng: random.Random,
    gap: tuple[float, float],
    patient: bool = True,
) -> str | None:
    """Wait between ``gap[0]`` and ``gap[1]`` seconds, then name the kind to kill.

    Once ``gap[0]`` has passed, a kind used least so far is taken the moment it has a victim
    (a training worker lives only while its trial trains: seconds, in a small grid); at
    ``gap[1]`` (up to :data:`RARE_PATIENCE_S` when only such short-lived kinds are left
    untouched), the least used of the kinds that have one. None when the driver ended first.
    """
    started, wait = time.time(), rng.uniform(*gap)
    used = {k: sum(m.kind == k for m in made) for k in KINDS}
    rarest = [k for k in KINDS if used[k] == min(used.values())]
    if patient and all(k in PROCESS_NAMES for k in rarest) and len(made) >= len(KINDS) - 1:
        # only short-lived processes are left to catch: let the run reach them (killing
        # the always-present driver or a node again would only restart it from its checkpoints)
        wait = max(wait, RARE_PATIENCE_S)
    while driver.poll() is None:
        elapsed = time.time() - started
        if elapsed >= gap[0]:
            ready = [k for k in rarest if _victims(cluster, k)]
            if ready:
                return rng.choice(ready)
        if elapsed >= wait:
            available = [k for k in KINDS if _victims(cluster, k)]
            fewest = min(used[k] for k in available)
            return rng.choice([k for k in available if used[k] == fewest])
        time.sleep(0.25)
    return None


def _kill(cluster: ChaosCluster, kind: str, driver: subprocess.Popen, rng: random.Random) -> str | None:
    """Make one kill of ``kind``; what was killed, or None when its victim ended meanwhile."""
    import signal

    import psutil

    if kind == "worker node":
        return cluster.kill_worker_node(rng)
    if kind == "driver":
        os.killpg(driver.pid, signal.SIGKILL)
        return f"pid {driver.pid}"
    victim = rng.choice(_victims(cluster, kind))
    try:
        victim.kill()
    except psutil.NoSuchProcess:
        return None
    return f"pid {victim.pid}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument(
        "--nodes", type=int, default=3, help="nodes of the local cluster, the head included [%(default)s]"
    )
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="folder for the runs and logs [a new temporary folder]")
    parser.add_argument(
        "--reference",
        default=None,
        metavar="RUN",
        help="a finished run to compare with: its job is run under the kills (--trials is then unused), "
        "and no uninterrupted run is made first",
    )
    args = parser.parse_args(argv)
    from embodiment.errors import InputError
    from grid.job_file import load_job

    work = Path(args.work or tempfile.mkdtemp(prefix="egrid-chaos-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.reference:
        try:
            job, reference_dir = job_of_reference(work, args.reference)
        except InputError as exc:
            print(f"egrid chaos: error: {exc}", file=sys.stderr)
            return 2
    else:
        job, reference_dir = chaos_job(work, args.trials), None
    spec = load_job(job)
    cluster = ChaosCluster(args.nodes, work)
    try:
        print(f"[chaos] cluster of {args.nodes} nodes at {cluster.address}; work folder {work}", flush=True)
        started = time.time()
        if reference_dir is None:
            reference_dir = spec.run_dir(str(work / "reference"))
            with open(work / "reference.log", "w") as log:
                code = _egrid(
                    work, log, "run", str(job), "--address", cluster.address, "--storage", str(work / "reference")
                ).wait()
            if code != 0:
                print(f"[chaos] the uninterrupted run failed (exit {code}); see {work / 'reference.log'}")
                return 2
            print(f"[chaos] uninterrupted run: {time.time() - started:.0f} s", flush=True)
        else:
            print(f"[chaos] uninterrupted run: {reference_dir} (given)", flush=True)
        started = time.time()
        made, finished = run_with_chaos(
            cluster, job, spec.run_dir(), args.kills, random.Random(args.seed), say=lambda m: print(m, flush=True)
        )
        print(f"[chaos] run with kills: {time.time() - started:.0f} s", flush=True)
    finally:
        cluster.shutdown()
    tables, reference = tables_of(spec.run_dir()), tables_of(reference_dir)
    lost, duplicated = count_rows(tables, reference)
    kinds = {k: sum(m.kind == k for m in made) for k in KINDS}
    gap = metrics_gap(tables, reference) if finished else float("nan")
    same = gap <= METRIC_TOLERANCE
    print(
        f"kills made: {len(made)} ({', '.join(f'{v} {k}' for k, v in kinds.items())}); kinds used: "
        f"{sum(v > 0 for v in kinds.values())} of {len(KINDS)}"
    )
    print(f"kills survived: {len(made) if finished else 0}; rows lost: {lost}; rows duplicated: {duplicated}")
    print(
        f"metrics equal the uninterrupted run's: {'yes' if same else 'no'} (largest difference {gap:.2g}, "
        f"tolerance {METRIC_TOLERANCE:g})"
    )
    return 0 if finished and lost == 0 and duplicated == 0 and same else 1


if __name__ == "__main__":
    raise SystemExit(main())
