"""Thread counts from the cores a shared machine leaves free."""

import os

import pytest
import torch

from deepclean_engine import threads


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine of 4 cores, with a cgroup file and a load file."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    cpu_max = tmp_path / "cpu.max"
    loadavg = tmp_path / "loadavg"
    cpu_max.write_text("max 100000\n")
    loadavg.write_text("0.50 0.40 0.30 1/120 4242\n")
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", cpu_max)
    monkeypatch.setattr(threads, "LOADAVG", loadavg)
    monkeypatch.delenv(threads.THREADS_VARIABLE, raising=False)
    return cpu_max, loadavg


def test_quiet_machine_uses_every_core(machine):
    assert threads.available_cores() == 4
    assert threads.busy_cores(interval=0) == 0
    assert threads.choose_threads() == 4


def test_cgroup_quota_caps_the_cores(machine):
    cpu_max, _ = machine
    cpu_max.write_text("150000 100000\n")
    assert threads.available_cores() == 2


def test_other_running_processes_take_cores(machine):
    _, loadavg = machine
    loadavg.write_text("2.00 1.00 0.50 3/120 4242\n")
    assert threads.choose_threads() == 2
    loadavg.write_text("9.00 9.00 9.00 9/120 4242\n")
    assert threads.choose_threads() == 1


def test_requested_and_environment_win(machine, monkeypatch):
    assert threads.choose_threads(3) == 3
    monkeypatch.setenv(threads.THREADS_VARIABLE, "2")
    assert threads.choose_threads() == 2
    with pytest.raises(ValueError, match="at least 1"):
        threads.choose_threads(0)


def test_configure_sets_torch(machine):
    before = torch.get_num_threads()
    try:
        assert threads.configure_threads(1) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
