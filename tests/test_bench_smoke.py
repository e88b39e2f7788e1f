"""Every benchmark still runs: each in its `--smoke` mode as a child process, printing its table.

Speed is not asserted here (the full runs are by hand, on a quiet machine); only that each
script works end to end against the real server and reports success (exit status 0 means
every frame delivered, every webhook stored, replay in order and complete).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# script -> (extra arguments, lines its output must contain)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "fanout": (
        [],
        ["| python-socketio ", "| switchboard ", "switchboard vs python-socketio"],
    ),
    "peer_socketio": ([], ["| python-socketio "]),
    "ingest": ([], ["| sqlite ", "| postgres ", "4 back to back |", "200/s paced |"]),
    "connections": ([], ["| database ", "| sqlite "]),
    "replay": ([], ["| database ", "| sqlite "]),
    "campaign": ([], ["Campaigns: enqueue and dispatch", "| dispatch: 2 worker processes "]),
}


@pytest.mark.parametrize("name", sorted(BENCHES))
def test_benchmark_smoke_run_prints_its_table(name: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--smoke", *BENCHES[name][0]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a failure guard only: a smoke run takes seconds
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    for line in BENCHES[name][1]:
        assert line in result.stdout, result.stdout
