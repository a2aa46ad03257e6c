"""How ``law run`` reports expected failures: the message, no traceback.

luigi logs every exception with its traceback, 20-50 lines through luigi's
own code that bury the one line that matters. For expected errors (bad
input or configuration: :class:`ValueError`, :class:`OSError`; a project
command that failed or was stopped; a container problem) the log record
keeps the exception's message, which names the problem and the fix, and
drops the traceback. ``DEEPCLEAN_DEBUG=1`` keeps tracebacks.
"""

from __future__ import annotations

import logging
import os

from deepclean.process import CommandFailed, Interrupted, OutputsMissing
from deepclean.sandbox import ContainerError

EXPECTED: tuple[type[BaseException], ...] = (
    ValueError,
    OSError,
    CommandFailed,
    Interrupted,
    OutputsMissing,
    ContainerError,
)
LOGGERS = ("luigi-interface", "luigi")


class ExpectedErrorFilter(logging.Filter):
    """Replace the traceback of an expected error by its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or os.environ.get("DEEPCLEAN_DEBUG"):
            return True
        error = record.exc_info[1]
        if isinstance(error, EXPECTED):
            record.msg = f"{record.getMessage()}\n{type(error).__name__}: "
            record.msg += f"{error}\n(set DEEPCLEAN_DEBUG=1 for the traceback)"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    """Add the filter to luigi's loggers (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ExpectedErrorFilter) for f in logger.filters):
            logger.addFilter(ExpectedErrorFilter())
