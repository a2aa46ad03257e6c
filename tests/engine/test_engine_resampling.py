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


class TestDecimatedWindows:
    """``Decimator.windows``: a span's windows decimated as if alone."""

    @staticmethod
    def one_by_one(
        decimator: Decimator, x: torch.Tensor, kernel: int, stride: int
    ) -> torch.Tensor:
        return decimator(x.unfold(-1, kernel, stride).transpose(0, 1))

    @pytest.mark.parametrize(
        ("factor", "kernel", "stride"),
        [
            (8, 2048, 1024),  # 2 s every 1 s at 1024 Hz
            (16, 8192, 4096),  # 2 s every 1 s at 4096 Hz
            (16, 20480, 16384),  # 5 s every 4 s
            (16, 8192, 8192),  # back to back
            (16, 4096, 6144),  # gaps between windows
            (16, 8192, 3000),  # stride off the decimated grid
        ],
    )
    def test_equals_decimating_each_window(
        self, factor: int, kernel: int, stride: int
    ) -> None:
        x = torch.randn(3, 6 * stride + kernel + 5, dtype=torch.float64)
        decimator = Decimator(factor)
        windows = decimator.windows(x, kernel, stride)
        expected = self.one_by_one(decimator, x, kernel, stride)
        assert windows.shape == (7, 3, kernel // factor)
        torch.testing.assert_close(windows, expected, rtol=0, atol=1e-12)

    def test_window_edges_are_recomputed(self) -> None:
        """The span's own decimation differs at the inner window edges
        (it sees the neighbouring data), so the test above checks them."""
        factor, kernel, stride = 16, 8192, 4096
        x = torch.randn(2, 4 * stride + kernel, dtype=torch.float64)
        decimator = Decimator(factor)
        shared = decimator(x).unfold(-1, kernel // factor, stride // factor)
        shared = shared.transpose(0, 1)
        windows = decimator.windows(x, kernel, stride)
        edge = -(-decimator.half_length // factor)
        inner = (windows - shared)[1:-1].abs()
        assert (inner[..., :edge].amax(dim=-1) > 1e-3).all()
        assert (inner[..., -edge:].amax(dim=-1) > 1e-3).all()
        assert inner[..., edge:-edge].max() < 1e-12

    def test_scripted_and_float32(self) -> None:
        x = 100 * torch.randn(4, 5 * 4096 + 8192)
        decimator = Decimator(16)
        scripted = torch.jit.script(decimator)
        expected = self.one_by_one(decimator, x, 8192, 4096)
        # float32: the blocks of the span and of a window add in another
        # order, so results agree to rounding
        scale = expected.abs().max()
        torch.testing.assert_close(
            scripted.windows(x, 8192, 4096),
            expected,
            rtol=0,
            atol=1e-6 * scale,
        )


def test_decimator_loads_state_dicts_of_other_block_layouts() -> None:
    """Checkpoints saved with 32-sample blocks hold another matrix."""
    decimator = Decimator(16)
    x = torch.randn(2, 4096, dtype=torch.float64)
    before = decimator(x)
    decimator.load_state_dict({"matrix": torch.zeros(512, 64)})
    torch.testing.assert_close(decimator(x), before, rtol=0, atol=0)
