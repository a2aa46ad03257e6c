"""Zero-phase Butterworth band-pass filtering in the frequency domain.

The filter of each band is an ``order``-th order Butterworth band-pass
designed with :func:`scipy.signal.butter` as second-order sections (SOS).
Applying it forwards and backwards (:func:`scipy.signal.sosfiltfilt`) is a
zero-phase filter with frequency response ``|H(f)|**2``; here that response
is applied by FFT, which is exact on a periodic signal and, with the zero
extension used below, equal to ``sosfiltfilt`` on the infinite series
everywhere further than the settling time from the ends of the input.
Several bands are filtered separately and summed, so the response is
``sum_b |H_b(f)|**2``.
"""

from collections.abc import Sequence

import numpy as np
import scipy.fft
import scipy.signal
import torch

Band = tuple[float, float]

DEFAULT_FILTER_ORDER = 8
DEFAULT_PAD_ENERGY = 0.99999
_KERNEL_DURATION_BANDWIDTHS = 64.0


def validate_bands(
    bands: Sequence[Sequence[float]], sample_rate: float
) -> tuple[Band, ...]:
    """Check frequency bands and return them sorted as float tuples.

    Args:
        bands: ``(low, high)`` pairs in Hz.
        sample_rate: sample rate in Hz; every band must lie below Nyquist.

    Returns:
        The bands as a tuple of ``(low, high)`` float pairs, sorted by
        ``low``.

    Raises:
        ValueError: no bands, a band that is not ``0 < low < high <
            sample_rate / 2``, or two bands that overlap.
    """
    if len(bands) == 0:
        raise ValueError(
            "no frequency bands given; pass at least one (low, high) pair "
            "in Hz, e.g. [(55.0, 65.0)]"
        )
    nyquist = sample_rate / 2
    checked = []
    for band in bands:
        if len(band) != 2:
            raise ValueError(
                f"band {band!r} is not a (low, high) pair of frequencies in Hz"
            )
        low, high = float(band[0]), float(band[1])
        if not 0 < low < high < nyquist:
            raise ValueError(
                f"band ({low}, {high}) Hz is invalid: need 0 < low < high "
                f"< Nyquist = {nyquist} Hz"
            )
        checked.append((low, high))
    checked.sort()
    for (low_a, high_a), (low_b, high_b) in zip(
        checked, checked[1:], strict=False
    ):
        if low_b < high_a:
            raise ValueError(
                f"bands ({low_a}, {high_a}) Hz and ({low_b}, {high_b}) Hz "
                "overlap; merge them into one band"
            )
    return tuple(checked)


def butterworth_sos(
    bands: Sequence[Sequence[float]],
    sample_rate: float,
    order: int = DEFAULT_FILTER_ORDER,
) -> np.ndarray:
    """Design one Butterworth band-pass per band as second-order sections.

    Args:
        bands: ``(low, high)`` pairs in Hz.
        sample_rate: sample rate in Hz.
        order: order passed to :func:`scipy.signal.butter` (a band-pass of
            order N has 2N poles, i.e. N sections).

    Returns:
        Array of shape ``(bands, sections, 6)`` in scipy's SOS layout
        ``(b0, b1, b2, a0, a1, a2)``.
    """
    if order < 1:
        raise ValueError(f"filter order must be >= 1, got {order}")
    bands = validate_bands(bands, sample_rate)
    return np.stack(
        [
            scipy.signal.butter(
                order, band, btype="bandpass", output="sos", fs=sample_rate
            )
            for band in bands
        ]
    )


def squared_response(sos: torch.Tensor, nfft: int) -> torch.Tensor:
    """Zero-phase (forward-backward) response on an ``nfft``-point grid.

    Args:
        sos: second-order sections, shape ``(bands, sections, 6)``.
        nfft: FFT length in samples.

    Returns:
        ``sum_b |H_b(f)|**2`` at the ``nfft // 2 + 1`` frequencies of
        ``torch.fft.rfft(x, n=nfft)``, float64, on the device of ``sos``.
    """
    sos = sos.to(torch.float64)
    angle = (
        2
        * torch.pi
        * torch.arange(nfft // 2 + 1, dtype=torch.float64, device=sos.device)
        / nfft
    )
    lag = torch.arange(3, dtype=torch.float64, device=sos.device)
    phase = lag[:, None] * angle[None, :]
    cos, sin = torch.cos(phase), torch.sin(phase)

    def power(coefficients: torch.Tensor) -> torch.Tensor:
        real = coefficients @ cos
        imag = coefficients @ sin
        return real**2 + imag**2

    sections = power(sos[..., :3]) / power(sos[..., 3:])
    return sections.prod(dim=-2).sum(dim=0)


def bandpass_settling_time(
    bands: Sequence[Sequence[float]],
    sample_rate: float,
    order: int = DEFAULT_FILTER_ORDER,
    energy: float = DEFAULT_PAD_ENERGY,
) -> float:
    """Half-width holding ``energy`` of the zero-phase filter's kernel.

    The zero-phase filter is a convolution with a symmetric kernel (the
    autocorrelation of the Butterworth impulse response, summed over the
    bands). A segment padded by this time on both sides, filtered and
    cropped, differs from the filtered infinite series by at most the
    kernel energy outside it: a relative RMS error of about
    ``sqrt(1 - energy)``. The time scales as 1/bandwidth: 0.78 s for
    55-65 Hz and 1.93 s for 58-62 Hz at ``energy=0.99999``.

    Args:
        bands: ``(low, high)`` pairs in Hz.
        sample_rate: sample rate in Hz.
        order: Butterworth order per band.
        energy: fraction of the kernel energy, in (0, 1).

    Returns:
        Time in seconds, a whole number of samples.
    """
    if not 0 < energy < 1:
        raise ValueError(f"energy must be in (0, 1), got {energy}")
    bands = validate_bands(bands, sample_rate)
    min_bandwidth = min(high - low for low, high in bands)
    duration = _KERNEL_DURATION_BANDWIDTHS / min_bandwidth
    nfft = 1 << int(np.ceil(np.log2(duration * sample_rate)))
    sos = torch.from_numpy(butterworth_sos(bands, sample_rate, order))
    kernel = np.fft.irfft(squared_response(sos, nfft).numpy(), nfft)
    kernel_energy = kernel[: nfft // 2] ** 2
    cumulative = 2 * np.cumsum(kernel_energy) - kernel_energy[0]
    samples = int(np.searchsorted(cumulative, energy * np.sum(kernel**2)))
    return samples / sample_rate


class BandpassFilter(torch.nn.Module):
    """Zero-phase Butterworth band-pass over one or more bands.

    Equivalent to ``sum_b sosfiltfilt(sos_b, x)`` away from the ends of
    ``x``: the input is zero-extended by the filter's settling time (see
    :func:`bandpass_settling_time`) and filtered by FFT with the response
    ``sum_b |H_b(f)|**2``. Within the settling time of either end the
    output is that of the zero-extended input, so callers pad segments on
    both sides and crop (as the cleaning engine does per frame). There is
    no taper: zero extension's only error in the crop is the kernel tail
    beyond the padding, while a taper would also alter padding samples
    that still feed the crop (measured: a Tukey taper over the outer half
    of the padding doubles the error).

    The response for each FFT length and device is computed once and
    cached (the cache is cleared when a state dict is loaded).

    Args:
        bands: ``(low, high)`` pairs in Hz.
        sample_rate: sample rate in Hz.
        order: Butterworth order per band.

    Buffers:
        sos: float64, shape ``(bands, sections, 6)``.
    """

    def __init__(
        self,
        bands: Sequence[Sequence[float]],
        sample_rate: float,
        order: int = DEFAULT_FILTER_ORDER,
    ) -> None:
        super().__init__()
        self.bands = validate_bands(bands, sample_rate)
        self.sample_rate = float(sample_rate)
        self.order = order
        self.register_buffer(
            "sos",
            torch.from_numpy(butterworth_sos(self.bands, sample_rate, order)),
        )
        self.settling_size = round(
            bandpass_settling_time(self.bands, sample_rate, order)
            * sample_rate
        )
        self._responses: dict[tuple, torch.Tensor] = {}
        self.register_load_state_dict_post_hook(
            lambda module, _: module._responses.clear()
        )

    def response(self, nfft: int) -> torch.Tensor:
        """``sum_b |H_b(f)|**2`` on the ``nfft``-point rfft grid, float64.

        Args:
            nfft: FFT length in samples.

        Returns:
            Shape ``(nfft // 2 + 1,)``, on the device of the buffers.
        """
        key = (nfft, self.sos.device, self.sos.dtype)
        if key not in self._responses:
            self._responses[key] = squared_response(self.sos, nfft)
        return self._responses[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter along the last axis.

        Args:
            x: real floating tensor, shape ``(..., time)``.

        Returns:
            Filtered tensor, same shape and dtype.
        """
        if not x.is_floating_point():
            raise TypeError(
                f"BandpassFilter needs a floating-point tensor, got {x.dtype}"
            )
        size = x.shape[-1]
        nfft = scipy.fft.next_fast_len(size + self.settling_size, real=True)
        response = self.response(nfft).to(x.dtype)
        spectrum = torch.fft.rfft(x, n=nfft)
        return torch.fft.irfft(spectrum * response, n=nfft)[..., :size]
