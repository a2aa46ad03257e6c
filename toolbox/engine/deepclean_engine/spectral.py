"""Welch power spectral density, coherence, in-band ASD ratio and the
training loss.

:class:`SpectralDensity` reproduces :func:`scipy.signal.welch` with a
periodic Hann window, constant detrending, one-sided density scaling and
``average="median"`` (including scipy's median bias correction) or
``"mean"``. Strain PSDs are ~1e-46 / Hz, below float32's normal range, so
the computation runs in float64 by default.
"""

from collections.abc import Sequence
from typing import Literal

import torch

from deepclean_engine.config import whole_samples
from deepclean_engine.filters import validate_bands


def median_bias(num_segments: int) -> float:
    """Bias of the median of ``num_segments`` chi^2_2 periodogram values.

    Same series as scipy's Welch median correction: the median divided by
    this number estimates the mean.
    """
    return 1.0 + sum(
        1.0 / (2 * k + 1) - 1.0 / (2 * k)
        for k in range(1, (num_segments - 1) // 2 + 1)
    )


class SpectralDensity(torch.nn.Module):
    """One-sided Welch PSD along the last axis.

    Args:
        sample_rate: sample rate in Hz.
        fftlength: segment length in seconds.
        overlap: segment overlap in seconds; ``None`` means half of
            ``fftlength``.
        average: ``"median"`` (bias-corrected, as scipy) or ``"mean"``.
        bands: ``(low, high)`` pairs in Hz: estimate only the bins inside
            them, each as a matrix product of the segments with the
            detrended, windowed DFT basis of those bins instead of a full
            FFT (the training loss needs a handful of bins per step);
            ``None`` for every bin.

    Buffers:
        window: periodic Hann window, float64, shape ``(fftlength *
            sample_rate,)``. Its dtype is the compute dtype: ``.to(dtype)``
            switches the PSD precision.
        bins: with ``bands`` only: boolean mask of the chosen bins over
            all ``nperseg // 2 + 1``; ``None`` otherwise.
        basis: with ``bands`` only: cosine then sine columns of the chosen
            bins times the window, minus their means (constant detrending
            folded in), float64, ``(fftlength * sample_rate, 2 * freq)``.
        scale: density normalisation of each bin (one-sided factor over
            ``sample_rate * sum(window ** 2)``), float64, ``(freq,)``.
    """

    def __init__(
        self,
        sample_rate: float,
        fftlength: float,
        overlap: float | None = None,
        average: Literal["median", "mean"] = "median",
        bands: Sequence[Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        if average not in ("median", "mean"):
            raise ValueError(
                f"average must be 'median' or 'mean', got {average!r}"
            )
        self.sample_rate = float(sample_rate)
        self.nperseg = whole_samples("fftlength", fftlength, sample_rate)
        if overlap is None:
            self.noverlap = self.nperseg // 2
        else:
            self.noverlap = whole_samples("overlap", overlap, sample_rate)
        if not 0 <= self.noverlap < self.nperseg:
            raise ValueError(
                f"overlap ({self.noverlap} samples) must be >= 0 and "
                f"shorter than fftlength ({self.nperseg} samples)"
            )
        self.average = average
        window = torch.hann_window(
            self.nperseg, periodic=True, dtype=torch.float64
        )
        self.register_buffer("window", window)
        frequencies = torch.fft.rfftfreq(
            self.nperseg, 1 / self.sample_rate, dtype=torch.float64
        )
        one_sided = torch.full_like(frequencies, 2.0)
        one_sided[0] = 1
        if self.nperseg % 2 == 0:
            one_sided[-1] = 1
        scale = one_sided / (self.sample_rate * (window**2).sum())
        bins = basis = None
        if bands is not None:
            bins = _band_mask(frequencies, self.sample_rate, bands)
            cycles = torch.outer(
                torch.arange(self.nperseg, dtype=torch.float64),
                torch.arange(frequencies.numel(), dtype=torch.float64)[bins],
            )
            phase = 2 * torch.pi * cycles / self.nperseg
            basis = window[:, None] * torch.cat(
                [phase.cos(), phase.sin()], dim=1
            )
            basis = basis - basis.mean(dim=0)
            scale = scale[bins]
        # derived from the arguments: not saved in checkpoints
        self.register_buffer("bins", bins, persistent=False)
        self.register_buffer("basis", basis, persistent=False)
        self.register_buffer("scale", scale, persistent=False)

    @property
    def frequencies(self) -> torch.Tensor:
        """Frequencies of the PSD bins in Hz, float64, ``(freq,)``."""
        frequencies = torch.fft.rfftfreq(
            self.nperseg,
            1 / self.sample_rate,
            dtype=torch.float64,
            device=self.window.device,
        )
        return frequencies if self.bins is None else frequencies[self.bins]

    def segment_spectra(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Windowed, detrended DFT of every Welch segment, unscaled.

        Args:
            x: time series, shape ``(..., time)``, at least ``fftlength``
                long.

        Returns:
            ``(real, imag)`` parts (up to the sign of ``imag``, the same
            for every series), each ``(..., segments, freq)`` in the
            window's dtype.
        """
        if x.shape[-1] < self.nperseg:
            raise ValueError(
                f"{x.shape[-1]} samples are shorter than fftlength "
                f"({self.nperseg} samples); pass a longer series or a "
                "shorter fftlength"
            )
        window = self.window
        step = self.nperseg - self.noverlap
        segments = x.to(window.dtype).unfold(-1, self.nperseg, step)
        if self.basis is None:
            segments = segments - segments.mean(dim=-1, keepdim=True)
            spectrum = torch.fft.rfft(segments * window)
            return spectrum.real, spectrum.imag
        cosine, sine = (segments @ self.basis).chunk(2, dim=-1)
        return cosine, sine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Estimate the PSD.

        Args:
            x: time series, shape ``(..., time)``, at least ``fftlength``
                long.

        Returns:
            PSD in units**2 / Hz, shape ``(..., freq)`` with ``freq =
            nperseg // 2 + 1`` (or the bins inside ``bands``), in the
            window's dtype. A NaN or inf sample makes every bin of its
            series NaN, with either average (as
            :func:`scipy.signal.welch`).
        """
        real, imag = self.segment_spectra(x)
        power = (real**2 + imag**2) * self.scale
        num_segments = power.shape[-2]
        if self.average == "mean":
            return power.mean(dim=-2)
        ordered = power.sort(dim=-2).values
        median = 0.5 * (
            ordered[..., (num_segments - 1) // 2, :]
            + ordered[..., num_segments // 2, :]
        )
        # sort puts NaN segments last, so the median would skip them while
        # the bias still counts them: propagate NaN, as scipy and the mean
        median = torch.where(power.isnan().any(dim=-2), torch.nan, median)
        return median / median_bias(num_segments)


class Coherence(torch.nn.Module):
    """Magnitude-squared coherence of channels with one reference series.

    ``|P_xy|**2 / (P_xx P_yy)`` from mean-averaged Welch cross and power
    spectra, as :func:`scipy.signal.coherence` (periodic Hann window,
    constant detrending, half-overlapping segments by default).

    Args:
        sample_rate: sample rate in Hz.
        fftlength: segment length in seconds; the frequency resolution
            is ``1 / fftlength`` Hz.
        overlap: segment overlap in seconds; ``None`` means half of
            ``fftlength``.
        bands: ``(low, high)`` pairs in Hz: estimate only the bins inside
            them (see :class:`SpectralDensity`); ``None`` for every bin.
    """

    def __init__(
        self,
        sample_rate: float,
        fftlength: float,
        overlap: float | None = None,
        bands: Sequence[Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        self.density = SpectralDensity(
            sample_rate, fftlength, overlap, average="mean", bands=bands
        )

    @property
    def frequencies(self) -> torch.Tensor:
        """Frequencies of the bins in Hz, float64, ``(freq,)``."""
        return self.density.frequencies

    def num_segments(self, num_samples: int) -> int:
        """Welch segments averaged over ``num_samples`` samples."""
        density = self.density
        step = density.nperseg - density.noverlap
        return max(0, (num_samples - density.nperseg) // step + 1)

    def forward(
        self, x: torch.Tensor, reference: torch.Tensor
    ) -> torch.Tensor:
        """Coherence of every channel of ``x`` with ``reference``.

        Args:
            x: channels, shape ``(..., channels, time)``.
            reference: the series they are compared with, ``(..., time)``.

        Returns:
            Coherence in [0, 1], ``(..., channels, freq)``, in float64.
        """
        if x.shape[-1] != reference.shape[-1]:
            raise ValueError(
                f"channels of {x.shape[-1]} samples and a reference of "
                f"{reference.shape[-1]} samples cannot be compared; pass "
                "the same span of both"
            )
        x_real, x_imag = self.density.segment_spectra(x)
        y_real, y_imag = self.density.segment_spectra(reference[..., None, :])
        cross_real = (x_real * y_real + x_imag * y_imag).mean(dim=-2)
        cross_imag = (x_imag * y_real - x_real * y_imag).mean(dim=-2)
        x_power = (x_real**2 + x_imag**2).mean(dim=-2)
        y_power = (y_real**2 + y_imag**2).mean(dim=-2)
        return (cross_real**2 + cross_imag**2) / (x_power * y_power)


def in_band_mask(
    frequencies: torch.Tensor, bands: Sequence[Sequence[float]]
) -> torch.Tensor:
    """Boolean mask of frequencies inside any ``[low, high]`` band (Hz)."""
    mask = torch.zeros_like(frequencies, dtype=torch.bool)
    for low, high in bands:
        mask |= (frequencies >= low) & (frequencies <= high)
    return mask


def _band_mask(
    frequencies: torch.Tensor,
    sample_rate: float,
    bands: Sequence[Sequence[float]],
) -> torch.Tensor:
    """In-band mask over PSD bins; refuses bands without a bin."""
    bands = validate_bands(bands, sample_rate)
    mask = in_band_mask(frequencies, bands)
    if not bool(mask.any()):
        resolution = float(frequencies[1] - frequencies[0])
        raise ValueError(
            f"no PSD bins fall in bands {list(bands)} at a resolution of "
            f"{resolution:g} Hz; use a longer fftlength"
        )
    return mask


def asd_ratio(
    cleaned: torch.Tensor,
    raw: torch.Tensor,
    sample_rate: float,
    bands: Sequence[Sequence[float]],
    fftlength: float,
    overlap: float | None = None,
) -> torch.Tensor:
    """In-band ASD ratio of cleaned to raw strain (median Welch, float64).

    Args:
        cleaned: cleaned strain, shape ``(..., time)``.
        raw: raw strain, same shape.
        sample_rate: sample rate in Hz.
        bands: ``(low, high)`` pairs in Hz.
        fftlength: Welch segment length in seconds.
        overlap: Welch overlap in seconds (default half of ``fftlength``).

    Returns:
        Mean over the in-band bins of ``sqrt(PSD(cleaned) / PSD(raw))``,
        float64, shape ``(...)``. Below 1 means noise was removed.
    """
    if cleaned.shape != raw.shape:
        raise ValueError(
            f"cleaned {tuple(cleaned.shape)} and raw {tuple(raw.shape)} "
            "strain must have the same shape"
        )
    density = SpectralDensity(sample_rate, fftlength, overlap).to(raw.device)
    mask = _band_mask(density.frequencies, sample_rate, bands)
    ratio = density(cleaned)[..., mask] / density(raw)[..., mask]
    return ratio.sqrt().mean(dim=-1)


class ASDRatioLoss(torch.nn.Module):
    """Training loss: in-band ASD ratio of the residual, optionally + MSE.

    ``alpha * mean_{batch, in-band f} sqrt(PSD(y - y_pred) / PSD(y)) +
    (1 - alpha) * mean((y - y_pred)**2)``, with the Welch PSDs in float64.
    With ``pooled``, the ratio is of the PSDs summed over the batch,
    ``mean_f sqrt(sum_batch PSD(y - y_pred) / sum_batch PSD(y))``: each
    window weighs by its power, as in the PSD of a long span, instead of
    every window's ratio counting the same.
    PSD ratios below :attr:`RATIO_FLOOR` count as the floor, so a perfect
    prediction has a finite (zero) gradient instead of ``0 * inf = NaN``
    from the square root; above it the loss is the exact expression.

    Args:
        sample_rate: sample rate in Hz.
        bands: ``(low, high)`` pairs in Hz.
        fftlength: Welch segment length in seconds (at most the kernel
            length).
        overlap: Welch overlap in seconds (default half of ``fftlength``).
        alpha: weight of the ASD-ratio term, in [0, 1].
        pooled: take the ratio of the batch's summed PSDs.

    The Welch PSDs estimate the in-band bins alone (``bands`` of
    :class:`SpectralDensity`).
    """

    RATIO_FLOOR = 1e-20
    """Smallest PSD ratio (an ASD ratio of 1e-10), dimensionless."""

    def __init__(
        self,
        sample_rate: float,
        bands: Sequence[Sequence[float]],
        fftlength: float,
        overlap: float | None = None,
        alpha: float = 1.0,
        pooled: bool = False,
    ) -> None:
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha
        self.pooled = pooled
        self.density = SpectralDensity(
            sample_rate, fftlength, overlap, bands=bands
        )

    def forward(
        self, prediction: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            prediction: predicted (scaled, band-passed) strain, shape
                ``(batch, time)``.
            target: true strain in the same units, same shape.

        Returns:
            Scalar loss, float64.
        """
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(prediction.shape)} and target "
                f"{tuple(target.shape)} must have the same shape"
            )
        target = target.to(torch.float64)
        residual = target - prediction.to(torch.float64)
        residual_psd = self.density(residual)
        target_psd = self.density(target)
        if self.pooled:
            residual_psd = residual_psd.sum(dim=0)
            target_psd = target_psd.sum(dim=0)
        ratio = residual_psd / target_psd
        loss = self.alpha * ratio.clamp_min(self.RATIO_FLOOR).sqrt().mean()
        if self.alpha < 1:
            loss = loss + (1 - self.alpha) * residual.pow(2).mean()
        return loss


# distances of the out-of-band windows from a band's edges, Hz
DEFAULT_SIDEBAND = (10.0, 20.0)


def sideband_windows(
    band: Sequence[float],
    sideband: tuple[float, float],
    nyquist: float,
) -> tuple[tuple[float, float], ...]:
    """Frequency windows ``sideband`` Hz below and above a band.

    Args:
        band: ``(low, high)`` in Hz.
        sideband: ``(near, far)`` distances from the band edges, Hz.
        nyquist: Nyquist frequency, Hz; windows are clipped to it.

    Returns:
        ``(low - far, low - near)`` and ``(high + near, high + far)``,
        clipped to ``(0, nyquist)``, empty ones dropped.
    """
    near, far = sideband
    if not 0 <= near < far:
        raise ValueError(
            f"sideband {sideband} must be (near, far) distances in Hz "
            "from the band edges with 0 <= near < far, e.g. (10, 20)"
        )
    low, high = band
    windows = (
        (max(low - far, 0.0), low - near),
        (high + near, min(high + far, nyquist)),
    )
    return tuple((a, b) for a, b in windows if a < b)
