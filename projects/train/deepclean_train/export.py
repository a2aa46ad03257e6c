"""Export a trained model as self-contained TorchScript.

``model.pt`` is a TorchScript
:class:`~deepclean_train.predictor.NoisePredictor` in eval mode: raw
witnesses ``(batch, channels, kernel)`` in, predicted noise in strain
units ``(batch, kernel)`` out (resampling, witness standardisation and
strain unscaling included). Its metadata (channel order, sample rate,
network rate, bands, kernel length, stride, the cleaning engine's
parameters, training span, package version) is stored inside the file
as the extra file ``metadata.json`` and beside it as ``model.json``.
"""

import copy
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from deepclean_engine import (
    MODEL_NAME,
    load_exported_model,
    save_exported_model,
)
from deepclean_engine.exported import CLASSICAL_NAME
from deepclean_train.architectures import architecture_name, receptive_field
from deepclean_train.predictor import NoisePredictor, line_index

if TYPE_CHECKING:
    from deepclean_train.model import DeepCleanModel


def model_metadata(
    model: "DeepCleanModel",
    train_span: tuple[float, float],
    valid_span: tuple[float, float] | None = None,
    subtracted: str | None = None,
) -> dict[str, Any]:
    """Everything a cleaner needs to use the exported model.

    Args:
        model: the trained model.
        train_span: GPS ``(start, end)`` of the training data, s.
        valid_span: GPS ``(start, end)`` of the validation data, s;
            None when there was none.
        subtracted: the classical method whose noise estimate the
            training strain had subtracted (the model cleans only such
            strain), None for raw strain.

    Returns:
        JSON-serialisable metadata; ``cleaning`` is the engine's
        :class:`~deepclean_engine.CleaningConfig` as a dictionary.
    """
    config = model.cleaning_config
    return {
        "strain_channel": model.hparams.strain_channel,
        "witnesses": list(model.hparams.witnesses),
        "sample_rate": config.sample_rate,
        "bands": [list(band) for band in config.bands],
        "kernel_length": config.kernel_length,
        "stride": 1 / config.inference_sampling_rate,
        "cleaning": config.to_dict(),
        "network_sample_rate": config.sample_rate / model.predictor.factor,
        "architecture": architecture_name(model.network),
        "product_witness": model.hparams.product_witness,
        "receptive_field": receptive_field(
            NoisePredictor(
                copy.deepcopy(model.network).cpu(),
                len(model.hparams.witnesses),
                model.predictor.factor,
                line_index(
                    list(model.hparams.witnesses),
                    model.hparams.product_witness,
                ),
            ),
            len(model.hparams.witnesses),
            4 * config.kernel_size,
        ),
        "train_span": [float(train_span[0]), float(train_span[1])],
        "valid_span": (
            None
            if valid_span is None
            else [float(valid_span[0]), float(valid_span[1])]
        ),
        "subtracted": subtracted,
        "package_version": version("deepclean-train"),
        "torch_version": torch.__version__,
    }


def export_model(
    model: "DeepCleanModel",
    output_dir: str | Path,
    train_span: tuple[float, float],
    valid_span: tuple[float, float] | None = None,
    subtracted: str | None = None,
    classical_model: Path | None = None,
) -> Path:
    """Write ``{output_dir}/model.pt`` and ``{output_dir}/model.json``.

    The predictor is scripted on the CPU in eval mode, so BatchNorm uses
    its running statistics (the format is
    :mod:`deepclean_engine.exported`'s).

    Args:
        model: the trained model (not modified).
        output_dir: destination folder, created if needed.
        train_span: GPS ``(start, end)`` of the training data, s.
        valid_span: GPS ``(start, end)`` of the validation data, s.
        subtracted: what the training strain had subtracted
            (:func:`model_metadata`).
        classical_model: that method's fitted model file, stored inside
            ``model.pt`` (:data:`~deepclean_engine.exported.CLASSICAL_NAME`)
            so that the online cleaner can run the classical stage too.

    Returns:
        Path of ``model.pt``.
    """
    extra_files = (
        {}
        if classical_model is None
        else {CLASSICAL_NAME: Path(classical_model).read_bytes()}
    )
    return save_exported_model(
        model.predictor,
        model_metadata(model, train_span, valid_span, subtracted),
        Path(output_dir) / MODEL_NAME,
        extra_files,
    )


def load_pretrained_network(model: "DeepCleanModel", path: str | Path) -> None:
    """Initialise ``model``'s network from an exported model (fine-tuning).

    Only the network weights are taken; the scalers are refitted on the
    new training data.

    Raises:
        ValueError: the exported model was trained on other channels, at
            another sample rate, or with another architecture.
    """
    module, metadata = load_exported_model(path)
    expected = {
        "strain_channel": model.hparams.strain_channel,
        "witnesses": list(model.hparams.witnesses),
        "sample_rate": float(model.hparams.sample_rate),
        "network_sample_rate": float(
            model.hparams.sample_rate / model.predictor.factor
        ),
        "product_witness": model.hparams.product_witness,
    }
    for key, value in expected.items():
        # models exported before witness products have no product_witness
        if metadata.get(key) != value:
            raise ValueError(
                f"cannot fine-tune from {path}: its {key} {metadata.get(key)} "
                f"differs from this model's {value}; train from scratch "
                "or use a model trained on the same channels and rates"
            )
    try:
        model.network.load_state_dict(module.network.state_dict())
    except RuntimeError as error:
        raise ValueError(
            f"cannot fine-tune from {path}: its network "
            f"({metadata['architecture']}) does not fit this model's "
            f"({type(model.network).__name__}) with these settings: {error}"
        ) from error
