"""What every ``deepclean-*`` command does around its work.

- Expected errors (bad input: :class:`ValueError`, :class:`OSError` and
  their subclasses, which the projects raise with a message that names
  the problem and the fix) print ``{command}: error: {message}`` and exit
  with status 1, without a traceback; ``--debug`` (anywhere on the command
  line) or ``DEEPCLEAN_DEBUG=1`` shows it.
- SIGTERM (batch preemption, ``timeout``) raises :class:`Terminated` in
  the main thread, so ``finally`` blocks remove temporary files, and the
  command exits with status 143 (128 + SIGTERM): a job that did not finish
  never reports success.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger("deepclean_io")

DEBUG_FLAG = "--debug"
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
TERMINATED_STATUS = 128 + signal.SIGTERM


class Terminated(BaseException):
    """The process received SIGTERM and stops before finishing its job.

    A :class:`BaseException`, like :class:`KeyboardInterrupt`: raised from
    the signal handler wherever the program happens to be, it must not be
    caught (and turned into another error) by the ``except Exception``
    blocks of the libraries it passes through.
    """

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def debug_requested(argv: Sequence[str]) -> bool:
    """Whether tracebacks were asked for (``--debug`` or the variable)."""
    variable = os.environ.get("DEEPCLEAN_DEBUG", "").lower()
    return DEBUG_FLAG in argv or variable in ("1", "true", "yes")


def run_command_line(
    name: str,
    main: Callable[[list[str]], object],
    argv: Sequence[str] | None = None,
) -> object:
    """Run ``main(argv)`` as the command ``name``.

    Args:
        name: command name for messages, e.g. ``deepclean-clean``.
        main: the work; takes the arguments without ``--debug``.
        argv: arguments; the process's command line when None.

    Returns:
        What ``main`` returned.

    Raises:
        SystemExit: status 1 on an expected error, 143 on SIGTERM.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [argument for argument in argv if argument != DEBUG_FLAG]
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = None
    if in_main_thread:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return main(argv)
    except Terminated:
        print(
            f"{name}: stopped by SIGTERM before finishing; finished outputs "
            "are complete and a re-run resumes from them",
            file=sys.stderr,
        )
        raise SystemExit(TERMINATED_STATUS) from None
    except EXPECTED_ERRORS as error:
        if debug:
            raise
        logger.debug("%s failed", name, exc_info=True)
        print(
            f"{name}: error: {error}\n(add {DEBUG_FLAG} for the traceback)",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
