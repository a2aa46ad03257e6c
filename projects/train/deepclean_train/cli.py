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
"""

import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

from deepclean_tracking import WandbSettings, wandb_offline
from deepclean_train.data import DeepCleanDataModule
from deepclean_train.export import export_model
from deepclean_train.model import DeepCleanModel
from deepclean_train.plots import ValidationPlotter

BEST_CHECKPOINT = "best.ckpt"


def default_loggers(
    output_dir: str | Path, settings: WandbSettings
) -> list[Logger]:
    """CSV logger in ``output_dir``, plus W&B when enabled."""
    loggers: list[Logger] = [CSVLogger(output_dir, name="", version="")]
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


class DeepCleanCLI(LightningCLI):
    """LightningCLI with linked arguments, default callbacks and export."""

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
        ):
            parser.link_arguments(f"data.{name}", f"model.{name}")
        parser.link_arguments(
            "data.witnesses", "model.arch.init_args.num_channels", len
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val_asdr",
                "checkpoint.mode": "min",
                "checkpoint.filename": "epoch{epoch:03d}-{val_asdr:.4f}",
                "checkpoint.auto_insert_metric_name": False,
                "checkpoint.save_last": True,
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

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """Build the trainer with the default loggers unless configured.

        By default a CSV logger writes directly into
        ``trainer.default_root_dir`` (not ``lightning_logs/version_N``),
        plus a W&B logger there when ``wandb.enabled``.
        """
        config = self.config_init
        if self.subcommand:
            config = config[self.subcommand]
        if config.trainer.logger in (None, True) and "logger" not in kwargs:
            kwargs["logger"] = default_loggers(
                config.trainer.default_root_dir or ".", config.wandb
            )
        return super().instantiate_trainer(**kwargs)

    def after_fit(self) -> None:
        """Export the best model by ``val_asdr`` into the output folder.

        Without checkpoints (or validation) the final weights are exported.
        The W&B run, if any, is finished: training is over.
        """
        trainer = self.trainer
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.finish()
        if not trainer.is_global_zero:
            return
        model, data = self.model, self.datamodule
        output_dir = Path(trainer.default_root_dir)
        callback = trainer.checkpoint_callback
        best = callback.best_model_path if callback is not None else ""
        if best:
            checkpoint = torch.load(best, map_location="cpu")
            model.load_state_dict(checkpoint["state_dict"])
            shutil.copyfile(best, output_dir / BEST_CHECKPOINT)
        export_model(model, output_dir, data.train_span)


def main(args: list[str] | None = None) -> None:
    """Run the CLI (``args`` default to the command line)."""
    DeepCleanCLI(
        DeepCleanModel,
        DeepCleanDataModule,
        save_config_kwargs={"overwrite": True},
        args=args,
    )


if __name__ == "__main__":
    main()
