"""A spawned server as the processes it is made of: their CPU time and their memory.

A server here may be several processes: uvicorn with `--workers N` is a supervisor and N
web processes, and every chatsite web process starts a worker process of its own that
parses large request bodies (chat/parsing.py). These read Linux's /proc.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ServerProcess:
    """One process of a server: what it is, its CPU seconds so far and its peak memory."""

    pid: int
    role: str  # "web", "uvicorn supervisor", "body parser" or "resource tracker"
    cpu: float
    peak_rss_mb: float


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) one process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        found += map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return found


def peak_rss_mb(pid: int) -> float:
    """The most resident memory the process has held (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def role_of(pid: int, parent_role: str | None) -> str:
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if any(b"resource_tracker" in part for part in command):
        return "resource tracker"
    if parent_role is None:  # the process this script started
        return "uvicorn supervisor" if b"--workers" in command else "web"
    return "web" if parent_role == "uvicorn supervisor" else "body parser"


def server_processes(pid: int) -> list[ServerProcess]:
    """The process `pid` and every process under it, as they are now."""
    found, pending = [], [(pid, None)]
    while pending:
        current, parent_role = pending.pop()
        try:
            role = role_of(current, parent_role)
            found.append(ServerProcess(current, role, process_cpu(current), peak_rss_mb(current)))
            pending += [(child, role) for child in children(current)]
        except (FileNotFoundError, ProcessLookupError):
            continue  # a process that ended meanwhile
    return found


def server_cpu(pid: int) -> float:
    """CPU seconds of the server and of every process it started, so far."""
    return sum(process.cpu for process in server_processes(pid))


def cpu_since(before: list[ServerProcess], after: list[ServerProcess]) -> dict[int, float]:
    """Each process's CPU seconds between two looks (a process new since, all of its own)."""
    earlier = {process.pid: process.cpu for process in before}
    return {process.pid: process.cpu - earlier.get(process.pid, 0.0) for process in after}


def describe(before: list[ServerProcess], after: list[ServerProcess], wall: float) -> list[str]:
    """One line per role: how many processes, the CPU each used (% of a core), peak memory."""
    used = cpu_since(before, after)
    lines = []
    for role in dict.fromkeys(process.role for process in after):
        mine = [process for process in after if process.role == role]
        cpu = ", ".join(f"{100 * used[process.pid] / wall:.0f}%" for process in mine)
        rss = ", ".join(f"{process.peak_rss_mb:.0f}" for process in mine)
        lines.append(f"{len(mine)} × {role}: CPU {cpu} of a core; peak RSS {rss} MiB")
    return lines
