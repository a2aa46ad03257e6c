"""Tests for deepclean_io.waveforms: injection waveforms and their JSON
descriptions."""

import json

import numpy as np
import pytest

from deepclean_io.waveforms import (
    SOLAR_MASS_SECONDS,
    Chirp,
    SineGaussian,
    describe,
    from_description,
    time_to_coalescence,
)

SINE_GAUSSIAN = SineGaussian(
    time=1_000_000_010.0, frequency=100.0, q=10.0, hrss=1e-22, phase=0.3
)
CHIRP = Chirp(
    coalescence_time=1_000_000_020.0,
    chirp_mass=1.2,
    distance=40.0,
    inclination=0.5,
    phase=1.0,
    frequency_start=30.0,
    frequency_end=300.0,
)


@pytest.mark.parametrize(
    ("injection", "kind", "reference_time"),
    [
        (SINE_GAUSSIAN, "sine_gaussian", SINE_GAUSSIAN.time),
        (CHIRP, "chirp", CHIRP.coalescence_time),
    ],
)
def test_description_round_trips_through_json(
    injection, kind, reference_time
) -> None:
    description = json.loads(json.dumps(describe(injection)))
    assert description["type"] == kind
    assert from_description(description) == injection
    assert injection.reference_time == reference_time


def test_sine_gaussian_has_its_hrss() -> None:
    offsets = np.arange(-1.0, 1.0, 1 / 4096)
    wave = SINE_GAUSSIAN.strain(SINE_GAUSSIAN.time, offsets)
    assert np.sqrt(np.sum(wave**2) / 4096) == pytest.approx(1e-22, rel=1e-3)


def test_unknown_injection_type() -> None:
    with pytest.raises(ValueError, match="unknown injection type 'ringdown'"):
        from_description({"type": "ringdown", "time": 0.0})


def test_chirp_sweeps_at_the_leading_order_rate() -> None:
    chirp = Chirp(
        coalescence_time=100.0,
        chirp_mass=1.2,
        distance=40.0,
        inclination=0.0,
        phase=0.0,
        frequency_start=30.0,
        frequency_end=300.0,
    )
    start, end = chirp.span
    assert end - start == pytest.approx(
        time_to_coalescence(30.0, 1.2) - time_to_coalescence(300.0, 1.2)
    )
    offsets = np.arange(0, 4.0, 1 / 16384)
    for seconds_before in (20.0, 2.0):
        gps = 100.0 - seconds_before - 2.0
        wave = chirp.strain(gps, offsets)
        crossings = np.sum(np.diff(np.sign(wave[15000:50000])) != 0)
        measured = crossings / 2 / (35000 / 16384)
        expected = (
            (5 / (256 * seconds_before)) ** (3 / 8)
            * (1.2 * SOLAR_MASS_SECONDS) ** (-5 / 8)
            / np.pi
        )
        assert measured == pytest.approx(expected, rel=0.03)
    assert np.all(chirp.strain(start - 10, offsets) == 0)
    # BNS at 40 Mpc near 100 Hz: h ~ 1e-22.
    assert 3e-23 < np.max(np.abs(chirp.strain(98.5, offsets))) < 3e-22
