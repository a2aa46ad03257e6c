"""Recovery of known injections: SNR before and after cleaning.

Cleaning must lower the noise without touching signals. For each known
injected waveform (:class:`~deepclean_io.truth.InjectionTemplate`, read
from a simulation's truth) this compares, in raw and cleaned strain,
the optimal SNR ``sqrt((h | h))`` (what the PSD allows) with the
matched-filter SNR ``(d | h) / sqrt((h | h))`` (what the data give),
``(a | b) = 4 Re int a(f) b*(f) / S(f) df`` with ``S`` the stretch's
median-Welch PSD. Arrays are strain, ``(time,)``, GPS times in s.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.signal

from deepclean_io.truth import InjectionTemplate

DEFAULT_FMIN = 10.0
DEFAULT_PAD = 16.0
DEFAULT_MAX_SIGMA = 3.0


@dataclass(frozen=True)
class InjectionRecovery:
    """SNR of one injection in raw and in cleaned strain.

    Matched-filter SNR ``(d | h) / sqrt((h | h))`` against the known
    template (its time and phase, no maximisation); optimal SNR
    ``sqrt((h | h))``, with ``(a | b) = 4 Re int a(f) b*(f) / S(f) df``
    and ``S`` the stretch's median-Welch PSD. In Gaussian noise the
    matched-filter SNR is the optimal SNR plus unit-variance noise.

    Attributes:
        kind: Waveform family.
        time: Reference GPS time, s.
        optimal_snr_raw: With the raw PSD.
        optimal_snr_cleaned: With the cleaned PSD.
        matched_filter_snr_raw: In raw strain.
        matched_filter_snr_cleaned: In cleaned strain.
        change_sigma: ``((mf_cleaned - mf_raw) - (opt_cleaned - opt_raw))
            / sqrt(2)``: the change in matched-filter SNR beyond the
            change the PSDs predict, in units of its noise (the two noises
            are unit-variance and, sharing the background, positively
            correlated, so ``sqrt(2)`` bounds their difference's spread).
        within_noise: ``|change_sigma|`` is at most the threshold.
        parameters: The template's waveform parameters.
    """

    kind: str
    time: float
    optimal_snr_raw: float
    optimal_snr_cleaned: float
    matched_filter_snr_raw: float
    matched_filter_snr_cleaned: float
    change_sigma: float
    within_noise: bool
    parameters: Mapping[str, Any] = field(default_factory=dict)


def _tapered_window(size: int, left: int, right: int) -> np.ndarray:
    """Ones with Hann ramps over the first ``left``, last ``right``."""
    window = np.ones(size)
    if left:
        window[:left] = scipy.signal.get_window("hann", 2 * left)[:left]
    if right:
        window[size - right :] = scipy.signal.get_window("hann", 2 * right)[
            right:
        ]
    return window


def _template_samples(
    template: InjectionTemplate, start: float, sample_rate: float
) -> tuple[int, int]:
    """First and end sample of a template in data starting at ``start``."""
    offset = (template.start - start) * sample_rate
    first = round(offset)
    if abs(offset - first) > 1e-3:
        raise ValueError(
            f"template starting at GPS {template.start} is not on the "
            f"sample grid of the data starting at GPS {start} at "
            f"{sample_rate:g} Hz; resample the template"
        )
    return first, first + template.waveform.size


def fits_with_padding(
    template: InjectionTemplate,
    start: float,
    size: int,
    sample_rate: float,
    pad: float,
) -> bool:
    """Whether a template with ``pad`` s either side lies in the data.

    Args:
        template: The injected waveform.
        start: GPS time of the data's first sample, s.
        size: Number of data samples.
        sample_rate: Hz.
        pad: Padding either side, s.
    """
    first, last = _template_samples(template, start, sample_rate)
    pad_size = round(pad * sample_rate)
    return first - pad_size >= 0 and last + pad_size <= size


def matched_filter_snr(
    strain: np.ndarray,
    start: float,
    sample_rate: float,
    template: InjectionTemplate,
    frequencies: np.ndarray,
    asd: np.ndarray,
    fmin: float = DEFAULT_FMIN,
    pad: float = DEFAULT_PAD,
) -> tuple[float, float]:
    """Optimal and matched-filter SNR of a known template in strain.

    The inner products are computed on the template's span plus ``pad``
    seconds either side, the data tapered by Hann ramps over the padding
    (an untapered cut would leak the seismic wall into the band); ``pad``
    must exceed the length of the whitening filter, about the PSD's
    ``fftlength``.

    Args:
        strain: Strain, ``(time,)``.
        start: GPS time of ``strain[0]``, s.
        sample_rate: Hz.
        template: The injected waveform, on the same sample grid, with
            ``pad`` inside the data on both sides.
        frequencies: Frequencies of ``asd``, Hz, ``(freq,)``.
        asd: ASD of the noise in ``strain``, strain / sqrt(Hz), ``(freq,)``.
        fmin: Lower frequency limit of the inner products, Hz.
        pad: Padding either side of the template, s.

    Returns:
        ``(optimal_snr, matched_filter_snr)``.
    """
    if not fits_with_padding(template, start, strain.size, sample_rate, pad):
        raise ValueError(
            f"{template.kind} injection at GPS {template.time} with {pad:g} "
            f"s of padding is not inside the data [{start}, "
            f"{start + strain.size / sample_rate}); leave it out or pass a "
            "longer stretch"
        )
    first, last = _template_samples(template, start, sample_rate)
    pad_size = round(pad * sample_rate)
    begin, end = first - pad_size, last + pad_size
    window = _tapered_window(end - begin, pad_size, pad_size)
    signal = np.zeros(end - begin)
    signal[pad_size : pad_size + template.waveform.size] = template.waveform

    step = 1 / sample_rate
    data_spectrum = np.fft.rfft(strain[begin:end] * window) * step
    template_spectrum = np.fft.rfft(signal) * step
    grid = np.fft.rfftfreq(end - begin, step)
    keep = (grid >= fmin) & (grid < sample_rate / 2)
    psd = np.interp(grid[keep], frequencies, np.asarray(asd) ** 2)
    df = grid[1] - grid[0]
    weights = template_spectrum[keep].conj() / psd
    norm = 4 * df * np.sum(np.abs(template_spectrum[keep]) ** 2 / psd)
    if norm <= 0:
        raise ValueError(
            f"{template.kind} injection at GPS {template.time} has no power "
            f"above fmin = {fmin:g} Hz"
        )
    inner = 4 * df * np.sum(data_spectrum[keep] * weights).real
    optimal = math.sqrt(norm)
    return optimal, inner / optimal


def injection_recovery(
    raw: np.ndarray,
    cleaned: np.ndarray,
    start: float,
    sample_rate: float,
    templates: Sequence[InjectionTemplate],
    frequencies: np.ndarray,
    raw_asd: np.ndarray,
    cleaned_asd: np.ndarray,
    fmin: float = DEFAULT_FMIN,
    pad: float = DEFAULT_PAD,
    max_sigma: float = DEFAULT_MAX_SIGMA,
) -> list[InjectionRecovery]:
    """SNR of every known injection before and after cleaning.

    Templates that, with ``pad`` either side, do not fit inside the
    stretch are left out: the stretch's edges would bias their SNR.

    Args:
        raw: Raw strain, ``(time,)``.
        cleaned: Cleaned strain, ``(time,)``.
        start: GPS time of the first sample, s.
        sample_rate: Hz.
        templates: Injected waveforms inside the stretch.
        frequencies: Frequencies of the ASDs, Hz, ``(freq,)``.
        raw_asd: Median-Welch ASD of ``raw``, ``(freq,)``.
        cleaned_asd: Median-Welch ASD of ``cleaned``, ``(freq,)``.
        fmin: Lower frequency limit of the inner products, Hz.
        pad: Padding either side of each template, s.
        max_sigma: Threshold on ``|change_sigma|`` for ``within_noise``.

    Returns:
        One :class:`InjectionRecovery` per template that fits, in order.
    """
    if raw.shape != cleaned.shape:
        raise ValueError(
            f"raw {raw.shape} and cleaned {cleaned.shape} strain must have "
            "the same shape; pass the same span of each"
        )
    recoveries = []
    for template in templates:
        if not fits_with_padding(template, start, raw.size, sample_rate, pad):
            continue
        optimal_raw, matched_raw = matched_filter_snr(
            raw, start, sample_rate, template, frequencies, raw_asd, fmin, pad
        )
        optimal_cleaned, matched_cleaned = matched_filter_snr(
            cleaned,
            start,
            sample_rate,
            template,
            frequencies,
            cleaned_asd,
            fmin,
            pad,
        )
        change_sigma = (
            (matched_cleaned - matched_raw) - (optimal_cleaned - optimal_raw)
        ) / math.sqrt(2)
        recoveries.append(
            InjectionRecovery(
                kind=template.kind,
                time=template.time,
                optimal_snr_raw=optimal_raw,
                optimal_snr_cleaned=optimal_cleaned,
                matched_filter_snr_raw=matched_raw,
                matched_filter_snr_cleaned=matched_cleaned,
                change_sigma=change_sigma,
                within_noise=bool(abs(change_sigma) <= max_sigma),
                parameters=dict(template.parameters),
            )
        )
    return recoveries
