"""Helpers shared by the pipeline tests."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(name="wait_until_gone")
def wait_until_gone_fixture():
    """:func:`wait_until_gone`, for tests that stop processes."""
    return wait_until_gone


@pytest.fixture
def law_run(tmp_path):
    """Run ``law run TASK ARGS...`` from the repository (law's home in
    ``tmp_path``); returns the completed process."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        law = Path(sys.executable).parent / "law"
        return subprocess.run(
            [str(law), "run", *args],
            cwd=REPO,
            env={**os.environ, "LAW_HOME": str(tmp_path / "law")},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
