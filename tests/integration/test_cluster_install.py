"""cluster.yaml's setup commands resolve: each run through pip's resolver with --dry-run
(nothing installed), as a fresh node would run it, against the package index."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MOUNT = "/home/ray/embodiment-grid"  # where cluster.yaml mounts this repository


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10):
            return True
    except OSError:
        return False


def _setup_commands() -> list[list[str]]:
    cfg = yaml.safe_load((REPO / "cluster.yaml").read_text())
    out = []
    for command in cfg["setup_commands"]:
        words = shlex.split(command.replace(MOUNT, str(REPO)))
        words = [w for w in words if "=" not in w or w.startswith("-")]  # DS_BUILD_OPS=0: an environment prefix
        assert words[:2] == ["pip", "install"], command
        out.append(words[2:])
    return out


def test_cluster_setup_commands_resolve(tmp_path, capsys):
    if not _reachable("https://pypi.org/simple/pip/"):
        pytest.skip("the package index (pypi.org) is not reachable from here: cluster.yaml's setup not resolved")
    for i, args in enumerate(_setup_commands()):
        if "--index-url" in args:
            index = args[args.index("--index-url") + 1]
            if not _reachable(index + "/torch/"):
                # the CUDA index is not reachable here: resolve the same pin from PyPI (the same
                # release, its default build), and say so
                with capsys.disabled():
                    print(f"\n{index} not reachable: setup command {i + 1} resolved against PyPI instead")
                cut = args.index("--index-url")
                args = args[:cut] + args[cut + 2 :]
        report = tmp_path / f"report-{i}.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--report",
                str(report),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=900,
            env={"DS_BUILD_OPS": "0", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        )
        assert done.returncode == 0, f"setup command {i + 1} does not resolve:\n{done.stderr[-3000:]}"
        resolved = {
            item["metadata"]["name"].lower(): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]
        }
        if "torch" in resolved:
            assert resolved["torch"].split("+")[0] == "2.13.0"
