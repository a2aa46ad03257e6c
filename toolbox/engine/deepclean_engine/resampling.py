"""Integer-factor FIR decimation and interpolation as torch modules.

Both use one linear-phase (symmetric) Kaiser-window low-pass
designed for the lower rate ``sample_rate / factor``: cutoff at its
Nyquist frequency, transition band a quarter of the lower rate wide,
``attenuation`` dB in the stop band. Frequencies up to
:func:`passband_edge` (0.375 x the lower rate) pass unchanged and
anything that would alias onto them is suppressed by ``attenuation``
dB. The filters are centred, so neither module delays the signal:
output sample ``i`` of the decimator sits at input sample
``i * factor``. Inputs are zero-extended at the ends, so the first and
last ``(num_taps - 1) / 2`` input samples see the edge.
"""

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

DEFAULT_ATTENUATION = 80.0
_TRANSITION_FRACTION = 0.25
_PASSBAND_FRACTION = 0.5 - _TRANSITION_FRACTION / 2


def resampling_factor(sample_rate: float, lower_rate: float) -> int:
    """Integer ratio of two sample rates.

    Raises:
        ValueError: ``lower_rate`` is not ``sample_rate`` divided by a
            positive integer.
    """
    factor = round(sample_rate / lower_rate)
    if factor < 1 or not np.isclose(factor * lower_rate, sample_rate):
        raise ValueError(
            f"{lower_rate:g} Hz is not {sample_rate:g} Hz divided by an "
            "integer; choose a rate such as "
            f"{sample_rate / 8:g} or {sample_rate / 16:g} Hz"
        )
    return factor


def passband_edge(lower_rate: float) -> float:
    """Highest frequency (Hz) the resampling filters leave untouched."""
    return _PASSBAND_FRACTION * lower_rate


def lowpass_taps(
    factor: int, attenuation: float = DEFAULT_ATTENUATION
) -> np.ndarray:
    """Odd-length Kaiser low-pass for resampling by ``factor``.

    Args:
        factor: integer rate ratio (> 1).
        attenuation: stop-band attenuation, dB.

    Returns:
        Filter taps, unit gain at 0 Hz, shape ``(num_taps,)``.
    """
    if factor < 2:
        raise ValueError(f"resampling needs a factor > 1, got {factor}")
    width = 2 * _TRANSITION_FRACTION / factor
    num_taps, beta = scipy.signal.kaiserord(attenuation, width)
    num_taps |= 1
    return scipy.signal.firwin(
        num_taps, 1 / factor, window=("kaiser", beta), scale=True
    )


def _fft_length(minimum: int) -> int:
    """Smallest ``2**a``, ``3 * 2**a`` or ``9 * 2**a`` not below ``minimum``.

    Sizes with few factors of 3 transform fastest.
    """
    best = minimum * 2
    for odd in (1, 3, 9):
        candidate = odd
        while candidate < minimum:
            candidate *= 2
        best = min(best, candidate)
    return best


def _centred_convolution(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Linear convolution with odd-length ``taps`` centred on each sample.

    Done by zero-padded FFTs, so the cost barely depends on the number
    of taps; equal to the direct convolution to rounding.

    Args:
        x: ``(..., time)``.
        taps: ``(num_taps,)``, ``num_taps`` odd.

    Returns:
        ``(..., time)``.
    """
    length = x.shape[-1]
    num_taps = taps.shape[-1]
    size = _fft_length(length + num_taps - 1)
    spectrum = torch.fft.rfft(x, n=size) * torch.fft.rfft(
        taps.to(x.dtype), n=size
    )
    start = (num_taps - 1) // 2
    return torch.fft.irfft(spectrum, n=size)[..., start : start + length]


class Decimator(torch.nn.Module):
    """Anti-aliased downsampling by an integer factor.

    Args:
        factor: input samples per output sample (> 1).
        attenuation: stop-band attenuation, dB.

    Buffers:
        taps: low-pass taps, ``(num_taps,)``, float32.
    """

    def __init__(
        self, factor: int, attenuation: float = DEFAULT_ATTENUATION
    ) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer(
            "taps",
            torch.tensor(
                lowpass_taps(factor, attenuation), dtype=torch.float32
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter and keep every ``factor``-th sample.

        Args:
            x: ``(..., time)``, e.g. ``(batch, channels, time)``; ``time``
                a multiple of ``factor``.

        Returns:
            ``(..., time // factor)``; sample ``i`` at input sample
            ``i * factor``.
        """
        if x.shape[-1] % self.factor:
            raise ValueError(
                f"cannot decimate {x.shape[-1]} samples by {self.factor}: "
                "the length must be a multiple of the factor"
            )
        return _centred_convolution(x, self.taps)[..., :: self.factor]


class Interpolator(torch.nn.Module):
    """Band-limited upsampling by an integer factor.

    Zero-stuffing followed by the low-pass, scaled by ``factor`` to keep
    the amplitude.

    Args:
        factor: output samples per input sample (> 1).
        attenuation: stop-band attenuation of the image rejection, dB.

    Buffers:
        taps: ``factor`` x low-pass taps, ``(num_taps,)``, float32.
    """

    def __init__(
        self, factor: int, attenuation: float = DEFAULT_ATTENUATION
    ) -> None:
        super().__init__()
        self.factor = factor
        taps = factor * lowpass_taps(factor, attenuation)
        self.register_buffer("taps", torch.tensor(taps, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample.

        Args:
            x: ``(..., time)``.

        Returns:
            ``(..., time * factor)``; input sample ``i`` lands on output
            sample ``i * factor``.
        """
        stuffed = F.pad(x.unsqueeze(-1), (0, self.factor - 1)).flatten(-2)
        return _centred_convolution(stuffed, self.taps)
