"""Running a project's command line from a task, with its output streamed."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
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


def run_command(
    argv: Sequence[str],
    log_file: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``argv``, streaming its output to stdout and ``log_file``.

    Output is passed through as it arrives, so progress bars stay live.

    Raises:
        CommandFailed: on a non-zero exit, with the tail of the output.
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
        )
        assert process.stdout is not None
        out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
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
    if returncode != 0:
        raise CommandFailed(argv, returncode, _last_lines(tail))
