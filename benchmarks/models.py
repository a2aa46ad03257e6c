"""The models the benchmarks train or time, built from the shipped configs.

``projects/train/configs/{reference,dilated}.yaml`` (and ``reference.yaml``
with the ``modulated.yaml`` overlay) go through ``deepclean-train``'s
LightningCLI exactly as in the pipeline, with data parameters given as
overrides, so a benchmark measures what users run.
"""

import argparse
import json
from pathlib import Path

from deepclean_train.cli import DeepCleanCLI
from deepclean_train.data import DeepCleanDataModule
from deepclean_train.model import DeepCleanModel

CONFIGS = Path(__file__).parents[1] / "projects" / "train" / "configs"
# Each architecture's configs, stacked in this order.
ARCHITECTURES = {
    "reference": ("reference.yaml",),
    "dilated": ("dilated.yaml",),
    "modulated": ("reference.yaml", "modulated.yaml"),
}


def configured(
    architecture: str,
    fname: Path,
    strain_channel: str,
    witnesses: list[str],
    root_dir: Path,
    *overrides: str,
    line_witness: str | None = None,
) -> tuple[DeepCleanModel, DeepCleanDataModule]:
    """Model and data module of a shipped config, untrained.

    Args:
        architecture: config name, one of :data:`ARCHITECTURES`.
        fname: data file (read only when the data module is set up).
        strain_channel: strain channel name.
        witnesses: witness channel names.
        root_dir: the trainer's folder.
        *overrides: further CLI arguments, e.g. ``"--data.batch_size",
            "512"``.
        line_witness: the problem's line witness (``modulated`` takes
            its carrier from it).
    """
    configs = [
        argument
        for config in ARCHITECTURES[architecture]
        for argument in ("--config", str(CONFIGS / config))
    ]
    if line_witness is not None:
        configs += ["--model.line_witness", line_witness]
    cli = DeepCleanCLI(
        DeepCleanModel,
        DeepCleanDataModule,
        args=[
            *configs,
            "--data.fname",
            str(fname),
            "--data.strain_channel",
            strain_channel,
            "--data.witnesses",
            json.dumps(witnesses),
            "--trainer.default_root_dir",
            str(root_dir),
            *overrides,
        ],
        run=False,
    )
    return cli.model, cli.datamodule


def add_network_rate_argument(parser: argparse.ArgumentParser) -> None:
    """``--network-sample-rate``, read by :func:`network_rate_options`."""
    parser.add_argument(
        "--network-sample-rate",
        type=float,
        default=None,
        help="rate the network runs at, Hz (default: the config's; 0: "
        "the data's rate)",
    )


def network_rate_options(network_sample_rate: float | None) -> list[str]:
    """CLI overrides for ``--network-sample-rate`` of the benchmarks.

    ``None`` keeps the config's rate, 0 runs the network at the data's
    rate, anything else replaces it (Hz).
    """
    if network_sample_rate is None:
        return []
    value = "null" if network_sample_rate == 0 else str(network_sample_rate)
    return ["--data.network_sample_rate", value]
