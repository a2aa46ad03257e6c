"""Witness analysis: saliency, coherence, ablation, ranking, and the
``deepclean-train analyze`` command.

The ranking tests train one small model (module fixture) on the
simulated detector of ``conftest.BilinearDetector``: the mains monitor,
two angular witnesses that couple only bilinearly (their motion modulates
the mains line), one angular witness and the two decoys that do not
couple.
"""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from deepclean_engine import (
    CleaningConfig,
    CleaningEngine,
    load_cleaning_engine,
    save_exported_model,
)
from deepclean_io import write_timeseries
from deepclean_io.hdf5 import SUBTRACTED_ATTRIBUTE
from deepclean_tracking import WandbSettings
from deepclean_train.analysis import (
    AnalysisSettings,
    ModelInputs,
    OneRowChanged,
    ablate,
    analyze_spans,
    window_saliency,
    witness_coherence,
)
from deepclean_train.analysis_report import analysis_page
from deepclean_train.analyze import analyze, read_spans
from deepclean_train.cli import main
from deepclean_train.data import Span


class OneWitness(torch.nn.Module):
    """Predicts strain as a scaled copy of one witness."""

    def __init__(self, row: int, scale: float) -> None:
        super().__init__()
        self.row = row
        self.scale = scale

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        return witnesses[:, self.row] * self.scale


def toy_span(toy, duration: float = 96.0) -> Span:
    channels = toy.channels(duration)
    return Span(
        "valid",
        toy.t0,
        torch.from_numpy(channels[toy.strain_channel]),
        torch.from_numpy(np.stack([channels[w] for w in toy.witnesses])),
    )


def toy_engine(toy, model: torch.nn.Module) -> CleaningEngine:
    config = CleaningConfig(
        sample_rate=toy.sample_rate, bands=tuple(toy.bands), kernel_length=2.0
    )
    return CleaningEngine(model, config)


class TestSaliency:
    def test_zero_for_witnesses_the_model_ignores(self, toy) -> None:
        span = toy_span(toy)
        result = window_saliency(
            OneWitness(0, 3e-21),
            span,
            round(2 * toy.sample_rate),
            toy.sample_rate,
            toy.bands,
            num_windows=8,
            max_frequency=100.0,
        )
        np.testing.assert_array_equal(result.share[:, 1:], 0.0)
        np.testing.assert_allclose(result.share[:, 0], 1.0)
        assert (result.spectrum[:, 1:] == 0).all()
        assert (result.spectrum[1, 0] > 0).any()
        assert result.frequencies[-1] <= 100.0
        assert result.num_windows == 8

    def test_span_shorter_than_a_window_is_refused(self, toy) -> None:
        with pytest.raises(ValueError, match="shorter than one model window"):
            window_saliency(
                OneWitness(0, 1.0),
                toy_span(toy, 1.0),
                round(2 * toy.sample_rate),
                toy.sample_rate,
                toy.bands,
                8,
                100.0,
            )


class TestCoherence:
    def test_linear_fraction_finds_the_coupled_witnesses(self, toy) -> None:
        # strain = noise + 3 w0 + 2 w1 (delayed): coherent fractions of
        # about 9/14 and 4/14, none for the others
        result = witness_coherence(
            toy_span(toy), toy.sample_rate, toy.bands, 2.0, 5.0, None
        )
        np.testing.assert_allclose(
            result.linear_fraction[:2], [9 / 14, 4 / 14], atol=0.05
        )
        assert (result.linear_fraction[2:] < 0.05).all()
        assert result.line_witness == 0
        assert np.isnan(result.bilinear[0]).all()
        assert result.frequencies[0] >= 50 and result.frequencies[-1] <= 70
        assert result.num_averages == 95

    def test_too_little_data_for_the_resolution_says_how_much(self) -> None:
        settings = AnalysisSettings(fftlength=8.0)
        with pytest.raises(ValueError, match="needs at least 68 s of data"):
            settings.span_fftlength(60.0)
        assert AnalysisSettings().span_fftlength(30.0) == 2.0
        assert AnalysisSettings().span_fftlength(600.0) == 4.0


class TestAblation:
    def test_only_the_used_witness_matters(self, toy) -> None:
        result = ablate(
            toy_engine(toy, OneWitness(0, 3e-21)),
            toy_span(toy),
            shift=None,
            fftlength=2.0,
            progress=False,
        )
        assert result.baseline < 0.8
        assert result.mean[0] > 0.95 and result.shifted[0] > 0.95
        np.testing.assert_allclose(result.mean[1:], result.baseline)
        np.testing.assert_allclose(result.shifted[1:], result.baseline)
        assert result.rise[0] > 0.15
        assert result.shift == 48.0

    def test_shift_longer_than_the_span_is_refused(self, toy) -> None:
        with pytest.raises(ValueError, match="must be shorter than"):
            ablate(
                toy_engine(toy, OneWitness(0, 3e-21)),
                toy_span(toy),
                shift=200.0,
                fftlength=2.0,
                progress=False,
            )


def test_hand_built_model_ranks_its_witness_first(toy) -> None:
    inputs = ModelInputs(toy.strain_channel, tuple(toy.witnesses), 512.0)
    span = toy_span(toy)
    analysis = analyze_spans(
        toy_engine(toy, OneWitness(0, 3e-21)),
        inputs,
        {"valid": span},
        AnalysisSettings(windows=8),
        progress=False,
    )
    ranking = analysis.ranking()
    assert ranking[0]["channel"] == toy.witnesses[0]
    assert ranking[0]["importance"] == pytest.approx(1.0)
    assert ranking[0]["ranks"] == {
        "saliency": 1,
        "coherence": 1,
        "ablation": 1,
    }
    # witness 1 is coherent with the strain but unused: second, on
    # coherence alone
    assert ranking[1]["channel"] == toy.witnesses[1]
    assert ranking[1]["saliency"]["valid"]["median"] == 0.0
    assert ranking[1]["ablation"]["rise"] == 0.0
    assert ranking[1]["importance"] == pytest.approx(
        ranking[1]["linear_coherence"]["valid"]
        / ranking[0]["linear_coherence"]["valid"]
        / 3
    )
    summary = analysis.summary()
    assert summary["evidence"] == ["saliency", "ablation", "coherence"]
    assert summary["baseline_in_band_ratio"] < 0.8
    assert summary["coherence_averages"] == {"valid": 47}
    page = analysis_page(analysis, "hand-built")
    assert "Importance" in page and "PEM-WITNESS_3" in page


@pytest.fixture(scope="module")
def trained(
    bilinear, bilinear_pool, bilinear_fit_options, tmp_path_factory
) -> Path:
    """Folder of a model trained with witness products on the mains,
    angular and decoy witnesses of the simulated pool (not its
    candidates), analysed after training."""
    truth = bilinear_pool.parent / "truth" / f"{bilinear_pool.stem}.json"
    coupled = json.loads(truth.read_text())["parameters"]["coupling"]
    assert coupled["coupled"] == list(bilinear.coupled)
    output = tmp_path_factory.mktemp("analysis") / "run"
    witnesses = [
        bilinear.mains,
        *bilinear.coupled,
        bilinear.uncoupled,
        *bilinear.decoys,
    ]
    main(
        [
            "fit",
            *bilinear_fit_options,
            f"--data.fname={bilinear_pool}",
            f"--data.witnesses={json.dumps(witnesses)}",
            f"--data.product_witness={bilinear.mains}",
            f"--trainer.default_root_dir={output}",
        ]
    )
    return output


@pytest.fixture(scope="module")
def summary(trained) -> dict:
    """``analysis.json`` of the trained model's post-training analysis."""
    return json.loads((trained / "analysis" / "analysis.json").read_text())


@pytest.mark.slow
class TestRankingOnTheSimulatedDetector:
    @staticmethod
    def entries(summary: dict) -> dict[str, dict]:
        return {entry["channel"]: entry for entry in summary["ranking"]}

    def test_decoys_rank_below_every_coupled_witness(
        self, summary, bilinear
    ) -> None:
        order = [entry["channel"] for entry in summary["ranking"]]
        assert set(order[:3]) == {bilinear.mains, *bilinear.coupled}
        assert order[0] == bilinear.mains
        assert summary["line_witness"] == bilinear.mains

    def test_bilinear_witness_found_by_saliency_ablation_and_products(
        self, summary, bilinear
    ) -> None:
        entries = self.entries(summary)
        uncoupled = [
            entries[name] for name in (bilinear.uncoupled, *bilinear.decoys)
        ]
        for name in bilinear.coupled:
            entry = entries[name]
            for other in uncoupled:
                assert (
                    entry["saliency"]["valid"]["median"]
                    > other["saliency"]["valid"]["median"]
                )
                assert entry["ablation"]["rise"] > other["ablation"]["rise"]
                assert (
                    entry["bilinear_coherence"]["valid"]
                    > 3 * other["bilinear_coherence"]["valid"]
                )

    def test_linear_coherence_alone_misses_it(self, summary, bilinear) -> None:
        entries = self.entries(summary)
        noise = max(
            entries[name]["linear_coherence"]["valid"]
            for name in (bilinear.uncoupled, *bilinear.decoys)
        )
        for name in bilinear.coupled:
            linear = entries[name]["linear_coherence"]["valid"]
            assert linear < 0.05
            assert linear < 2 * noise
            assert entries[name]["bilinear_coherence"]["valid"] > 0.05

    def test_training_and_validation_spans_both_analysed(
        self, summary, trained
    ) -> None:
        output = trained
        assert list(summary["spans"]) == ["train", "valid"]
        assert summary["ranked_span"] == "valid"
        with h5py.File(output / "analysis" / "analysis.h5") as h5:
            assert set(h5["saliency"]) == {"train", "valid"}
            assert h5["saliency/valid/spectrum"].shape[:2] == (3, 6)
            assert h5["coherence/train/linear"].shape[0] == 6
            assert h5["ablation/mean"].shape == (6,)
        page = (output / "analysis" / "analysis.html").read_text()
        assert "Coherence with strain" in page
        assert "Saliency share" in page

    def test_analyze_command_on_the_exported_model(
        self, summary, trained, bilinear_pool, tmp_path
    ) -> None:
        main(
            [
                "analyze",
                f"--model={trained / 'model.pt'}",
                f"--fname=[{bilinear_pool}]",
                f"--output_dir={tmp_path}",
                "--progress=false",
            ]
        )
        again = json.loads((tmp_path / "analysis.json").read_text())
        assert again["spans"] == summary["spans"]
        assert [e["channel"] for e in again["ranking"]] == [
            e["channel"] for e in summary["ranking"]
        ]
        for first, second in zip(
            summary["ranking"], again["ranking"], strict=True
        ):
            assert second["importance"] == pytest.approx(
                first["importance"], abs=1e-3
            )

    def test_ablation_decimates_only_the_changed_witness(
        self, trained, bilinear, bilinear_pool
    ) -> None:
        engine, metadata = load_cleaning_engine(trained / "model.pt")
        assert OneRowChanged.applies(engine.model)
        inputs = ModelInputs.from_metadata(metadata)
        start = bilinear.t0 + 512
        (span,) = read_spans(
            [bilinear_pool],
            inputs,
            {"valid": (start, start + 128)},
            bilinear.sample_rate,
        ).values()

        class SpanOnly:
            """The exported model seen through forward_span alone."""

            def __init__(self, model) -> None:
                self.forward_span = model.forward_span

        cached = ablate(engine, span, None, 2.0, progress=False)
        plain = ablate(
            CleaningEngine(SpanOnly(engine.model), engine.config),
            span,
            None,
            2.0,
            progress=False,
        )
        assert cached.baseline == plain.baseline
        np.testing.assert_allclose(cached.mean, plain.mean, rtol=1e-9)
        np.testing.assert_allclose(cached.shifted, plain.shifted, rtol=1e-9)
        assert cached.rise.max() > 0.05

    def test_data_without_the_models_channels_named(
        self, trained, toy, data_file, tmp_path
    ) -> None:
        with pytest.raises(ValueError, match="ASC-CHARD_P_INMON") as error:
            analyze(
                trained / "model.pt",
                [data_file],
                tmp_path,
                spans={"valid": (toy.t0, toy.t0 + 64)},
                progress=False,
            )
        assert "are not in" in str(error.value)

    def test_explicit_resolution_needs_enough_data(
        self, trained, bilinear, bilinear_pool, tmp_path
    ) -> None:
        start = bilinear.t0 + 512
        with pytest.raises(ValueError, match="needs at least 136 s"):
            analyze(
                trained / "model.pt",
                [bilinear_pool],
                tmp_path,
                spans={"valid": (start, start + 128)},
                settings=AnalysisSettings(fftlength=16.0),
                progress=False,
            )


def test_gaps_in_the_analysed_data_are_refused(toy, tmp_path) -> None:
    channels = toy.channels()
    channels[toy.witnesses[2]][1000] = np.nan
    data = write_timeseries(
        tmp_path / "gap.hdf5", channels, toy.t0, toy.sample_rate
    )
    inputs = ModelInputs(toy.strain_channel, tuple(toy.witnesses), 512.0)
    with pytest.raises(
        ValueError, match="analyse spans without gaps"
    ) as error:
        read_spans([data], inputs, {"valid": (toy.t0, toy.t0 + 96)}, 512.0)
    assert repr(toy.witnesses[2]) in str(error.value)


def test_analyze_any_exported_model_with_wandb_offline(
    toy, data_file, tmp_path, monkeypatch
) -> None:
    """``deepclean-train analyze`` on a hand-built exported model and a
    stretch of the toy data, logged to W&B offline."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    config = CleaningConfig(
        sample_rate=toy.sample_rate, bands=tuple(toy.bands), kernel_length=2.0
    )
    model = save_exported_model(
        OneWitness(0, 3e-21),
        {
            "strain_channel": toy.strain_channel,
            "witnesses": toy.witnesses,
            "sample_rate": toy.sample_rate,
            "network_sample_rate": toy.sample_rate,
            "cleaning": config.to_dict(),
            "train_span": [toy.t0, toy.t0 + 96],
        },
        tmp_path / "model" / "model.pt",
    )
    path = analyze(
        model,
        [data_file],
        tmp_path / "out",
        spans={"stretch": (toy.t0 + 96, toy.t0 + 192)},
        wandb=WandbSettings(enabled=True, group="test"),
        progress=False,
    )
    summary = json.loads(path.read_text())
    assert list(summary["spans"]) == ["stretch"]
    assert summary["ranking"][0]["channel"] == toy.witnesses[0]
    (run,) = (tmp_path / "out" / "wandb").glob("offline-run-*")
    assert list(run.glob("files/media/html/*.html"))
    # the model's own span by default (its metadata has no validation)
    default = json.loads(
        analyze(model, [data_file], tmp_path / "own").read_text()
    )
    assert default["spans"] == {"train": [toy.t0, toy.t0 + 96]}


def test_a_hybrid_model_is_analysed_on_residual_strain(toy, tmp_path) -> None:
    """Its network models what the classical stage leaves."""
    inputs = ModelInputs(toy.strain_channel, tuple(toy.witnesses), 512.0)
    spans = {"valid": (toy.t0, toy.t0 + 96)}
    raw = write_timeseries(
        tmp_path / "raw.hdf5", toy.channels(), toy.t0, toy.sample_rate
    )
    residual = write_timeseries(
        tmp_path / "residual.hdf5",
        toy.channels(),
        toy.t0,
        toy.sample_rate,
        attrs={SUBTRACTED_ATTRIBUTE: "NOMAD"},
    )
    with pytest.raises(ValueError, match="holds raw strain, but the model"):
        read_spans([raw], inputs, spans, 512.0, "NOMAD")
    with pytest.raises(ValueError, match="holds strain with NOMAD's"):
        read_spans([residual], inputs, spans, 512.0)
    assert set(read_spans([residual], inputs, spans, 512.0, "NOMAD")) == {
        "valid"
    }
