"""The `egrid` command lines of docs/cluster.md, with a test's bucket, job and address put in."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

CLUSTER_DOC = Path(__file__).resolve().parents[2] / "docs" / "cluster.md"


def doc_commands(values: dict[str, str]) -> dict[str, list[str]]:
    """Each ``egrid`` line of the doc's bash blocks, by subcommand, as an argument list
    (without ``egrid``), with ``values`` replacing the doc's placeholders (longest first)."""
    blocks = re.findall(r"```bash\n(.*?)```", CLUSTER_DOC.read_text(encoding="utf-8"), flags=re.S)
    out: dict[str, list[str]] = {}
    for line in "\n".join(blocks).splitlines():
        line = line.split("  #")[0].strip()
        if not line.startswith("egrid "):
            continue
        for placeholder in sorted(values, key=len, reverse=True):
            line = line.replace(placeholder, values[placeholder])
        args = shlex.split(line)[1:]
        assert args[0] not in out, f"docs/cluster.md shows `egrid {args[0]}` twice"
        out[args[0]] = args
    return out
