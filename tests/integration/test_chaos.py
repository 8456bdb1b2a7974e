"""`python -m grid.chaos`, short: a grid on a 3-node local Ray cluster while training
workers, scorer actors, the results actor, whole worker nodes and the driver are killed at
random; nothing lost, nothing duplicated, the uninterrupted run's metrics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_short_chaos_run_across_three_nodes_loses_and_duplicates_nothing(tmp_path, fault_reference):
    """Compared with the fault tests' uninterrupted run (one trial): its job is run under the kills."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = ["--kills", "5", "--nodes", "3", "--reference", fault_reference, "--work", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "grid.chaos", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-5000:]
    kills = re.findall(r"kill (\d+): (training worker|scorer actor|results actor|worker node|driver) \((.+)\)", out)
    assert len(kills) >= 5
    kinds = {kind for _, kind, _ in kills}
    assert len(kinds) >= 3, kinds
    # each kill is printed as it is made, and the summary counts the same kinds
    summary = re.search(r"kills made: (\d+) \((.+)\); kinds used: (\d+) of 5", out)
    assert summary and int(summary.group(1)) == len(kills) and int(summary.group(3)) == len(kinds)
    for kind in kinds:
        assert f"{sum(k == kind for _, k, _ in kills)} {kind}" in summary.group(2)
    assert re.search(rf"kills survived: {len(kills)}; rows lost: 0; rows duplicated: 0", out), out[-3000:]
    assert f"uninterrupted run: {fault_reference} (given)" in out
    assert "metrics equal the uninterrupted run's: yes" in out
    # every table was compared with the uninterrupted run's, row keys and all
    for table in ("ratings", "embeddings", "trials"):
        rows = re.search(rf"{table}\s+rows\s+(\d+)\s+uninterrupted run\s+(\d+)\s+missing 0", out)
        assert rows and int(rows.group(1)) == int(rows.group(2)) > 0, table
