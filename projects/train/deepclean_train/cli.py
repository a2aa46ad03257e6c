"""``deepclean-train``: LightningCLI for DeepClean training.

``deepclean-train fit --config projects/train/configs/reference.yaml
--data.fname F --trainer.default_root_dir D`` trains and writes into
``D``: ``model.pt`` and ``model.json`` (exported best model and its
metadata), ``best.ckpt`` (best checkpoint by ``val_asdr``),
``config.yaml`` (resolved configuration), ``metrics.csv``,
``checkpoints/``, ``plots/validation-epochNNN.html`` (bokeh validation
spectra) and, with ``--wandb.enabled true``, ``wandb/`` (offline runs
there can be uploaded with ``wandb sync``). Fine-tune from an exported
model with ``--model.init_from OLD/model.pt`` (and a lower
``--model.learning_rate``). ``--trainer.devices 2 --trainer.strategy
ddp`` trains data-parallel; only rank 0 writes the exported model.

Sample rate, bands, kernel length, filter order and channels are
declared once under ``data`` and linked into ``model``; the
architecture's ``num_channels`` is the number of witnesses.

Runs stop, fail and resume without leaving wrong outputs
(:mod:`deepclean_train.runs`):

- every file is written atomically (checkpoints, ``best.ckpt``,
  ``model.json``, then ``model.pt`` last): ``model.pt`` exists only
  when the run finished; an earlier one in ``D`` is removed when
  training starts;
- SIGTERM (batch preemption, ``timeout``) stops training, keeps
  ``checkpoints/last.ckpt``, exports nothing and exits with status 143;
  bad input exits with status 1 and a one-line message (``--debug``
  shows the traceback);
- ``--ckpt_path D/checkpoints/last.ckpt`` resumes only a checkpoint
  written with the same settings (data, model, epoch and step limits,
  early stopping; see :data:`~deepclean_train.runs.RESULT_SETTINGS`), and
  ``metrics.csv`` keeps the rows of the restored epochs; a truncated
  checkpoint is reported and training starts from scratch;
- ``D`` must be writable before training starts.

``deepclean-train publish D/model.pt --model_dir M`` publishes the
exported model into the folder ``M`` an online cleaner reads
(:mod:`deepclean_train.publish`); ``deepclean-train search --space S
--output_dir D --fit_args '[...]'`` searches hyperparameters with Ray
Tune (:mod:`deepclean_train.search`); ``deepclean-train service
--strain_dir F --model_dir M --output_dir D --fit_args '[...]'`` retrains
the published model at a cadence on the latest low-latency frames
(:mod:`deepclean_train.service`); ``deepclean-train analyze --model
M --fname F --output_dir D`` ranks the witnesses a model relies on
(:mod:`deepclean_train.analyze`), which ``fit`` also does for its own
model into ``D/analysis/`` before exporting it (``--analysis.*``);
``deepclean-train discover`` trains on many candidate witnesses, ranks
them and retrains on fewer (:mod:`deepclean_train.discover`).
"""

import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
)
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.plugins import CheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from deepclean_engine import MODEL_NAME
from deepclean_engine.threads import configure_threads
from deepclean_io.atomic import (
    atomic_output,
    check_writable,
    remove_stale_partials,
)
from deepclean_io.commands import Terminated, run_command_line
from deepclean_tracking import WandbSettings, wandb_offline
from deepclean_train.analysis import AnalysisSettings
from deepclean_train.analyze import analyse_trained_model
from deepclean_train.data import DeepCleanDataModule
from deepclean_train.export import export_model
from deepclean_train.model import DeepCleanModel
from deepclean_train.plots import ValidationPlotter
from deepclean_train.predictor import num_inputs
from deepclean_train.publish import run_publish
from deepclean_train.runs import (
    AtomicCheckpointIO,
    EveryEpochCheckpoint,
    RecordSettings,
    ResumableCSVLogger,
    result_settings,
    resumable_step,
)

BEST_CHECKPOINT = "best.ckpt"
PUBLISH_COMMAND = "publish"
SEARCH_COMMAND = "search"
SERVICE_COMMAND = "service"
ANALYZE_COMMAND = "analyze"
DISCOVER_COMMAND = "discover"
PUBLISH_EPILOG = (
    "deepclean-train publish MODEL --model_dir D publishes an exported "
    "model into the folder an online cleaner reads (see "
    "deepclean-train publish --help); deepclean-train search searches "
    "hyperparameters with Ray Tune, deepclean-train service retrains "
    "the published model on the latest frames, deepclean-train "
    "analyze ranks a model's witnesses and deepclean-train discover finds "
    "the witnesses that matter among many (--help of each)."
)


def default_loggers(
    output_dir: str | Path, settings: WandbSettings, resume_step: int = 0
) -> list[Logger]:
    """CSV logger in ``output_dir``, plus W&B when enabled.

    Args:
        output_dir: the run's output folder.
        settings: W&B settings.
        resume_step: ``global_step`` of the checkpoint the run resumes
            (0 for a new run); ``metrics.csv`` keeps the rows before it.
    """
    loggers: list[Logger] = [ResumableCSVLogger(output_dir, resume_step)]
    if settings.enabled:
        offline = wandb_offline(settings)
        loggers.append(
            WandbLogger(
                save_dir=output_dir,
                project=settings.project,
                entity=settings.entity,
                group=settings.group,
                name=settings.name,
                tags=settings.tags,
                offline=offline,
                # explicit: wandb reads WANDB_MODE, which Lightning sets,
                # only when its settings are first created in a process
                mode="offline" if offline else "online",
            )
        )
    return loggers


def _as_list(value: Any) -> list[Any]:
    """A trainer option that takes one item or a list, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


class DeepCleanCLI(LightningCLI):
    """LightningCLI with linked arguments, default callbacks and export.

    Attributes:
        settings: the run's :func:`~deepclean_train.runs.result_settings`,
            stored in its checkpoints.
        resume_step: ``global_step`` of the checkpoint ``fit`` resumes, 0
            for a new run.
    """

    settings: dict[str, Any]
    resume_step: int

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link shared arguments; add checkpoint, early-stop, LR monitor."""
        for name in (
            "sample_rate",
            "bands",
            "kernel_length",
            "filter_order",
            "network_sample_rate",
            "strain_channel",
            "witnesses",
            "product_witness",
        ):
            parser.link_arguments(f"data.{name}", f"model.{name}")
        parser.link_arguments(
            ("data.witnesses", "data.product_witness"),
            "model.arch.init_args.num_channels",
            num_inputs,
        )
        parser.add_lightning_class_args(EveryEpochCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val_asdr",
                "checkpoint.mode": "min",
                "checkpoint.filename": "epoch{epoch:03d}-{val_asdr:.4f}",
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.save_last": True,
                # a new run replaces the checkpoints of an earlier one in
                # its folder instead of writing last-v1.ckpt beside them
                "checkpoint.enable_version_counter": False,
            }
        )
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults(
            {
                "early_stopping.monitor": "val_asdr",
                "early_stopping.mode": "min",
                "early_stopping.patience": 20,
            }
        )
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})
        parser.add_lightning_class_args(ValidationPlotter, "validation_plots")
        parser.add_class_arguments(WandbSettings, "wandb")
        parser.add_class_arguments(AnalysisSettings, "analysis")

    def parse_arguments(
        self, parser: LightningArgumentParser, args: Any
    ) -> None:
        """Parse, then check ``fit``'s ``--ckpt_path`` against the config.

        This runs before Lightning reads the checkpoint, which would
        silently replace the model's settings with the checkpoint's. A
        checkpoint written with other settings is refused, a truncated
        one is dropped (training starts from scratch); see
        :func:`~deepclean_train.runs.resumable_step`.
        """
        super().parse_arguments(parser, args)
        dump = yaml.safe_load(
            parser.dump(self.config, skip_link_targets=False, skip_none=False)
        )
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        self.settings = result_settings(
            dump[subcommand] if subcommand else dump
        )
        self.resume_step = 0
        if subcommand == "fit" and config.ckpt_path:
            step = resumable_step(config.ckpt_path, self.settings)
            if step is None:
                config.ckpt_path = None
            else:
                self.resume_step = step

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """Build the trainer with atomic checkpoints and recorded settings.

        Checkpoints are written by
        :class:`~deepclean_train.runs.AtomicCheckpointIO` unless another
        checkpoint plugin is configured, and carry the run's settings
        (:class:`~deepclean_train.runs.RecordSettings`). By default a CSV
        logger writes directly into ``trainer.default_root_dir`` (not
        ``lightning_logs/version_N``), plus a W&B logger there when
        ``wandb.enabled``.
        """
        config = self._instantiated()
        if config.trainer.logger in (None, True) and "logger" not in kwargs:
            kwargs["logger"] = default_loggers(
                config.trainer.default_root_dir or ".",
                config.wandb,
                self.resume_step,
            )
        plugins = _as_list(kwargs.get("plugins", config.trainer.plugins))
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        callbacks = _as_list(kwargs.get("callbacks", config.trainer.callbacks))
        kwargs["plugins"] = plugins
        kwargs["callbacks"] = [*callbacks, RecordSettings(self.settings)]
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        """Check the output folder and clear what earlier runs left there;
        run torch on the cores other processes leave free
        (:func:`deepclean_engine.threads.choose_threads`).

        The folder must be writable (else the export would fail after the
        training). Temporaries of killed writers are removed, and so are
        an earlier ``model.pt`` and ``model.json``: ``model.pt`` appears
        only when this run has finished.
        """
        output_dir = Path(self.trainer.default_root_dir)
        check_writable(output_dir, "--trainer.default_root_dir")
        configure_threads()
        remove_stale_partials(output_dir, recursive=True)
        model = output_dir / MODEL_NAME
        model.unlink(missing_ok=True)
        model.with_suffix(".json").unlink(missing_ok=True)

    def after_fit(self) -> None:
        """Export the best model by ``val_asdr`` into the output folder.

        Without checkpoints (or validation) the final weights are exported.
        Before that, unless ``--analysis.enabled false``, the witness
        analysis of the best model on the training and validation spans
        is written into ``analysis/`` (and logged to W&B): ``model.pt``
        appears only after it. The W&B run, if any, is finished:
        training is over.

        Raises:
            Terminated: SIGTERM arrived while the fit was ending (Lightning
                then returns normally); nothing is exported.
        """
        trainer = self.trainer
        if trainer.received_sigterm:
            raise Terminated()
        wandb_loggers = [
            logger
            for logger in trainer.loggers
            if isinstance(logger, WandbLogger)
        ]
        if trainer.is_global_zero:
            model, data = self.model, self.datamodule
            output_dir = Path(trainer.default_root_dir)
            callback = trainer.checkpoint_callback
            best = callback.best_model_path if callback is not None else ""
            if best:
                checkpoint = torch.load(best, map_location="cpu")
                model.load_state_dict(checkpoint["state_dict"])
                with atomic_output(output_dir / BEST_CHECKPOINT) as partial:
                    shutil.copyfile(best, partial)
            settings = self._instantiated().analysis
            if settings.enabled:
                analyse_trained_model(
                    model, data, settings, output_dir, wandb_loggers
                )
            export_model(
                model,
                output_dir,
                data.train_span,
                data.valid_span,
                data.subtracted,
                data.classical_model,
            )
        for logger in wandb_loggers:
            logger.experiment.finish()

    def _instantiated(self) -> Any:
        """The instantiated configuration of the running subcommand."""
        config = self.config_init
        return config[self.subcommand] if self.subcommand else config


def run(args: list[str]) -> None:
    """Run the CLI on ``args``.

    ``publish`` runs :func:`~deepclean_train.publish.run_publish`,
    ``search`` :func:`~deepclean_train.search.search`, ``service``
    :func:`~deepclean_train.service.service`, ``analyze``
    :func:`~deepclean_train.analyze.analyze`, ``discover``
    :func:`~deepclean_train.discover.discover`; the other
    subcommands are LightningCLI's.

    Raises:
        Terminated: Lightning stopped the fit on SIGTERM (it raises its
            own ``SIGTERMException``, which would exit with status 0,
            where no handler of ours is installed or in data-parallel
            processes told by rank 0).
    """
    if args[:1] == [PUBLISH_COMMAND]:
        run_publish(args[1:])
        return
    functions = {
        SEARCH_COMMAND: "deepclean_train.search:search",
        SERVICE_COMMAND: "deepclean_train.service:service",
        ANALYZE_COMMAND: "deepclean_train.analyze:analyze",
        DISCOVER_COMMAND: "deepclean_train.discover:discover",
    }
    if args[:1] and args[0] in functions:
        import importlib

        from jsonargparse import CLI

        module, name = functions[args[0]].split(":")
        function = getattr(importlib.import_module(module), name)
        CLI(
            function,
            args=args[1:],
            prog=f"deepclean-train {args[0]}",
            as_positional=False,
        )
        return
    try:
        DeepCleanCLI(
            DeepCleanModel,
            DeepCleanDataModule,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"epilog": PUBLISH_EPILOG},
            args=args,
        )
    except SIGTERMException as stop:
        raise Terminated() from stop


def main(args: list[str] | None = None) -> None:
    """``deepclean-train`` (``args`` default to the command line).

    Exit status 1 with a one-line message on bad input (``--debug`` for
    the traceback), 143 when stopped by SIGTERM
    (:func:`deepclean_io.commands.run_command_line`).
    """
    run_command_line("deepclean-train", run, args)


if __name__ == "__main__":
    main()
