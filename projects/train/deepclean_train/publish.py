"""Publish an exported model into the folder the online cleaner reads.

``deepclean-train publish RUN/model.pt --model_dir D`` validates the
model, copies it to ``D/model.pt`` and then writes ``D/model.json``: its
metadata plus ``version`` (one more than the version published in ``D``,
1 for the first), ``published`` (UTC ISO time), ``sha256`` (of the copy)
and ``source`` (absolute path of the model). Both files are written
atomically (a temporary name in ``D``, fsync, rename), ``model.json``
last; the format and its reader, :func:`deepclean_engine.exported.
published_model`, are in :mod:`deepclean_engine.exported`.

A reader polling ``D`` sees the previous publication until the new
``model.pt`` is renamed into place, then no complete publication (the
old ``model.json`` does not name the new model's SHA-256) until the new
``model.json`` follows. A publication killed while copying leaves the
previous one untouched; one killed between the two renames leaves ``D``
without a complete publication until the model is published again.

Publishing a model that is already published publishes it again with the
next version: a publication is an explicit operator action (e.g. to make
an online cleaner that rejected a version retry it), and the versions
record every one. Publish into ``D`` from one process at a time.
"""

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser

from deepclean_engine.exported import (
    MODEL_JSON_NAME,
    MODEL_NAME,
    file_sha256,
    load_exported_model,
    read_publication,
)
from deepclean_io.atomic import (
    atomic_output,
    check_writable,
    remove_stale_partials,
    write_json_atomic,
)


def publish(model: Path, model_dir: Path) -> dict[str, Any]:
    """Publish an exported model into ``model_dir`` for online cleaning.

    Args:
        model: an exported ``model.pt`` (written by ``deepclean-train
            fit``).
        model_dir: the folder the online cleaner reads models from;
            created if missing.

    Returns:
        The publication record written to ``{model_dir}/model.json``:
        the model's metadata plus ``version``, ``published``, ``sha256``
        and ``source``.

    Raises:
        FileNotFoundError: ``model`` does not exist.
        ValueError: ``model`` is not an exported model, changed while it
            was copied, ``model_dir`` cannot be written or holds a
            ``model.json`` that is not a publication record.
    """
    source = Path(model).resolve()
    model_dir = Path(model_dir)
    _, metadata = load_exported_model(source)
    check_writable(model_dir, "--model_dir")
    remove_stale_partials(model_dir)
    previous = read_publication(model_dir)
    version = 1 if previous is None else previous["version"] + 1
    with atomic_output(model_dir / MODEL_NAME) as partial:
        shutil.copyfile(source, partial)
        try:
            unchanged = load_exported_model(partial)[1] == metadata
        except ValueError:
            unchanged = False
        if not unchanged:
            raise ValueError(
                f"{source} changed while it was copied into {model_dir}; "
                "publish it again once it is complete"
            )
        digest = file_sha256(partial)
    record = {
        **metadata,
        "version": version,
        "published": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": digest,
        "source": str(source),
    }
    write_json_atomic(model_dir / MODEL_JSON_NAME, record)
    return record


def run_publish(args: list[str]) -> dict[str, Any]:
    """``deepclean-train publish MODEL --model_dir D``: parse and publish.

    Prints one line naming the published version.

    Returns:
        The publication record (see :func:`publish`).
    """
    parser = ArgumentParser(
        prog="deepclean-train publish",
        description=(
            "Publish an exported model.pt into the folder an online "
            "cleaner reads (model.pt, then model.json with the next "
            "version and the model's SHA-256)."
        ),
    )
    parser.add_argument(
        "model", type=Path, help="exported model.pt to publish"
    )
    parser.add_function_arguments(publish, skip={"model"}, as_group=False)
    config = parser.parse_args(args)
    record = publish(config.model, config.model_dir)
    print(
        f"published {record['source']} as version {record['version']} in "
        f"{config.model_dir} (sha256 {record['sha256']})"
    )
    return record
