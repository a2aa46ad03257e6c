import signal
import subprocess
import sys
import textwrap
import time

import pytest

from deepclean.process import CommandFailed, project_executable, run_command


def test_output_streamed_and_logged(tmp_path, capfd):
    log = tmp_path / "logs" / "job.log"
    run_command(
        [sys.executable, "-c", "print('hello'); print('world')"],
        log_file=log,
    )
    assert "hello\nworld" in capfd.readouterr().out
    assert log.read_text() == "hello\nworld\n"


def test_failure_carries_exit_code_and_tail(capfd):
    script = "import sys\nfor i in range(100): print(f'line {i}')\nsys.exit(3)"
    with pytest.raises(CommandFailed) as err:
        run_command([sys.executable, "-c", script])
    assert err.value.returncode == 3
    assert "line 99" in err.value.tail
    assert "line 0\n" not in err.value.tail
    assert "exit code 3" in str(err.value)


def test_environment_passed():
    with pytest.raises(CommandFailed) as err:
        run_command(
            [sys.executable, "-c", "import os,sys; sys.exit(os.environ['X'])"],
            env={"X": "seen"},
        )
    assert "seen" in err.value.tail


def test_project_executable():
    assert project_executable("law").endswith("law")
    with pytest.raises(FileNotFoundError, match="make sync"):
        project_executable("deepclean-no-such-command")


def test_sigterm_forwarded_to_the_command_and_its_children(
    tmp_path, wait_until_gone
):
    """A signalled pipeline stops the command's whole process group,
    waits for it, and fails instead of returning."""
    child_pid = tmp_path / "child.pid"
    script = textwrap.dedent(
        f"""
        from deepclean.process import run_command
        run_command(["bash", "-c", "sleep 120 & echo $! > {child_pid}; wait"])
        print("returned normally")
        """
    )
    pipeline = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not child_pid.exists() or not child_pid.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sleeper = int(child_pid.read_text())
    pipeline.send_signal(signal.SIGTERM)
    out, err = pipeline.communicate(timeout=30)
    assert pipeline.returncode != 0
    assert "returned normally" not in out
    assert "Interrupted: stopped by SIGTERM" in err
    assert wait_until_gone(sleeper)
