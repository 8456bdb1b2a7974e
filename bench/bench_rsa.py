"""Claim 2: exact Spearman RSA at n = 1,572 / 10,000 / 39,707 concepts: time and peak
memory of ours vs rsatoolbox (calc_rdm + compare(method='spearman')) and scipy
(pdist + spearmanr), each in its own process on the same inputs, in one run.

The inputs are the embedded Lancaster norms (z-scored per dimension) and a noisy copy;
every method uses the correlation distance (the RDM rsatoolbox and scipy both offer).
rsatoolbox is installed into its own environment (bench/.peers) on first use.
Usage: python bench/bench_rsa.py [--sizes 1572,10000,39707] [--memory-limit-gb 22]
Targets: >= 5x faster than the faster peer at n = 10,000; exact at 39,707 within 12 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"

# (imports, timed statement) per method; imports are not timed.
CODE = {
    "ours": (
        "from embodiment.metrics.rsa import rsa",
        'value = rsa(model, human, {"standardise": "zscore", "rdm": "correlation", "compare": "spearman", "name": "bench"}).value',
    ),
    "scipy": (
        "from scipy.spatial.distance import pdist\nfrom scipy.stats import spearmanr\n"
        "z = lambda x: (x - x.mean(0)) / x.std(0)",
        'value = spearmanr(pdist(z(model), "correlation"), pdist(z(human), "correlation")).statistic',
    ),
    "rsatoolbox": (
        "import rsatoolbox\nz = lambda x: (x - x.mean(0)) / x.std(0)",
        'rdms = [rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(z(x)), method="correlation") for x in (model, human)]\n'
        'value = float(rsatoolbox.rdm.compare(rdms[0], rdms[1], method="spearman")[0, 0])',
    ),
}

SETUP = """
import json, resource, sys, time, numpy as np
{imports}
n = {n}
data = np.load({path!r})
human = data["human"][:n]; model = data["model"][:n]
start = time.perf_counter()
{code}
print(json.dumps({{"value": float(value), "seconds": time.perf_counter() - start,
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}}))
"""


def peer_python(name: str) -> str:
    """The interpreter that runs a peer: ours and scipy here, rsatoolbox in bench/.peers."""
    if name != "rsatoolbox":
        return sys.executable
    py = PEERS / "bin" / "python"
    if not py.exists():
        print("installing rsatoolbox into bench/.peers (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "rsatoolbox"], check=True)
    return str(py)


def measure(name: str, n: int, path: str, limit_gb: float, timeout: int) -> dict:
    """Run one method in a fresh process; peak RSS from wait4, address space capped."""
    imports, code = CODE[name]
    script = SETUP.format(imports=imports, n=n, path=path, code=code)
    limit = int(limit_gb * 2**30)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [peer_python(name), "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=cap,
        env=env,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"ok": False, "why": f"over {timeout} s", "wall": time.perf_counter() - start}
    if proc.returncode != 0:
        last = (err.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return {"ok": False, "why": last[:80], "wall": time.perf_counter() - start}
    return {"ok": True, **json.loads(out.strip().splitlines()[-1])}  # peak RSS reported by the process itself


def main() -> None:
    import numpy as np

    from embodiment.norms import load_norms

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1572,10000,39707")
    parser.add_argument("--memory-limit-gb", type=float, default=22.0)
    parser.add_argument("--timeout", type=int, default=1200)
    parser.add_argument("--peers", default="scipy,rsatoolbox")
    args = parser.parse_args()
    norms = load_norms("embedded")
    rng = np.random.default_rng(0)
    path = "/tmp/egrid_bench_rsa.npz"
    np.savez(path, human=norms.means, model=norms.means + rng.normal(0, 0.5, norms.means.shape))
    print(
        f"inputs: embedded norms ({len(norms.words)} words x {len(norms.dimensions)} dims) vs a noisy copy; "
        f"correlation RDM, Spearman; address space capped at {args.memory_limit_gb:g} GiB per process; "
        f"{os.cpu_count()} cores"
    )
    print(f"{'n':>7} {'method':<11} {'seconds':>9} {'peak GiB':>9} {'RSA':>10}  note")
    ratios = {}
    for n in (int(s) for s in args.sizes.split(",")):
        results = {}
        for name in ["ours", *args.peers.split(",")]:
            r = measure(name, n, path, args.memory_limit_gb, args.timeout)
            results[name] = r
            note = "" if r["ok"] else f"FAILED: {r['why']}"
            secs = r["seconds"] if r["ok"] else r["wall"]
            value = f"{r['value']:.6f}" if r["ok"] else "-"
            print(
                f"{n:>7} {name:<11} {secs:9.2f} {r.get('peak_gb', float('nan')):9.2f} {value:>10}  {note}", flush=True
            )
        ok_peers = [results[p] for p in args.peers.split(",") if results[p]["ok"]]
        if results["ours"]["ok"] and ok_peers:
            best = min(ok_peers, key=lambda r: r["seconds"])
            ratios[n] = best["seconds"] / results["ours"]["seconds"]
            same = all(abs(p["value"] - results["ours"]["value"]) < 1e-9 for p in ok_peers)
            print(f"{n:>7} ratio: faster peer / ours = {ratios[n]:.1f}x; identical values: {same}")
        elif results["ours"]["ok"]:
            print(f"{n:>7} ratio: no peer finished (ours exact in {results['ours']['seconds']:.0f} s)")
    if 10000 in ratios:
        print(f"ratio at n=10,000: {ratios[10000]:.1f}x vs the faster peer (target >= 5x)")


if __name__ == "__main__":
    main()
