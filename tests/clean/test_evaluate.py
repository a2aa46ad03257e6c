"""Tests for the evaluation metrics.

The hand-computed cases: white noise plus a sinusoid centred on an FFT
bin (a periodic Hann window puts it in exactly three bins, so every other
bin of raw and cleaned strain is identical), strain scaled by a constant,
and a sine-Gaussian in white noise, whose optimal SNR is
``hrss * sqrt(2 / S0)`` for a one-sided PSD ``S0``.
"""

import json

import numpy as np
import pytest
import torch

from deepclean_clean.evaluate import (
    asd_ratios,
    bns_range,
    coupled_power_removed,
    evaluate,
    excess_over_ideal,
    ratio_spectrogram,
    sideband_windows,
    welch_asd,
)
from deepclean_clean.injections import injection_recovery, matched_filter_snr
from deepclean_engine import asd_ratio
from deepclean_io.truth import InjectionTemplate, injection_template

SAMPLE_RATE = 512.0
DURATION = 256.0
FFTLENGTH = 4.0
BANDS = [(55.0, 65.0)]
START = 1_000_000_000.0


@pytest.fixture
def noise() -> np.ndarray:
    """Unit-variance white noise, ``(time,)``."""
    rng = np.random.default_rng(2024)
    return rng.standard_normal(round(DURATION * SAMPLE_RATE))


def times() -> np.ndarray:
    return np.arange(round(DURATION * SAMPLE_RATE)) / SAMPLE_RATE


class TestASDRatios:
    def test_removed_line_gives_the_hand_computed_ratios(
        self, noise: np.ndarray
    ) -> None:
        line = 1e4 * np.sin(2 * np.pi * 60.0 * times() + 0.4)
        raw, cleaned = noise + line, noise
        frequencies, asd = welch_asd(
            np.stack([raw, cleaned]), SAMPLE_RATE, FFTLENGTH
        )

        ratios = asd_ratios(frequencies, asd[0], asd[1], BANDS)

        # 55-65 Hz at 0.25 Hz: 41 bins; the line fills 59.75, 60, 60.25
        # Hz, where the ratio is ~1e-5; elsewhere it is exactly 1.
        assert ratios.in_band == pytest.approx(38 / 41, abs=1e-5)
        assert ratios.out_of_band == pytest.approx(1.0, abs=1e-7)
        assert ratios.bands[0].band == BANDS[0]
        assert ratios.bands[0].in_band == ratios.in_band
        engine_ratio = asd_ratio(
            torch.from_numpy(cleaned),
            torch.from_numpy(raw),
            SAMPLE_RATE,
            BANDS,
            FFTLENGTH,
        )
        assert ratios.in_band == pytest.approx(float(engine_ratio), rel=1e-9)

    def test_scaled_strain(self, noise: np.ndarray) -> None:
        frequencies, asd = welch_asd(
            np.stack([noise, 0.5 * noise]), SAMPLE_RATE, FFTLENGTH
        )
        bands = [(55.0, 65.0), (100.0, 110.0)]

        ratios = asd_ratios(frequencies, asd[0], asd[1], bands)

        assert ratios.in_band == pytest.approx(0.5, rel=1e-12)
        assert ratios.out_of_band == pytest.approx(0.5, rel=1e-12)
        assert [band.band for band in ratios.bands] == bands

    def test_sideband_windows(self) -> None:
        assert sideband_windows((55.0, 65.0), (10.0, 20.0), 256.0) == (
            (35.0, 45.0),
            (75.0, 85.0),
        )
        assert sideband_windows((12.0, 240.0), (10.0, 20.0), 256.0) == (
            (0.0, 2.0),
            (250.0, 256.0),
        )

    def test_band_without_bins(self, noise: np.ndarray) -> None:
        frequencies, asd = welch_asd(noise, SAMPLE_RATE, 1.0)
        with pytest.raises(ValueError, match="longer fftlength"):
            asd_ratios(frequencies, asd, asd, [(60.2, 60.8)])


def test_ratio_spectrogram_follows_a_change_in_time(noise: np.ndarray) -> None:
    cleaned = noise.copy()
    cleaned[round(128 * SAMPLE_RATE) :] *= 0.5

    spectrogram = ratio_spectrogram(
        noise, cleaned, SAMPLE_RATE, 64.0, FFTLENGTH, (50.0, 70.0)
    )

    np.testing.assert_array_equal(spectrogram.times, [0.0, 64.0, 128.0, 192.0])
    assert spectrogram.frequencies[0] == 50.0
    assert spectrogram.frequencies[-1] == 70.0
    np.testing.assert_allclose(spectrogram.ratio[:2], 1.0, rtol=1e-12)
    np.testing.assert_allclose(spectrogram.ratio[2:], 0.5, rtol=1e-12)
    with pytest.raises(ValueError, match="shorter stride"):
        ratio_spectrogram(noise, cleaned, SAMPLE_RATE, 512.0, FFTLENGTH)


def test_range_doubles_when_the_asd_halves(noise: np.ndarray) -> None:
    # At ~0.3 Mpc cosmological corrections are negligible: range ~ 1/ASD.
    strain = 1e-19 * noise
    frequencies, asd = welch_asd(
        np.stack([strain, 0.5 * strain]), SAMPLE_RATE, FFTLENGTH
    )

    raw_range = bns_range(frequencies, asd[0])
    cleaned_range = bns_range(frequencies, asd[1])

    assert 0.01 < raw_range < 1.0
    assert cleaned_range / raw_range == pytest.approx(2.0, rel=1e-4)


class TestTruthMetrics:
    def test_excess_over_ideal(self, noise: np.ndarray) -> None:
        frequencies, asd = welch_asd(
            np.stack([1.1 * noise, noise]), SAMPLE_RATE, FFTLENGTH
        )
        assert excess_over_ideal(
            frequencies, asd[0], asd[1], BANDS
        ) == pytest.approx(0.1, rel=1e-9)

    def test_coupled_power_removed(self, noise: np.ndarray) -> None:
        coupled = 3.0 * np.sin(2 * np.pi * 58.3 * times()) + np.roll(noise, 7)
        raw, cleaned = noise + coupled, noise + 0.3 * coupled

        removed = coupled_power_removed(
            raw, cleaned, noise, SAMPLE_RATE, BANDS, FFTLENGTH
        )

        assert removed == pytest.approx(1 - 0.3**2, rel=1e-12)
        with pytest.raises(ValueError, match="no coupled noise"):
            coupled_power_removed(
                noise, noise, noise, SAMPLE_RATE, BANDS, FFTLENGTH
            )


class TestInjectionRecovery:
    optimal_snr = 20.0

    def template(self, time: float, noise_psd: float) -> InjectionTemplate:
        description = {
            "type": "sine_gaussian",
            "time": START + time,
            "frequency": 100.0,
            "q": 10.0,
            "hrss": self.optimal_snr * np.sqrt(noise_psd / 2),
            "phase": 0.3,
        }
        template = injection_template(
            description, START, START + DURATION, SAMPLE_RATE
        )
        assert template is not None
        return template

    def test_snr_before_and_after_cleaning(self, noise: np.ndarray) -> None:
        noise_psd = 2 / SAMPLE_RATE  # one-sided PSD of unit white noise
        inside = self.template(100.0, noise_psd)
        at_edge = self.template(1.0, noise_psd)
        raw = noise.copy()
        for template in (inside, at_edge):
            first = round((template.start - START) * SAMPLE_RATE)
            raw[first : first + template.waveform.size] += template.waveform
        first = round((inside.start - START) * SAMPLE_RATE)
        harmful = raw.copy()
        harmful[first : first + inside.waveform.size] -= 0.5 * inside.waveform
        frequencies, asd = welch_asd(
            np.stack([raw, harmful]), SAMPLE_RATE, FFTLENGTH
        )

        unchanged = injection_recovery(
            raw,
            raw,
            START,
            SAMPLE_RATE,
            [inside, at_edge],
            frequencies,
            asd[0],
            asd[0],
        )
        harmed = injection_recovery(
            raw,
            harmful,
            START,
            SAMPLE_RATE,
            [inside],
            frequencies,
            asd[0],
            asd[1],
        )

        assert len(unchanged) == 1  # the one at the edge is left out
        recovery = unchanged[0]
        assert recovery.kind == "sine_gaussian"
        assert recovery.time == START + 100.0
        assert recovery.optimal_snr_raw == pytest.approx(
            self.optimal_snr, rel=0.03
        )
        assert abs(recovery.matched_filter_snr_raw - self.optimal_snr) < 4
        assert recovery.change_sigma == 0.0
        assert recovery.within_noise
        assert harmed[0].matched_filter_snr_cleaned == pytest.approx(
            recovery.matched_filter_snr_raw - self.optimal_snr / 2, abs=1.0
        )
        assert harmed[0].change_sigma < -5
        assert not harmed[0].within_noise
        with pytest.raises(ValueError, match="not inside the data"):
            matched_filter_snr(
                raw, START, SAMPLE_RATE, at_edge, frequencies, asd[0]
            )

    def test_template_off_the_sample_grid(self, noise: np.ndarray) -> None:
        template = InjectionTemplate(
            kind="sine_gaussian",
            time=START + 100.0,
            start=START + 100.0 + 0.3 / SAMPLE_RATE,
            waveform=np.ones(8),
        )
        frequencies, asd = welch_asd(noise, SAMPLE_RATE, FFTLENGTH)
        with pytest.raises(ValueError, match="sample grid"):
            matched_filter_snr(
                noise, START, SAMPLE_RATE, template, frequencies, asd
            )


def test_band_without_sideband_bins_is_null_in_json(noise: np.ndarray) -> None:
    # The windows 1-2 Hz beside 50-60 Hz lie inside the other bands.
    bands = [(35.0, 49.0), (50.0, 60.0), (61.0, 75.0)]

    strain = 1e-21 * noise
    evaluation = evaluate(
        strain,
        {"DeepClean": 0.5 * strain},
        SAMPLE_RATE,
        bands,
        sideband=(1, 2),
    )

    middle = evaluation.ratios["DeepClean"].bands[1]
    assert np.isnan(middle.out_of_band)
    content = json.loads(json.dumps(evaluation.to_dict(), allow_nan=False))
    assert content["ratios"]["DeepClean"]["bands"][1]["out_of_band"] is None
    assert content["ratios"]["DeepClean"]["in_band"] == pytest.approx(0.5)


class TestEvaluateBadInput:
    def test_reserved_names(self, noise: np.ndarray) -> None:
        with pytest.raises(ValueError, match="reserved"):
            evaluate(noise, {"ideal": noise}, SAMPLE_RATE, BANDS)

    def test_nothing_to_evaluate(self, noise: np.ndarray) -> None:
        with pytest.raises(ValueError, match="at least one cleaned"):
            evaluate(noise, {}, SAMPLE_RATE, BANDS)

    def test_different_spans(self, noise: np.ndarray) -> None:
        with pytest.raises(ValueError, match="same number of samples"):
            evaluate(noise, {"DeepClean": noise[:-1]}, SAMPLE_RATE, BANDS)

    def test_band_above_nyquist(self, noise: np.ndarray) -> None:
        with pytest.raises(ValueError, match="Nyquist"):
            evaluate(noise, {"DeepClean": noise}, SAMPLE_RATE, [(250, 300)])
