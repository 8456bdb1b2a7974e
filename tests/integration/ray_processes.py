"""Starting and stopping a test's own Ray cluster, and only that one."""

from __future__ import annotations


def session_of_driver(pid: int) -> str:
    """What names the Ray a driver process started (``ray.init`` or ``ray start``) in its
    processes' command lines: its session folder ends in the starting process's pid."""
    return f"_{pid}/logs"


def latest_session() -> str:
    """The session folder of the Ray started last on this machine (right after ``ray start``)."""
    import os

    return os.path.realpath("/tmp/ray/session_latest") + "/logs"


def stop_ray_under(tmpdir: str) -> list[int]:
    """Kill the Ray processes (and their children) whose command line names ``tmpdir``
    (a session's folder, see :func:`session_of_driver`): the cluster a test started, and
    only that one. ``ray stop --force`` would kill every Ray of this user on the machine,
    a running job of theirs included.

    Returns:
        The pids killed.
    """
    import psutil

    victims: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if tmpdir in " ".join(proc.info["cmdline"] or []):
                victims[proc.pid] = proc
                for child in proc.children(recursive=True):
                    victims[child.pid] = child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for proc in victims.values():
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(list(victims.values()), timeout=15)
    return sorted(victims)
