"""Tests for the NOMAD baseline (deepclean_clean.nomad)."""

import numpy as np
import pytest
from scipy import signal

from deepclean_clean.biquads import SummedBiquads
from deepclean_clean.evaluate import excess_over_ideal, welch_asd
from deepclean_clean.nomad import (
    NomadSettings,
    NomadStream,
    apply_nomad,
    fit_nomad,
    model_rate,
    nomad_baseline,
)

SAMPLE_RATE = 512.0
BANDS = [(55.0, 65.0)]
TRAIN = 256.0
TEST = 128.0
SETTINGS = NomadSettings(fftlength=4.0, max_iterations=3000, stride=16.0)


def samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


def excess(cleaned: np.ndarray, ideal: np.ndarray) -> float:
    frequencies, asd = welch_asd(np.stack([cleaned, ideal]), SAMPLE_RATE, 4.0)
    return excess_over_ideal(frequencies, asd[0], asd[1], BANDS)


def fitted(bilinear, mains_index: int):
    """NOMAD fitted on the training span with the given noise witness."""
    train = samples(TRAIN)
    return fit_nomad(
        bilinear["witnesses"][:, :train],
        bilinear["strain"][:train],
        SAMPLE_RATE,
        BANDS,
        mains_index=mains_index,
        settings=SETTINGS,
    )


def test_removes_the_line_and_its_bilinear_sidebands(bilinear) -> None:
    train, test = samples(TRAIN), slice(samples(TRAIN), None)
    cleaned = nomad_baseline(
        bilinear["witnesses"][:, :train],
        bilinear["strain"][:train],
        bilinear["witnesses"][:, test],
        bilinear["strain"][test],
        SAMPLE_RATE,
        BANDS,
        mains_index=1,
        settings=SETTINGS,
    )
    assert set(cleaned) == {"NOMAD"}
    ideal, raw = bilinear["ideal"][test], bilinear["strain"][test]
    assert excess(raw, ideal) > 1.0
    assert excess(cleaned["NOMAD"], ideal) < 0.05
    # what is subtracted lies in the band
    frequencies, psd = signal.welch(
        raw - cleaned["NOMAD"], SAMPLE_RATE, nperseg=samples(4)
    )
    inside = psd[(frequencies > 55) & (frequencies < 65)].sum()
    assert psd[(frequencies < 40) | (frequencies > 80)].sum() < 1e-4 * inside


def test_the_mains_monitor_is_the_noise_witness(bilinear) -> None:
    """With a slow motion as noise witness the sidebands stay."""
    test = slice(samples(TRAIN), None)
    model = fitted(bilinear, mains_index=0)
    assert model.noise_witnesses == ("X1:WITNESS_0",)
    assert model.modulation_order == 1
    cleaned = apply_nomad(
        model,
        bilinear["witnesses"][:, test],
        bilinear["strain"][test],
        SAMPLE_RATE,
        BANDS,
    )
    assert excess(cleaned, bilinear["ideal"][test]) > 0.3


def test_stream_gives_nomads_own_engine_output(bilinear) -> None:
    """The stream's coupling filters (deepclean_clean.biquads) give what
    NOMAD's own filter bank gives, second by second."""
    from nomad.core.sosbank import AdditiveSOSBank

    test = slice(samples(TRAIN), None)
    model = fitted(bilinear, mains_index=1)
    ours = NomadStream(model, 4, SAMPLE_RATE, BANDS)
    assert isinstance(ours.engine._bank, SummedBiquads)
    nomads = NomadStream(model, 4, SAMPLE_RATE, BANDS)
    nomads.engine._bank = AdditiveSOSBank(model.coupling_sos)
    witnesses, strain = (
        bilinear["witnesses"][:, test],
        bilinear["strain"][test],
    )
    second = samples(1.0)
    for start in range(0, samples(16.0), second):
        span = slice(start, start + second)
        expected = nomads.estimate(strain[span], witnesses[:, span])
        np.testing.assert_allclose(
            ours.estimate(strain[span], witnesses[:, span]),
            expected,
            rtol=0,
            atol=1e-9 * np.abs(expected).max(),
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (NomadSettings(sample_rate=384), "must divide the data's sample"),
        (NomadSettings(sample_rate=64), "raise nomad.sample_rate"),
        (NomadSettings(fftlength=128.0), "needs at least 512 s"),
    ],
)
def test_refuses_settings_it_cannot_fit(bilinear, settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        fit_nomad(
            bilinear["witnesses"],
            bilinear["strain"],
            SAMPLE_RATE,
            BANDS,
            mains_index=1,
            settings=settings,
        )


@pytest.mark.parametrize(
    ("requested", "data_rate", "band", "expected"),
    [
        (None, 4096.0, (55.0, 65.0), 1024),
        (None, 512.0, (55.0, 65.0), 512),
        (None, 4096.0, (480.0, 520.0), 2048),
        (None, 4096.0, (1000.0, 1100.0), 4096),
        (256, 4096.0, (55.0, 65.0), 256),
    ],
)
def test_model_rate_leaves_the_band_below_its_nyquist(
    requested, data_rate, band, expected
) -> None:
    assert model_rate(requested, data_rate, [band]) == expected


def test_refuses_witnesses_with_gaps(bilinear) -> None:
    """NOMAD's engine would read NaN as the training mean, silently."""
    witnesses = bilinear["witnesses"].copy()
    witnesses[2, 1000] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_nomad(
            witnesses,
            bilinear["strain"],
            SAMPLE_RATE,
            BANDS,
            mains_index=1,
            settings=SETTINGS,
        )
