"""Atomic file writing: a temporary name in the destination folder, fsync,
then rename, so a reader never sees a partial file under the final name.

Temporaries are named ``.{name}.{host}.{pid}.partial``. A writer that is
killed (SIGKILL, a node failure) cannot remove its temporary;
:func:`remove_stale_partials` does, for every writer of this host whose
process is gone, and every command that writes into a folder calls it
first. Temporaries of other hosts (jobs of a batch system sharing a
folder) are left alone: their processes cannot be seen from here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger("deepclean_io")

PARTIAL_PATTERN = re.compile(
    r"^\.(?P<name>.+)\.(?P<host>[^.]+)\.(?P<pid>\d+)\.partial$"
)


def host_label() -> str:
    """This host's name as it appears in temporaries (no dots)."""
    return socket.gethostname().split(".")[0] or "localhost"


def partial_path(fname: str | os.PathLike, pid: int | None = None) -> Path:
    """The temporary name process ``pid`` of this host (default: this
    process) writes ``fname`` under."""
    fname = Path(fname)
    pid = os.getpid() if pid is None else pid
    return fname.with_name(f".{fname.name}.{host_label()}.{pid}.partial")


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) * path.is_dir()
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    except OSError:
        # some file systems (and folders on some platforms) refuse fsync
        pass
    finally:
        os.close(descriptor)


@contextmanager
def atomic_output(fname: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``fname`` through.

    When the block ends normally the temporary file is synced to disk and
    renamed to ``fname`` (replacing any older file); when it raises, the
    temporary file is removed and ``fname`` is untouched.

    Example:
        >>> with atomic_output("model.pt") as partial:
        ...     torch.save(state, partial)
    """
    fname = Path(fname)
    partial = partial_path(fname)
    try:
        yield partial
        if not partial.exists():
            raise FileNotFoundError(
                f"nothing was written to {partial} for {fname}"
            )
        _fsync(partial)
        os.replace(partial, fname)
        _fsync(fname.parent)
    finally:
        partial.unlink(missing_ok=True)


def write_text_atomic(fname: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``fname`` atomically; returns the path."""
    with atomic_output(fname) as partial:
        partial.write_text(text)
    return Path(fname)


def write_json_atomic(fname: str | os.PathLike, content: object) -> Path:
    """Write ``content`` as indented JSON to ``fname`` atomically."""
    return write_text_atomic(fname, json.dumps(content, indent=2) + "\n")


def check_writable(folder: str | os.PathLike, option: str) -> Path:
    """Create ``folder`` and check that files can be written into it, so
    that a job fails before its work rather than when it saves it.

    Args:
        folder: the output folder.
        option: the command-line option that names it, for the message.

    Returns:
        The folder.

    Raises:
        PermissionError: naming the folder, the reason and the option.
    """
    folder = Path(folder)
    probe = partial_path(folder / ".write-probe")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(
            f"the output folder {folder} is not writable ({error}); pass a "
            f"writable {option}"
        ) from None
    return folder


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(
    folder: str | os.PathLike, recursive: bool = False
) -> list[Path]:
    """Delete temporaries left in ``folder`` by writers that were killed.

    A temporary whose writing process still runs, or that another host
    writes, is kept, so jobs writing into one folder do not break each
    other.

    Args:
        folder: folder to clean up; nothing happens if it does not exist.
        recursive: also look in sub-folders.

    Returns:
        The removed files (each is also logged with its size).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    candidates = (
        folder.rglob(".*.partial") if recursive else folder.glob(".*.partial")
    )
    removed = []
    for path in sorted(candidates):
        match = PARTIAL_PATTERN.match(path.name)
        if (
            match is None
            or match["host"] != host_label()
            or _process_alive(int(match["pid"]))
        ):
            continue
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        logger.warning(
            "removed %s (%.1f MB) left by an interrupted writer",
            path,
            size / 1e6,
        )
        removed.append(path)
    return removed
