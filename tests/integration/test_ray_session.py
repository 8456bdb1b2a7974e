"""A local Ray that egrid starts tells its workers where its own GCS is, so Ray Train's
placement-group cleaner (which finds "its" cluster through the State API) never asks
another cluster, nor a dead one that `ray start` left in /tmp/ray/ray_current_cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from embodiment.training.distributed import free_port

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import ray
from ray.train.v2._internal.state.util import is_actor_alive
from grid.ray_session import init_ray

init_ray(num_cpus=1)


@ray.remote(num_cpus=0)
class Probe:
    def ask(self, actor_id):
        import os
        return os.environ.get("RAY_ADDRESS"), is_actor_alive(actor_id, timeout=5)


watched, probe = Probe.remote(), Probe.options(lifetime="detached").remote()
address, alive = ray.get(probe.ask.remote(watched._actor_id.hex()), timeout=60)
print(address == ray.get_runtime_context().gcs_address, alive)
"""


def test_workers_ask_their_own_cluster_where_a_dead_one_is_recorded_as_current():
    with tempfile.TemporaryDirectory(prefix="egrid-ray-", dir="/tmp") as short:  # Ray's sockets need a short path
        (Path(short) / "ray").mkdir()
        (Path(short) / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")  # nothing listens
        env = {**os.environ, "RAY_TMPDIR": short, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""}
        proc = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300, cwd=short
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "True True"
