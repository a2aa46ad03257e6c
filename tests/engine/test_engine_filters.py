"""BandpassFilter against scipy's sosfiltfilt; settling-time padding."""

import numpy as np
import pytest
import scipy.signal
import torch

from deepclean_engine import BandpassFilter, butterworth_sos

SAMPLE_RATE = 512.0


def sosfiltfilt_sum(
    x: np.ndarray, bands: list[tuple[float, float]], order: int = 8
) -> np.ndarray:
    """Reference: one scipy zero-phase filter per band, outputs summed."""
    return sum(
        scipy.signal.sosfiltfilt(sos, x)
        for sos in butterworth_sos(bands, SAMPLE_RATE, order)
    )


class TestBandpassFilter:
    bands = [(20.0, 30.0), (55.0, 65.0)]
    duration = 64

    def white(self) -> torch.Tensor:
        return torch.randn(
            int(self.duration * SAMPLE_RATE), dtype=torch.float64
        )

    def test_matches_sosfiltfilt_in_the_interior(self) -> None:
        """Far from the ends (where scipy's own edge transient has died)."""
        x = self.white()
        bandpass = BandpassFilter(self.bands, SAMPLE_RATE)
        edge = x.shape[-1] // 4
        ours = bandpass(x).numpy()[edge:-edge]
        reference = sosfiltfilt_sum(x.numpy(), self.bands)[edge:-edge]
        np.testing.assert_allclose(
            ours, reference, atol=1e-9 * reference.std()
        )

    def test_padded_segments_match_the_long_series(self) -> None:
        """Frame + settling time on both sides: error ~ sqrt(1 - 0.99999)."""
        x = self.white()
        bandpass = BandpassFilter(self.bands, SAMPLE_RATE)
        pad, frame = bandpass.settling_size, int(SAMPLE_RATE)
        reference = sosfiltfilt_sum(x.numpy(), self.bands)
        segments = x[4 * frame :].unfold(-1, frame + 2 * pad, frame)[:40]
        frames = bandpass(segments)[:, pad : pad + frame].reshape(-1)
        expected = reference[4 * frame + pad :][: frames.shape[0]]
        error = np.std(frames.numpy() - expected) / np.std(expected)
        assert error < 1e-2

    def test_batched_shape_and_dtype(self) -> None:
        bandpass = BandpassFilter([(55.0, 65.0)], SAMPLE_RATE)
        x = torch.randn(3, 2, 1000)
        y = bandpass(x)
        assert y.shape == x.shape and y.dtype == torch.float32
        np.testing.assert_allclose(
            y[1, 1].numpy(), bandpass(x[1, 1].double()).numpy(), atol=1e-5
        )

    def test_state_dict_round_trip_and_dtype(self) -> None:
        bandpass = BandpassFilter(self.bands, SAMPLE_RATE)
        assert bandpass.sos.shape == (2, 8, 6)
        copy = BandpassFilter(self.bands, SAMPLE_RATE)
        copy.load_state_dict(bandpass.state_dict())
        x = self.white()
        torch.testing.assert_close(copy(x), bandpass(x))
        single = BandpassFilter(self.bands, SAMPLE_RATE).to(torch.float32)
        assert single.sos.dtype == torch.float32
        torch.testing.assert_close(
            single(x.float()).double(), bandpass(x), atol=1e-4, rtol=0
        )

    def test_loading_a_state_dict_replaces_the_cached_response(self) -> None:
        x = self.white()
        shifted = [(low + 5, high + 5) for low, high in self.bands]
        bandpass = BandpassFilter(self.bands, SAMPLE_RATE)
        bandpass(x)
        bandpass.load_state_dict(
            BandpassFilter(shifted, SAMPLE_RATE).state_dict()
        )
        edge = x.shape[-1] // 4
        reference = sosfiltfilt_sum(x.numpy(), shifted)[edge:-edge]
        np.testing.assert_allclose(
            bandpass(x).numpy()[edge:-edge],
            reference,
            atol=1e-9 * reference.std(),
        )

    def test_rejects_integer_input(self) -> None:
        with pytest.raises(TypeError, match="floating-point"):
            BandpassFilter([(55.0, 65.0)], SAMPLE_RATE)(torch.arange(100))
