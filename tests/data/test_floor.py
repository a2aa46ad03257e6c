"""The witness floor predicts the coupled strain as well as the witnesses
allow: exactly from noiseless witnesses, better than the raw recordings
from noisy ones."""

from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from deepclean_data.simulate import simulate
from deepclean_data.simulation import (
    ChannelRoles,
    SimulatedDetector,
    floor,
    load_simulation_config,
)
from deepclean_io.truth import read_truth

PRESETS = Path(__file__).parents[2] / "benchmarks" / "families"
STRAIN = "H1:GDS-CALIB_STRAIN"
MAINS = "H1:PEM-CS_MAINSMON_EBAY_1_DQ"
WITNESSES = [MAINS, "H1:ASC-CHARD_P_INMON", "H1:ASC-DHARD_Y_INMON"]
SAMPLE_RATE = 4096.0
# Off the 64 s block grid, so the span starts and ends inside blocks.
START = 1_250_000_032
DURATION = 128.0
FIT = 96.0
SEED = 3


def floor_residual(tmp_path: Path, preset: str) -> float:
    """In-band power of coupled minus its floor estimate after the fit,
    over that of the coupled strain."""
    config = load_simulation_config(PRESETS / f"{preset}.yaml")
    fname = simulate(
        tmp_path,
        START,
        DURATION,
        STRAIN,
        WITNESSES,
        MAINS,
        sample_rate=SAMPLE_RATE,
        seed=SEED,
        config=config,
        progress=False,
    )
    estimate, t0 = floor.simulated_file_floor(fname, START + FIT)
    assert t0 == START
    coupled = read_truth(fname, START + FIT, START + DURATION).coupled
    residual = coupled - estimate[round(FIT * SAMPLE_RATE) :]
    frequencies, coupled_psd = signal.welch(coupled, SAMPLE_RATE, nperseg=4096)
    _, residual_psd = signal.welch(residual, SAMPLE_RATE, nperseg=4096)
    low, high = config.coupling.band
    band = (frequencies >= low) & (frequencies <= high)
    return residual_psd[band].sum() / coupled_psd[band].sum()


@pytest.mark.parametrize("preset", ["bilinear_drift_exact", "nonlinear_exact"])
def test_noiseless_witnesses_predict_the_coupling_exactly(tmp_path, preset):
    # Every term, the drift and the rectified inputs, on a span that
    # starts and ends inside simulation blocks.
    assert floor_residual(tmp_path, preset) < 1e-5


def test_noisy_witnesses_leave_a_floor_the_smoother_lowers(
    tmp_path, monkeypatch
):
    residual = floor_residual(tmp_path / "floor", "bilinear_drift")
    # Sensor noise at the sidebands' offsets is not negligible...
    assert 1e-4 < residual < 1e-2

    # ... and the Wiener smoother removes much of it: the raw recordings
    # plugged into the coupling leave more.
    def recorded_as_is(recorded, motion, fit, taps):
        return recorded.astype(np.float64), 0.0

    monkeypatch.setattr(floor, "_smooth", recorded_as_is)
    assert floor_residual(tmp_path / "raw", "bilinear_drift") > 1.5 * residual


def test_expected_magnitude_is_that_of_the_gaussian_posterior():
    rng = np.random.default_rng(0)
    means = np.array([-3.0, -0.5, 0.0, 0.2, 2.0])
    samples = means[:, None] + 0.7 * rng.standard_normal((5, 200_000))
    np.testing.assert_allclose(
        floor._expected_magnitude(means, 0.49),
        np.abs(samples).mean(axis=1),
        rtol=5e-3,
    )
    np.testing.assert_array_equal(
        floor._expected_magnitude(means, 0.0), np.abs(means)
    )


def test_bad_spans_and_rows_are_refused(tmp_path):
    config = load_simulation_config(PRESETS / "bilinear_drift.yaml")
    roles = ChannelRoles.assign(
        STRAIN, WITNESSES, MAINS, True, config.candidates
    )
    detector = SimulatedDetector(roles, SAMPLE_RATE, SEED, config)
    recorded = np.zeros((2, round(DURATION * SAMPLE_RATE)), np.float32)
    with pytest.raises(ValueError, match="2 angular witnesses"):
        floor.witness_floor(detector, recorded[:1], START, START + FIT)
    with pytest.raises(ValueError, match="at least 32.0 s"):
        floor.witness_floor(detector, recorded, START, START + 16)
    with pytest.raises(ValueError, match="inside the 128.0 s"):
        floor.witness_floor(detector, recorded, START, START + 200)


def test_a_file_without_its_simulation_parameters_is_refused(tmp_path):
    fname = tmp_path / "data.hdf5"
    fname.touch()
    with pytest.raises(FileNotFoundError, match="deepclean-data simulate"):
        floor.simulated_file_floor(fname, START + FIT)
