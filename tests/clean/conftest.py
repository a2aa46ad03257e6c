"""Data shared by the NOMAD and classical-stage tests."""

import numpy as np
import pytest
from scipy import signal

BILINEAR_RATE = 512.0
BILINEAR_DURATION = 384.0


@pytest.fixture(scope="session")
def bilinear() -> dict[str, np.ndarray]:
    """384 s at 512 Hz of a wandering mains line mixed with two slow
    motions into strain.

    Rows of ``witnesses``: slow motion, mains monitor, slow motion,
    an uncoupled decoy.
    """
    rng = np.random.default_rng(3)
    size = round(BILINEAR_RATE * BILINEAR_DURATION)
    times = np.arange(size) / BILINEAR_RATE
    mains = np.sin(2 * np.pi * 60.0 * times + 0.3 * np.sin(times / 20))
    motion = signal.lfilter(
        *signal.butter(4, 3.0, fs=BILINEAR_RATE),
        rng.standard_normal((2, size)),
    )
    motion /= motion.std(axis=1, keepdims=True)
    witnesses = np.stack(
        [
            motion[0] + 1e-3 * rng.standard_normal(size),
            100 * mains + 0.01 * rng.standard_normal(size),
            motion[1] + 1e-3 * rng.standard_normal(size),
            rng.standard_normal(size),
        ]
    )
    background = rng.standard_normal(size)
    strain = background + 0.5 * mains + mains * (motion[0] - 0.6 * motion[1])
    return {"witnesses": witnesses, "strain": strain, "ideal": background}
