"""The exported model file shared by training, cleaning and the online
cleaner.

``model.pt`` is TorchScript in eval mode mapping raw witnesses
``(batch, channels, kernel)`` to predicted noise in strain units
``(batch, kernel)``. Its metadata (channel order, sample rate, bands, the
:class:`~deepclean_engine.CleaningConfig` as ``cleaning``, training span,
versions) is stored inside the file as the extra file ``metadata.json``.
Loading it needs torch only.

Both files are written atomically (:mod:`deepclean_io.atomic`),
``model.json`` first and ``model.pt`` last: an existing ``model.pt`` is
always complete, and the export that wrote it finished.

A model folder the online cleaner reads (``deepclean-train publish``)
holds the published ``model.pt`` and, written after it, ``model.json``:
the model's metadata plus ``version`` (1, 2, ...), ``published`` (UTC ISO
time), ``sha256`` (of ``model.pt``) and ``source`` (the file it was copied
from). A ``model.json`` whose ``sha256`` is not that of ``model.pt`` means
a publication is in progress (or was interrupted); readers wait for it
(:func:`published_model`).
"""

import copy
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import torch

from deepclean_io.atomic import atomic_output, write_text_atomic

MODEL_NAME = "model.pt"
"""The exported model's file name (in a run folder and a model folder)."""
MODEL_JSON_NAME = "model.json"
"""Its metadata beside it; in a model folder, the publication record."""
METADATA_NAME = "metadata.json"
"""The metadata's name inside ``model.pt``."""
CLASSICAL_NAME = "classical.h5"
"""A hybrid model's classical stage inside ``model.pt`` (NOMAD's model
file, when the metadata's ``subtracted`` is ``"NOMAD"``)."""
PUBLICATION_KEYS = ("version", "published", "sha256", "source")
"""What a publication adds to the model's metadata in ``model.json``."""


def save_exported_model(
    module: torch.nn.Module,
    metadata: dict[str, Any],
    path: str | Path,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Script ``module`` in eval mode and save it with its metadata.

    Args:
        module: maps ``(batch, channels, kernel)`` witnesses to
            ``(batch, kernel)`` noise in strain units; left unchanged
            (a copy is scripted on the CPU).
        metadata: JSON-serialisable metadata (see the module docstring).
        path: destination ``model.pt``; ``model.json`` beside it receives
            the metadata too, for people and tools that do not load torch.
        extra_files: further files stored inside ``model.pt`` by name
            (e.g. :data:`CLASSICAL_NAME`), read back with
            :func:`read_extra_file`.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metadata, indent=2)
    scripted = torch.jit.script(copy.deepcopy(module).cpu().eval())
    write_text_atomic(path.with_suffix(".json"), text + "\n")
    with atomic_output(path) as partial:
        torch.jit.save(
            scripted,
            str(partial),
            _extra_files={**(extra_files or {}), METADATA_NAME: text},
        )
    return path


def read_extra_file(path: str | Path, name: str) -> bytes | None:
    """A file stored inside an exported ``model.pt`` by
    :func:`save_exported_model`; None when it holds none of that name."""
    with zipfile.ZipFile(path) as archive:
        for entry in archive.namelist():
            if entry.split("/")[-2:] == ["extra", name]:
                return archive.read(entry)
    return None


def _not_a_model(path: Path) -> str | None:
    """Why ``path`` cannot be an exported model, if its layout says so.

    TorchScript files are zip archives holding ``constants.pkl``;
    :func:`torch.save` files (Lightning checkpoints) hold ``data.pkl``
    only; a truncated archive has lost its closing directory.
    """
    if not zipfile.is_zipfile(path):
        return (
            f"{path} is truncated or not a TorchScript model (not a "
            "complete zip archive); re-export it or re-train"
        )
    with zipfile.ZipFile(path) as archive:
        names = [Path(name).name for name in archive.namelist()]
    if "data.pkl" in names and "constants.pkl" not in names:
        return (
            f"{path} is a training checkpoint (a torch.save file), not an "
            "exported model; pass the model.pt that deepclean-train fit "
            "writes in the same output folder"
        )
    return None


def load_exported_model(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported model and its metadata.

    Args:
        path: an exported ``model.pt``.
        device: device to load the model onto.

    Returns:
        ``(module, metadata)``: the module in eval mode and the metadata
        dictionary.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an exported model (a data or text
            file, a truncated ``model.pt``, a training checkpoint) or
            holds no DeepClean metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"exported model {path} does not exist; pass the model.pt "
            "written by deepclean-train fit"
        )
    extra_files = {METADATA_NAME: ""}
    try:
        module = torch.jit.load(
            str(path), map_location=device, _extra_files=extra_files
        )
    except RuntimeError as error:
        reason = _not_a_model(path)
        if reason is None:
            raise
        raise ValueError(reason) from error
    if not extra_files[METADATA_NAME]:
        raise ValueError(
            f"{path} holds no {METADATA_NAME}; it was not exported by "
            "deepclean-train"
        )
    return module.eval(), json.loads(extra_files[METADATA_NAME])


def file_sha256(path: str | Path) -> str:
    """Hexadecimal SHA-256 of the bytes of ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_publication(model_dir: str | Path) -> dict[str, Any] | None:
    """The record ``{model_dir}/model.json``, not checked against
    ``model.pt`` (see :func:`published_model`).

    Args:
        model_dir: a folder models are published into.

    Returns:
        The record (metadata and :data:`PUBLICATION_KEYS`), or None when
        nothing was published there.

    Raises:
        ValueError: ``model.json`` is unreadable or not a publication
            record (e.g. the folder is a training run's output).
    """
    path = Path(model_dir) / MODEL_JSON_NAME
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path} cannot be read ({error}); publish the model again "
            "with deepclean-train publish"
        ) from error
    if not isinstance(record, dict):
        record = {}
    missing = [key for key in PUBLICATION_KEYS if key not in record]
    if missing or not isinstance(record["version"], int):
        problem = (
            f"no {', '.join(missing)}" if missing else "a non-integer version"
        )
        raise ValueError(
            f"{path} is not a publication record ({problem}); publish "
            "models into a folder of their own with deepclean-train publish"
        )
    return record


def published_model(
    model_dir: str | Path,
) -> tuple[Path, dict[str, Any]] | None:
    """The model published in ``model_dir`` and its record, if complete.

    Args:
        model_dir: a folder models are published into.

    Returns:
        ``(model.pt path, record)``, the record being ``model.json``
        (metadata and :data:`PUBLICATION_KEYS`); None when nothing is
        published, or while a publication is in progress: ``model.pt`` is
        missing or its SHA-256 is not the record's (an interrupted
        publication stays so until the model is published again).

    Raises:
        ValueError: ``model.json`` is unreadable or not a publication
            record.
    """
    record = read_publication(model_dir)
    if record is None:
        return None
    model = Path(model_dir) / MODEL_NAME
    try:
        digest = file_sha256(model)
    except FileNotFoundError:
        return None
    if digest != record["sha256"]:
        return None
    return model, record
