"""Training runs that can be stopped, killed and resumed without lying.

- :class:`EveryEpochCheckpoint` keeps ``last.ckpt`` one epoch behind at
  most, so a preempted run repeats little.
- :class:`AtomicCheckpointIO` writes every checkpoint through a temporary
  file in its own folder, so ``last.ckpt`` is never half written under
  its final name.
- :class:`ResumableCSVLogger` keeps the rows of ``metrics.csv`` that a
  resumed run restores (Lightning deletes the file when a logger starts).
- :func:`result_settings` and :class:`RecordSettings` store in every
  checkpoint the settings that change what a run trains;
  :func:`resumable_step` refuses to resume a checkpoint written with
  other settings.
"""

import csv
import logging
import os
import reprlib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.plugins import TorchCheckpointIO

from deepclean_io.atomic import atomic_output

logger = logging.getLogger("deepclean_train")

SETTINGS_KEY = "deepclean_settings"
RESULT_SETTINGS = (
    "model",
    "data",
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.accumulate_grad_batches",
    "trainer.gradient_clip_val",
    "trainer.gradient_clip_algorithm",
    "trainer.precision",
    "early_stopping",
)
"""Configuration keys (and sections) that change what a run trains.

The epoch and step limits are among them: they set the length of the
one-cycle learning-rate schedule, whose state a checkpoint carries.
"""
IGNORED_SETTINGS = (
    "model.valid_batch_size",
    "model.init_from",
    "early_stopping.verbose",
    "early_stopping.log_rank_zero_only",
)
"""Keys inside :data:`RESULT_SETTINGS` that do not change the result: the
validation batch size, the fine-tuning start (a checkpoint's weights
already include it) and what early stopping prints."""


class EveryEpochCheckpoint(ModelCheckpoint):
    """Best checkpoints by the monitored metric, and ``last.ckpt`` after
    every validation.

    Lightning 2.6 rewrites ``last.ckpt`` only when a best checkpoint is
    saved in the same step, so after epochs without improvement it lags
    behind and a preempted run repeats them. Here it follows every epoch.
    """

    def on_train_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def on_validation_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def _save_last_if_missed(self, trainer: pl.Trainer) -> None:
        """Save ``last.ckpt`` unless this step saved a checkpoint."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(
                trainer, self._monitor_candidates(trainer)
            )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written through a temporary file in their own folder.

    Lightning's default writes a temporary file in the system's temporary
    folder and moves it into place; across file systems (local ``/tmp``,
    shared output folder) the move copies into the final name, so a kill
    leaves a truncated checkpoint. Here the temporary file sits beside
    the checkpoint and is renamed (:func:`deepclean_io.atomic.
    atomic_output`).
    """

    def save_checkpoint(
        self,
        checkpoint: dict[str, Any],
        path: str | os.PathLike,
        storage_options: Any | None = None,
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically.

        Raises:
            TypeError: ``storage_options`` were given (local files only).
        """
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} writes local files and takes no "
                "storage_options"
            )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as partial:
            torch.save(checkpoint, partial)


def _write_rows(
    path: Path, fieldnames: list[str], rows: list[dict[str, str]]
) -> None:
    """Write a CSV file atomically."""
    with atomic_output(path) as partial, open(partial, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


class MetricsWriter(ExperimentWriter):
    """Lightning's ``metrics.csv`` writer, for runs that resume.

    Rows an earlier run logged before ``resume_step`` are kept (Lightning
    deletes the file), and header changes rewrite the file atomically.

    Args:
        log_dir: folder of ``metrics.csv``.
        resume_step: logging step the run starts from (0: a new run,
            which starts a new file).
    """

    def __init__(self, log_dir: str, resume_step: int) -> None:
        self.resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Keep the earlier rows before ``resume_step``, drop the rest.

        Replaces Lightning's method of this name, which deletes the file.
        """
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with open(path, newline="") as file:
            reader = csv.DictReader(file)
            rows = [
                row for row in reader if int(row["step"]) < self.resume_step
            ]
            fieldnames = list(reader.fieldnames or [])
        if not rows:
            path.unlink()
            return
        self.metrics_keys = fieldnames
        _write_rows(path, fieldnames, rows)

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        """Rewrite the file with a wider header, atomically."""
        path = Path(self.metrics_file_path)
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
        _write_rows(path, fieldnames, rows)


class ResumableCSVLogger(CSVLogger):
    """CSV logger writing ``{save_dir}/metrics.csv``, kept across resumes.

    Args:
        save_dir: output folder.
        resume_step: logging step of the checkpoint the run resumes
            (its ``global_step``); rows logged from it on are dropped,
            as the resumed run logs them again. 0 for a new run.
    """

    def __init__(
        self, save_dir: str | os.PathLike, resume_step: int = 0
    ) -> None:
        super().__init__(save_dir, name="", version="")
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> MetricsWriter:
        """The writer (Lightning's property, with :class:`MetricsWriter`)."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = MetricsWriter(self.log_dir, self.resume_step)
        return self._experiment


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def result_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that change what a run trains, by dotted key.

    Args:
        config: resolved configuration of the ``fit`` subcommand as plain
            data (as ``config.yaml`` holds it).

    Returns:
        ``{"data.train_offset": 0.0, "model.arch.class_path": ..., ...}``
        for the keys under :data:`RESULT_SETTINGS`, less
        :data:`IGNORED_SETTINGS`.
    """
    return {
        key: value
        for key, value in _flatten(config).items()
        if key not in IGNORED_SETTINGS
        and any(
            key == prefix or key.startswith(f"{prefix}.")
            for prefix in RESULT_SETTINGS
        )
    }


class RecordSettings(pl.Callback):
    """Store the run's :func:`result_settings` in every checkpoint.

    Args:
        settings: what :func:`result_settings` returned for this run.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def on_save_checkpoint(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        checkpoint: dict[str, Any],
    ) -> None:
        """Add the settings under :data:`SETTINGS_KEY`."""
        checkpoint[SETTINGS_KEY] = dict(self.settings)


def _describe(settings: Mapping[str, Any], key: str) -> str:
    return reprlib.repr(settings[key]) if key in settings else "absent"


def resumable_step(
    path: str | os.PathLike, settings: dict[str, Any]
) -> int | None:
    """Check that the checkpoint ``path`` may resume a run of ``settings``.

    A truncated or empty checkpoint (not a complete zip archive, as a
    killed copy leaves) must not block re-runs: a warning is logged and
    ``None`` returned, and the run trains from scratch; its first
    ``last.ckpt`` replaces the file. The file is left in place rather
    than moved aside because data-parallel processes each parse the
    command line and must all reach the same decision.

    Args:
        path: the ``--ckpt_path`` given to ``fit``.
        settings: :func:`result_settings` of the run about to start.

    Returns:
        The checkpoint's ``global_step`` (where the resumed run's logging
        continues), or ``None`` to train from scratch.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a readable file that is no Lightning checkpoint of
            deepclean-train, or one written with other settings.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; pass the last.ckpt of an "
            "earlier run, or leave out --ckpt_path to train from scratch"
        )
    if not zipfile.is_zipfile(path):
        logger.warning(
            "checkpoint %s is truncated or empty (not a complete zip "
            "archive); training from scratch, and this run's checkpoints "
            "will replace it",
            path,
        )
        return None
    fix = (
        "write this run into another --trainer.default_root_dir, or "
        f"delete {path} to train from scratch"
    )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, EOFError, KeyError) as error:
        raise ValueError(
            f"{path} is not a Lightning training checkpoint ({error}); "
            "pass the checkpoints/last.ckpt of an earlier run, or leave "
            "out --ckpt_path to train from scratch"
        ) from error
    if not isinstance(checkpoint, dict) or "global_step" not in checkpoint:
        raise ValueError(
            f"{path} is not a Lightning training checkpoint (no "
            "global_step); pass the checkpoints/last.ckpt of an earlier "
            "run, or leave out --ckpt_path to train from scratch"
        )
    recorded = checkpoint.get(SETTINGS_KEY)
    if recorded is None:
        raise ValueError(
            f"cannot resume from {path}: it records no settings (written "
            "by an older deepclean-train or another program), so it may "
            f"belong to another configuration; {fix}"
        )
    differing = [
        f"{key}: {_describe(recorded, key)} in the checkpoint, "
        f"{_describe(settings, key)} now"
        for key in sorted(set(recorded) | set(settings))
        if (key in recorded, recorded.get(key))
        != (key in settings, settings.get(key))
    ]
    if differing:
        raise ValueError(
            f"cannot resume from {path}: it was trained with other "
            f"settings ({'; '.join(differing)}). Resuming would restore "
            f"that run and export it under this run's settings; {fix}"
        )
    return int(checkpoint["global_step"])
