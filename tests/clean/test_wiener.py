"""Tests for the Wiener-filter baselines (deepclean_clean.wiener)."""

import numpy as np
import pytest
from scipy import signal

from deepclean_clean.evaluate import asd_ratios, excess_over_ideal, welch_asd
from deepclean_clean.wiener import WienerFilter, find_mains, wiener_baselines

SAMPLE_RATE = 512.0
BANDS = [(55.0, 65.0)]
TRAIN = 1024.0
TEST = 512.0
# ASDs of the evaluation: 4 s FFTs, as the report's default.
EVALUATION_FFTLENGTH = 4.0


def samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


def split(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training and test parts along the last axis."""
    return series[..., : samples(TRAIN)], series[..., samples(TRAIN) :]


def excess(cleaned: np.ndarray, ideal: np.ndarray) -> float:
    frequencies, asd = welch_asd(
        np.stack([cleaned, ideal]), SAMPLE_RATE, EVALUATION_FFTLENGTH
    )
    return excess_over_ideal(frequencies, asd[0], asd[1], BANDS)


@pytest.fixture(scope="module")
def linear_coupling() -> dict[str, np.ndarray]:
    """Four witnesses, three coupling linearly through random filters.

    The coupled noise is ~2x the background ASD in the band; the fourth
    witness does not couple.
    """
    rng = np.random.default_rng(7)
    size = samples(TRAIN + TEST)
    witnesses = rng.standard_normal((4, size))
    background = rng.standard_normal(size)
    coupled = sum(
        signal.lfilter(rng.standard_normal(8) / 4, 1.0, witnesses[row])
        for row in range(3)
    )
    coupled += signal.lfilter(
        *signal.iirpeak(60.0, 5.0, fs=SAMPLE_RATE), witnesses[2]
    )
    return {
        "witnesses": witnesses,
        "background": background,
        "strain": background + coupled,
    }


def test_linear_coupling_removed_to_within_one_percent_of_ideal(
    linear_coupling: dict[str, np.ndarray],
) -> None:
    train_witnesses, test_witnesses = split(linear_coupling["witnesses"])
    train_strain, test_strain = split(linear_coupling["strain"])
    _, ideal = split(linear_coupling["background"])

    wiener = WienerFilter(BANDS, fftlength=1.0)
    wiener.fit(train_witnesses, train_strain, SAMPLE_RATE)
    cleaned = wiener.clean(test_witnesses, test_strain)

    assert excess(test_strain, ideal) > 0.5
    assert abs(excess(cleaned, ideal)) < 0.01
    frequencies, asd = welch_asd(
        np.stack([test_strain, cleaned]), SAMPLE_RATE, EVALUATION_FFTLENGTH
    )
    ratios = asd_ratios(frequencies, asd[0], asd[1], BANDS)
    assert ratios.out_of_band == pytest.approx(1.0, abs=1e-3)


def test_transfer_function_matches_the_coupling_filter() -> None:
    rng = np.random.default_rng(3)
    witness = rng.standard_normal((1, samples(256.0)))
    taps = np.array([0.0, 0.5, -0.3, 0.2])
    strain = signal.lfilter(taps, 1.0, witness[0])
    strain += 1e-3 * rng.standard_normal(strain.size)

    wiener = WienerFilter(BANDS, fftlength=1.0).fit(
        witness, strain, SAMPLE_RATE
    )

    assert wiener.frequencies.min() < BANDS[0][0]
    assert wiener.frequencies.max() > BANDS[0][1]
    _, expected = signal.freqz(taps, worN=wiener.frequencies, fs=SAMPLE_RATE)
    np.testing.assert_allclose(
        wiener.transfer_functions[0], expected, rtol=0, atol=1e-2
    )


def test_products_remove_a_bilinear_coupling_the_plain_filter_cannot() -> None:
    rng = np.random.default_rng(11)
    size = samples(TRAIN + TEST)
    times = np.arange(size) / SAMPLE_RATE
    mains = np.sin(2 * np.pi * 60.0 * times + 0.3 * np.sin(times / 50))
    motion = signal.lfilter(
        *signal.butter(4, 4.0, fs=SAMPLE_RATE), rng.standard_normal((2, size))
    )
    witnesses = np.stack(
        [
            100 * mains + 0.01 * rng.standard_normal(size),
            *(motion + 1e-3 * rng.standard_normal((2, size))),
        ]
    )
    background = rng.standard_normal(size)
    strain = background + 4 * mains * (motion[0] - 0.5 * motion[1])
    train_witnesses, test_witnesses = split(witnesses)
    train_strain, test_strain = split(strain)
    _, ideal = split(background)

    cleaned = wiener_baselines(
        train_witnesses,
        train_strain,
        test_witnesses,
        test_strain,
        SAMPLE_RATE,
        BANDS,
        mains_index=0,
    )

    assert set(cleaned) == {"Wiener", "Wiener + products"}
    assert excess(test_strain, ideal) > 1.0
    assert excess(cleaned["Wiener"], ideal) > 1.0
    assert excess(cleaned["Wiener + products"], ideal) < 0.03


def test_inputs_add_mains_products_after_the_witnesses() -> None:
    rng = np.random.default_rng(5)
    witnesses = rng.standard_normal((3, samples(8.0)))
    wiener = WienerFilter(BANDS, mains_index=1).fit(
        witnesses, rng.standard_normal(samples(8.0)), SAMPLE_RATE
    )

    inputs = list(wiener.inputs(witnesses))

    assert wiener.transfer_functions.shape == (5, wiener.frequencies.size)
    np.testing.assert_array_equal(inputs[:3], witnesses)
    np.testing.assert_array_equal(inputs[3], witnesses[1] * witnesses[0])
    np.testing.assert_array_equal(inputs[4], witnesses[1] * witnesses[2])


def test_find_mains() -> None:
    channels = ["H1:PEM-CS_MAINSMON_EBAY_1_DQ", "H1:ASC-CHARD_P_INMON"]
    assert find_mains(channels, "H1:ASC-CHARD_P_INMON") == 1
    with pytest.raises(ValueError) as error:
        find_mains(channels, "H1:PEM-EY_MAINSMON_EBAY_1_DQ")
    assert "'H1:PEM-EY_MAINSMON_EBAY_1_DQ' is not among" in str(error.value)
    assert "--mains_channel" in str(error.value)


class TestBadInput:
    witnesses = np.ones((2, samples(8.0)))
    strain = np.ones(samples(8.0))

    def test_predict_before_fit(self) -> None:
        with pytest.raises(RuntimeError, match="fit"):
            WienerFilter(BANDS).predict(self.witnesses)

    def test_nan_witnesses(self) -> None:
        witnesses = self.witnesses.copy()
        witnesses[1, 5] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            WienerFilter(BANDS).fit(witnesses, self.strain, SAMPLE_RATE)

    def test_strain_of_another_length(self) -> None:
        with pytest.raises(ValueError, match="samples"):
            WienerFilter(BANDS).fit(
                self.witnesses, self.strain[:-1], SAMPLE_RATE
            )

    def test_span_shorter_than_fftlength(self) -> None:
        with pytest.raises(ValueError, match="shorter than fftlength"):
            WienerFilter(BANDS, fftlength=16.0).fit(
                self.witnesses, self.strain, SAMPLE_RATE
            )

    def test_other_channels_at_prediction(self) -> None:
        rng = np.random.default_rng(0)
        wiener = WienerFilter(BANDS).fit(
            rng.standard_normal((2, samples(8.0))), self.strain, SAMPLE_RATE
        )
        with pytest.raises(ValueError, match="same channels"):
            wiener.predict(self.witnesses[:1])

    def test_mains_index_out_of_range(self) -> None:
        with pytest.raises(ValueError, match="mains_index"):
            WienerFilter(BANDS, mains_index=2).fit(
                self.witnesses, self.strain, SAMPLE_RATE
            )

    def test_bad_bands(self) -> None:
        with pytest.raises(ValueError, match="Nyquist"):
            WienerFilter([(55.0, 300.0)]).fit(
                self.witnesses, self.strain, SAMPLE_RATE
            )
