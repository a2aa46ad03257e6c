"""Running a project's command line from a task, with its output streamed."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

logger = logging.getLogger("luigi-interface")

TAIL_BYTES = 8192
TAIL_LINES = 40


class CommandFailed(RuntimeError):
    """A project command exited with a non-zero status."""

    def __init__(self, argv: Sequence[str], returncode: int, tail: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.tail = tail
        super().__init__(
            f"command failed with exit code {returncode}: "
            f"{shlex.join(self.argv)}\n--- last lines of its output ---\n"
            f"{tail}"
        )


class OutputsMissing(RuntimeError):
    """A command reported success but its outputs are missing."""


def project_executable(name: str) -> str:
    """Path of a project's console script.

    The environment that runs the pipeline comes first (the ``bin`` folder
    beside the running interpreter), then ``PATH``.
    """
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} is not installed in this environment; run `make sync` "
            "(or use --image with the project's container)"
        )
    return found


def _last_lines(tail: bytes) -> str:
    text = tail.decode(errors="replace").replace("\r", "\n")
    return "\n".join(text.splitlines()[-TAIL_LINES:])


class Interrupted(RuntimeError):
    """The pipeline was signalled while a command ran; the command was
    stopped with the same signal and the task fails."""


FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@contextmanager
def forwarding_signals(process: subprocess.Popen) -> Iterator[list[int]]:
    """Forward SIGTERM, SIGINT and SIGHUP to ``process``'s process group.

    The command runs in a session of its own, so a signal sent to the
    pipeline (batch preemption, ``timeout``, Ctrl-C) reaches the command
    and everything it started, which stop, and the pipeline waits for
    them instead of leaving them running re-parented. Yields the list of
    signals received. Outside the main thread, where Python cannot set
    handlers, nothing is forwarded.
    """
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        logger.warning(
            "received %s: stopping the command (pid %d) and its children",
            signal.Signals(signum).name,
            process.pid,
        )
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_process(
    argv: Sequence[str],
    log_file: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """Run ``argv`` in its own session, streaming its output to stdout and
    ``log_file``, with signals forwarded (:func:`forwarding_signals`).

    Output is passed through as it arrives, so progress bars stay live.

    Returns:
        The exit status and the last lines of the output.

    Raises:
        Interrupted: the pipeline was signalled; the command has stopped.
    """
    argv = [str(a) for a in argv]
    logger.info("running %s", shlex.join(argv))
    log = None
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        log = open(log_file, "ab")  # noqa: SIM115
    tail = b""
    try:
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        assert process.stdout is not None
        out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
        with forwarding_signals(process) as received:
            while chunk := process.stdout.read1(65536):
                if out is not None:
                    out.write(chunk)
                    out.flush()
                else:
                    sys.stdout.write(chunk.decode(errors="replace"))
                if log is not None:
                    log.write(chunk)
                tail = (tail + chunk)[-TAIL_BYTES:]
            returncode = process.wait()
    finally:
        if log is not None:
            log.close()
    if received:
        names = ", ".join(signal.Signals(s).name for s in received)
        raise Interrupted(
            f"stopped by {names} while running {shlex.join(argv)} (exit "
            f"code {returncode}); finished outputs are kept and a re-run "
            "resumes"
        )
    return returncode, _last_lines(tail)


def run_command(
    argv: Sequence[str],
    log_file: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """:func:`run_process`, failing on a non-zero exit status.

    Raises:
        CommandFailed: on a non-zero exit, with the tail of the output.
        Interrupted: the pipeline was signalled.
    """
    returncode, tail = run_process(argv, log_file, env)
    if returncode != 0:
        raise CommandFailed(argv, returncode, tail)
