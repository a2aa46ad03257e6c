"""Run folders: results are kept apart by the settings that made them.

Each task that writes results (data, model, cleaned frames, report) does so
in a folder named by a *run name*: by default a readable label plus a
fingerprint of every setting that changes the result (channels, bands,
spans, the content of the YAML and coupling files, the model it cleans
with, ...), so a re-run with other settings writes into a new folder
instead of returning old results, as aframe's run directories and law's
``store_parts`` do. The settings are recorded as ``settings.json`` in the
folder; a folder whose recorded settings differ from the task's (possible
only with an explicit run name) is refused, naming what differs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

logger = logging.getLogger("luigi-interface")

SETTINGS_NAME = "settings.json"
FINGERPRINT_LENGTH = 10


class RunSettingsError(ValueError):
    """A run folder holds results made with other settings."""


def fingerprint(settings: Any) -> str:
    """Short hex digest of JSON-serialisable ``settings`` (key order
    ignored)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_LENGTH]


_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (cached while size and mtime stay).

    Raises:
        FileNotFoundError: naming the file.
    """
    path = os.path.abspath(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def content_identity(path: str | os.PathLike) -> dict[str, Any]:
    """File name and content digest: the same YAML or model copied
    elsewhere names the same run."""
    return {"name": os.path.basename(path), "sha256": file_digest(path)}


def data_file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """Path, size and modification time of a (large) data file: reading
    every byte of a multi-GB file only to name a folder costs too much."""
    stat = os.stat(path)
    return {
        "path": os.path.abspath(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }


def differences(
    recorded: dict[str, Any], current: dict[str, Any], prefix: str = ""
) -> list[str]:
    """``key: old -> new`` for every setting that differs."""
    lines = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            lines.extend(differences(old, new, f"{prefix}{key}."))
        elif old != new:
            lines.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return lines


def write_json_atomic(fname: str | os.PathLike, content: Any) -> None:
    """Write JSON through a temporary name in the same folder, fsynced and
    renamed, so the file is either the old one or the whole new one.

    The temporary is named as :mod:`deepclean_io.atomic` names them
    (that package is not imported here: it brings h5py and numpy, and the
    pipeline's tasks stay light), so the projects' clean-up finds it.
    """
    fname = Path(fname)
    fname.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0] or "localhost"
    partial = fname.with_name(f".{fname.name}.{host}.{os.getpid()}.partial")
    try:
        with open(partial, "w") as stream:
            json.dump(content, stream, indent=2, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, fname)
    finally:
        partial.unlink(missing_ok=True)


def recorded_settings(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The settings recorded in a run folder, None if there are none."""
    path = Path(folder) / SETTINGS_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())["settings"]
    except (ValueError, KeyError) as error:
        raise RunSettingsError(
            f"{path} is unreadable ({error}); the folder's results cannot be "
            "attributed to settings: remove the folder and re-run"
        ) from None


def check_settings(
    folder: str | os.PathLike, run_name: str, settings: dict[str, Any]
) -> None:
    """Refuse a run folder that holds results of other settings.

    Raises:
        RunSettingsError: listing the differing settings and the fix.
    """
    recorded = recorded_settings(folder)
    if recorded is None:
        return
    changed = differences(recorded, json.loads(json.dumps(settings)))
    if changed:
        raise RunSettingsError(
            f"run folder {folder} ({run_name!r}) holds results made with "
            "other settings:\n  "
            + "\n  ".join(changed)
            + "\nchoose another run name (or leave it empty to derive one "
            "from the settings), or remove the folder to redo the run"
        )


def record_settings(
    folder: str | os.PathLike, run_name: str, settings: dict[str, Any]
) -> None:
    """Check, then write ``settings.json`` into the run folder."""
    check_settings(folder, run_name, settings)
    write_json_atomic(
        Path(folder) / SETTINGS_NAME,
        {"run_name": run_name, "settings": settings},
    )
