"""Tests for deepclean_clean.biquads: NOMAD's coupling-filter bank by
blocks."""

import numpy as np
import pytest
from nomad.core.sosbank import AdditiveSOSBank
from scipy import signal

from deepclean_clean.biquads import SummedBiquads

RATE = 1024.0


def sections(num_signals: int, per_signal: int) -> np.ndarray:
    """Resonant and low-pass biquads, some with poles close to the unit
    circle, ``(signals, sections, 6)``."""
    rng = np.random.default_rng(5)
    rows = []
    for _ in range(num_signals * per_signal):
        if rng.random() < 0.5:
            b, a = signal.iirpeak(
                rng.uniform(20, 400), rng.uniform(5, 300), fs=RATE
            )
            row = np.concatenate([b * rng.normal(), a])
        else:
            row = signal.butter(
                2, rng.uniform(10, 300), fs=RATE, output="sos"
            )[0]
        rows.append(row)
    return np.array(rows).reshape(num_signals, per_signal, 6)


@pytest.mark.parametrize("block_size", [1, 7, 64])
def test_equals_nomads_bank_fed_in_any_chunks(block_size) -> None:
    bank = sections(5, 3)
    signals = np.random.default_rng(6).standard_normal((3000, 5)) + 2.0
    # empty chunks, one sample, partial and several whole blocks
    cuts = [0, 0, 1, 50, 64, 200, 1400, 1401, 3000]
    expected = AdditiveSOSBank(bank)
    computed = SummedBiquads(bank, block_size)
    for start, end in zip(cuts[:-1], cuts[1:], strict=True):
        chunk = signals[start:end]
        want = expected.process_summed(chunk)
        got = computed.process_summed(chunk)
        assert got.shape == (end - start,)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)


def test_state_starts_as_the_steady_state_of_the_first_sample() -> None:
    """A constant input gives the constant output of the DC gains, from
    the first sample on, as in NOMAD (no start-up transient)."""
    bank = sections(2, 2)
    computed = SummedBiquads(bank)
    output = computed.process_summed(np.full((300, 2), 3.0))
    gains = bank[..., :3].sum(-1) / bank[..., 3:].sum(-1)
    np.testing.assert_allclose(output, 3.0 * gains.sum(), rtol=1e-9)


def test_refuses_sections_it_cannot_apply() -> None:
    bank = sections(2, 2)
    with pytest.raises(ValueError, match="shape"):
        SummedBiquads(bank[0])
    unnormalised = bank.copy()
    unnormalised[0, 0, 3] = 2.0
    with pytest.raises(ValueError, match="a0 = 1"):
        SummedBiquads(unnormalised)
    with pytest.raises(ValueError, match=r"\(time, 2\)"):
        SummedBiquads(bank).process_summed(np.zeros((10, 3)))
