"""The DeepClean LightningModule: scalers, schedule, engine validation."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from deepclean_engine import CleaningEngine, asd_ratio
from deepclean_train.architectures import DeepCleanAutoencoder
from deepclean_train.data import DeepCleanDataModule
from deepclean_train.model import DeepCleanModel, network_rate_options


def make_model(toy, **overrides: object) -> DeepCleanModel:
    arguments = {
        "arch": DeepCleanAutoencoder(len(toy.witnesses)),
        "strain_channel": toy.strain_channel,
        "witnesses": toy.witnesses,
        "sample_rate": toy.sample_rate,
        "bands": toy.bands,
        "kernel_length": 1.0,
    }
    arguments.update(overrides)
    return DeepCleanModel(**arguments)


def make_data(toy, fname: Path, **overrides) -> DeepCleanDataModule:
    arguments = {
        "train_duration": 64.0,
        "valid_duration": 32.0,
        "batch_size": 8,
        "batches_per_epoch": 4,
    }
    arguments.update(overrides)
    return DeepCleanDataModule(
        str(fname),
        toy.strain_channel,
        toy.witnesses,
        toy.sample_rate,
        toy.bands,
        **arguments,
    )


def make_trainer(**overrides: object) -> pl.Trainer:
    arguments = {
        "max_epochs": 2,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    arguments.update(overrides)
    return pl.Trainer(**arguments)


def test_predictor_returns_strain_units(toy, data_file: Path) -> None:
    data = make_data(toy, data_file)
    data.setup("fit")
    model = make_model(toy)
    model.copy_scalers(data)
    torch.testing.assert_close(
        model.predictor.witness_scaler.mean, data.witness_scaler.mean
    )
    witnesses, _ = data.sample_batch(torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        scaled = model.network(data.witness_scaler(witnesses))
        noise = model(witnesses)
    torch.testing.assert_close(noise, scaled * data.strain_scaler.scale)


def test_one_cycle_is_stepped_every_batch(toy, data_file: Path) -> None:
    model = make_model(toy, learning_rate=1e-2, weight_decay=1e-2)
    learning_rates = []

    class RecordLearningRate(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, index):
            learning_rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = make_trainer(
        limit_val_batches=0, callbacks=[RecordLearningRate()]
    )
    trainer.fit(model, make_data(toy, data_file))
    assert trainer.lr_scheduler_configs[0].interval == "step"
    assert trainer.optimizers[0].param_groups[0]["weight_decay"] == 1e-2
    assert len(learning_rates) == 8
    assert len(set(learning_rates)) == 8
    peak = learning_rates.index(max(learning_rates))
    assert 0 < peak < 7
    assert max(learning_rates) == pytest.approx(1e-2, rel=0.2)


def test_validation_cleans_with_the_engine(toy, data_file: Path) -> None:
    data = make_data(toy, data_file)
    model = make_model(toy)
    trainer = make_trainer()
    (metrics,) = trainer.validate(model, data, verbose=False)
    span = data.spans["valid"]
    engine = CleaningEngine(model.predictor, model.cleaning_config)
    segment = engine.clean(span.strain, span.witnesses, span.t0)
    expected = asd_ratio(
        segment.cleaned,
        segment.raw,
        toy.sample_rate,
        toy.bands,
        fftlength=2.0,
    )
    assert metrics["val_asdr"] == pytest.approx(expected.item(), rel=1e-6)
    assert segment.cleaned.shape[-1] >= 28 * toy.sample_rate


def test_network_runs_between_the_resampling_filters(toy) -> None:
    model = make_model(toy, network_sample_rate=256.0).eval()
    predictor = model.predictor
    assert predictor.factor == 2
    predictor.witness_scaler.mean.fill_(0.5)
    predictor.witness_scaler.std.fill_(2.0)
    predictor.strain_scaler.scale.fill_(1e-21)
    x = torch.randn(3, 4, 512)
    with torch.no_grad():
        decimated = predictor.decimator(x)
        assert decimated.shape == (3, 4, 256)
        scaled = model.network((decimated - 0.5) / 2.0)
        expected = 1e-21 * predictor.interpolator(scaled)
        torch.testing.assert_close(model(x), expected)


def test_without_resampling_the_network_sees_the_data(toy) -> None:
    model = make_model(toy).eval()
    assert model.predictor.factor == 1
    x = torch.randn(2, 4, 512)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.network(x))


def test_training_steps_at_the_network_rate(toy, data_file: Path) -> None:
    data = make_data(toy, data_file, network_sample_rate=256.0)
    model = make_model(toy, network_sample_rate=256.0)
    shapes = []

    class RecordBatch(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, index):
            shapes.append((tuple(batch[0].shape), tuple(batch[1].shape)))

    trainer = make_trainer(max_epochs=1, callbacks=[RecordBatch()])
    trainer.fit(model, data)
    assert shapes == [((8, 4, 256), (8, 256))] * 4
    assert model.loss.density.sample_rate == 256.0
    assert 0 < trainer.callback_metrics["val_asdr"] < 1.5


def test_ensemble_loss_sums_its_members_pooled_losses(
    toy, data_file: Path
) -> None:
    """Each member gets the gradient it would get alone (the mean would
    scale it down against Adam's weight decay), and its PSDs are pooled
    over the batch, not across members."""
    data = make_data(toy, data_file)
    data.setup("fit")
    model = make_model(toy, ensemble_size=2, pooled_loss=True)
    model.copy_scalers(data)
    witnesses, target = data.sample_batch(torch.device("cpu"))
    target[0] *= 10.0
    with torch.no_grad():
        loss = model.training_step((witnesses, target), 0)
        features = model.predictor.features(witnesses)
        members = [
            model.loss(member(features), target)
            for member in model.network.members
        ]
        pooled_across_members = model.loss(
            torch.cat([member(features) for member in model.network.members]),
            target.repeat(2, 1),
        )
    assert model.loss.pooled
    torch.testing.assert_close(loss, members[0] + members[1])
    assert abs(float(loss / 2 - pooled_across_members)) > 1e-6


def test_band_above_the_network_passband_is_refused(toy) -> None:
    with pytest.raises(ValueError, match="lies above 48 Hz") as error:
        make_model(toy, network_sample_rate=128.0)
    rates = network_rate_options(toy.sample_rate, 128.0 * 65 / 48)
    assert rates and all(r >= 128.0 * 65 / 48 for r in rates)
    assert all((toy.sample_rate / r).is_integer() for r in rates)
    assert f"to {rates[0]:g}" in str(error.value)


def test_network_rate_options() -> None:
    assert network_rate_options(4096, 533.3) == [4096 / 7, 1024, 2048]
    assert network_rate_options(4096, 100) == [4096 / 40, 128, 256]
    assert network_rate_options(4096, 3000) == []


def test_loss_fftlength_longer_than_kernel_is_refused(toy) -> None:
    with pytest.raises(ValueError, match="lower model.fftlength"):
        make_model(toy, fftlength=2.0)


def test_other_witnesses_in_data_are_refused(toy, data_file: Path) -> None:
    data = make_data(toy, data_file)
    model = make_model(toy, witnesses=toy.witnesses[::-1])
    with pytest.raises(ValueError, match="differ from the model's"):
        model.copy_scalers(data)


def test_test_span_is_cleaned(toy, data_file: Path) -> None:
    data = make_data(
        toy,
        data_file,
        test_duration=32.0,
        batch_size=64,
        batches_per_epoch=64,
    )
    (metrics,) = make_trainer().test(make_model(toy), data, verbose=False)
    assert 0.9 < metrics["test_asdr"] < 1.1
