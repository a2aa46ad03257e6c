"""FIR decimation and interpolation modules."""

import numpy as np
import pytest
import scipy.signal
import torch

from deepclean_engine.resampling import (
    Decimator,
    Interpolator,
    lowpass_taps,
    passband_edge,
    resampling_factor,
)

SAMPLE_RATE = 4096.0


@pytest.mark.parametrize("factor", [2, 8, 16])
def test_lowpass_passes_the_passband_and_stops_aliases(factor: int) -> None:
    taps = lowpass_taps(factor)
    assert len(taps) % 2 == 1
    np.testing.assert_allclose(taps, taps[::-1])
    lower_rate = SAMPLE_RATE / factor
    frequencies, response = scipy.signal.freqz(
        taps, worN=2**16, fs=SAMPLE_RATE
    )
    gain = np.abs(response)
    passband = frequencies <= passband_edge(lower_rate)
    np.testing.assert_allclose(gain[passband], 1, atol=2e-4)
    # everything that folds onto the passband when decimating
    aliases = frequencies >= lower_rate - passband_edge(lower_rate)
    assert 20 * np.log10(gain[aliases].max()) < -78


def _as_stored(taps: np.ndarray) -> np.ndarray:
    """Taps rounded to the float32 the modules compute with."""
    return taps.astype(np.float32).astype(np.float64)


def _direct_same(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    half = (len(taps) - 1) // 2
    full = scipy.signal.upfirdn(taps, x)
    return full[half : half + len(x)]


def test_decimator_is_the_centred_fir_sampled_every_factor() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 1024))
    decimator = Decimator(8)
    out = decimator(torch.from_numpy(x))
    taps = _as_stored(lowpass_taps(8))
    expected = np.stack(
        [[_direct_same(row, taps)[::8] for row in rows] for rows in x]
    )
    assert out.shape == (2, 3, 128)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)


def test_interpolator_is_zero_stuffing_and_the_centred_fir() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 128))
    interpolator = Interpolator(8)
    out = interpolator(torch.from_numpy(x))
    taps = _as_stored(8 * lowpass_taps(8))
    stuffed = np.zeros((3, 1024))
    stuffed[:, ::8] = x
    expected = np.stack([_direct_same(row, taps) for row in stuffed])
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)


def test_tones_keep_amplitude_and_phase_through_a_round_trip() -> None:
    time = np.arange(8 * 4096) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * 60.3 * time + 0.4)
    alias = np.sin(2 * np.pi * 3000.0 * time)
    decimated = Decimator(8)(torch.from_numpy(tone + alias)).numpy()
    middle = slice(64, -64)
    np.testing.assert_allclose(decimated[middle], tone[::8][middle], atol=2e-4)
    restored = Interpolator(8)(torch.from_numpy(decimated)).numpy()
    np.testing.assert_allclose(restored[512:-512], tone[512:-512], atol=4e-4)


def test_scripted_modules_match_and_carry_their_filter() -> None:
    x = torch.randn(2, 5, 512)
    for module in (Decimator(4), Interpolator(4)):
        scripted = torch.jit.script(module)
        torch.testing.assert_close(scripted(x), module(x))
        assert "matrix" in dict(module.named_buffers())


def test_interpolator_passes_gradients() -> None:
    x = torch.randn(4, 64, requires_grad=True)
    Interpolator(4)(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_decimating_a_length_that_is_not_a_multiple_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple of the factor"):
        Decimator(8)(torch.zeros(1, 1, 1001))


def test_resampling_factor() -> None:
    assert resampling_factor(4096.0, 512.0) == 8
    assert resampling_factor(4096.0, 4096.0) == 1
    with pytest.raises(ValueError, match="divided by an integer"):
        resampling_factor(4096.0, 600.0)
    with pytest.raises(ValueError, match="divided by an integer"):
        resampling_factor(4096.0, 8192.0)
