"""How much cleaning helped, and whether it harmed anything.

Pure functions on numpy arrays of strain (``(time,)``, strain units, one
sample rate in Hz, GPS times in s) and their spectra:

- :func:`welch_asd`: median-Welch amplitude spectral density (the
  estimator of every ASD here, as in DeepClean's loss and validation);
- :func:`asd_ratios`: cleaned / raw ASD ratio in each band and in the
  sidebands 10-20 Hz either side of it (where cleaning must do nothing);
- :func:`ratio_spectrogram`: the same ratio per stride of time;
- :func:`bns_range`: BNS inspiral range (gwpy / inspiral-range);
- :func:`~deepclean_clean.injections.injection_recovery`: optimal and
  matched-filter SNR of known injections before and after cleaning;
- :func:`excess_over_ideal` and :func:`coupled_power_removed`: with a
  simulation's truth, distance from the ideal cleaned strain
  (background + injections) and share of the coupled noise removed.

:func:`evaluate` runs them all on one stretch for every cleaned version
and returns an :class:`Evaluation`, whose :meth:`Evaluation.to_dict` is
the JSON of the report.
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.signal
import torch

from deepclean_clean.injections import (
    DEFAULT_FMIN,
    InjectionRecovery,
    injection_recovery,
)
from deepclean_engine import in_band_mask, validate_bands
from deepclean_engine.config import whole_samples
from deepclean_engine.spectral import DEFAULT_SIDEBAND, sideband_windows
from deepclean_io.truth import InjectionTemplate

Band = tuple[float, float]

DEFAULT_FFTLENGTH = 4.0
DEFAULT_STRIDE = 64.0
RAW = "raw"
IDEAL = "ideal"


def welch_psd(
    strain: np.ndarray,
    sample_rate: float,
    fftlength: float,
    overlap: float | None = None,
    average: Literal["median", "mean"] = "median",
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Welch PSD (periodic Hann window, constant detrend).

    Args:
        strain: Series, shape ``(..., time)``.
        sample_rate: Hz.
        fftlength: Segment length, s.
        overlap: Segment overlap, s; half of ``fftlength`` when None.
        average: ``"median"`` (bias-corrected, robust to glitches) or
            ``"mean"`` (additive, for powers).

    Returns:
        ``(frequencies, psd)``: Hz, shape ``(freq,)``, and units**2 / Hz,
        shape ``(..., freq)``.
    """
    nperseg = whole_samples("fftlength", fftlength, sample_rate)
    noverlap = (
        nperseg // 2
        if overlap is None
        else whole_samples("overlap", overlap, sample_rate)
    )
    if np.shape(strain)[-1] < nperseg:
        raise ValueError(
            f"{np.shape(strain)[-1] / sample_rate:g} s of data are shorter "
            f"than fftlength ({fftlength:g} s); pass a longer stretch or "
            "a shorter fftlength"
        )
    return scipy.signal.welch(
        np.asarray(strain, dtype=np.float64),
        fs=sample_rate,
        window="hann",
        nperseg=nperseg,
        noverlap=noverlap,
        average=average,
    )


def welch_asd(
    strain: np.ndarray,
    sample_rate: float,
    fftlength: float,
    overlap: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Median-Welch ASD: ``(frequencies [Hz], asd [units / sqrt(Hz)])``.

    See :func:`welch_psd` for the arguments and shapes.
    """
    frequencies, psd = welch_psd(strain, sample_rate, fftlength, overlap)
    return frequencies, np.sqrt(psd)


def band_mask(
    frequencies: np.ndarray, bands: Sequence[Sequence[float]]
) -> np.ndarray:
    """Boolean mask of the frequencies (Hz) inside any ``[low, high]``."""
    return in_band_mask(torch.from_numpy(frequencies), bands).numpy()


@dataclass(frozen=True)
class BandRatio:
    """ASD ratio cleaned / raw in one band and beside it.

    Attributes:
        band: ``(low, high)``, Hz.
        in_band: Mean over the band's bins of ``ASD(cleaned) /
            ASD(raw)``; below 1 means noise was removed.
        out_of_band: Mean of the same ratio over the sideband windows
            (bins inside any band excluded); 1 means no harm. NaN when no
            bin falls there.
    """

    band: Band
    in_band: float
    out_of_band: float


@dataclass(frozen=True)
class ASDRatios:
    """ASD ratios cleaned / raw over all bands and per band.

    Attributes:
        in_band: Mean over the bins of every band (the definition of
            ``deepclean_engine.asd_ratio``).
        out_of_band: Mean over the bins of every sideband window.
        bands: One :class:`BandRatio` per band, sorted by frequency.
    """

    in_band: float
    out_of_band: float
    bands: tuple[BandRatio, ...]


def _mean_over(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else math.nan


def asd_ratios(
    frequencies: np.ndarray,
    raw_asd: np.ndarray,
    cleaned_asd: np.ndarray,
    bands: Sequence[Sequence[float]],
    sideband: tuple[float, float] = DEFAULT_SIDEBAND,
) -> ASDRatios:
    """In-band and out-of-band ASD ratios of cleaned to raw strain.

    Args:
        frequencies: Frequencies of the ASD bins, Hz, shape ``(freq,)``
            (from :func:`welch_asd`).
        raw_asd: ASD of raw strain, ``(freq,)``.
        cleaned_asd: ASD of cleaned strain, ``(freq,)``.
        bands: Cleaning bands, ``(low, high)`` pairs in Hz.
        sideband: ``(near, far)`` Hz either side of each band for the
            out-of-band ratio.

    Returns:
        The ratios.
    """
    nyquist = float(frequencies[-1])
    bands = validate_bands(bands, 2 * nyquist)
    ratio = np.asarray(cleaned_asd) / np.asarray(raw_asd)
    any_band = band_mask(frequencies, bands)
    per_band = []
    all_sidebands = np.zeros_like(any_band)
    for band in bands:
        inside = band_mask(frequencies, [band])
        if not inside.any():
            raise ValueError(
                f"no ASD bins fall in band {band} Hz at a resolution of "
                f"{frequencies[1] - frequencies[0]:g} Hz; use a longer "
                "fftlength"
            )
        windows = sideband_windows(band, sideband, nyquist)
        beside = band_mask(frequencies, windows) & ~any_band
        all_sidebands |= beside
        per_band.append(
            BandRatio(
                band=band,
                in_band=_mean_over(ratio, inside),
                out_of_band=_mean_over(ratio, beside),
            )
        )
    return ASDRatios(
        in_band=_mean_over(ratio, any_band),
        out_of_band=_mean_over(ratio, all_sidebands),
        bands=tuple(per_band),
    )


def display_range(
    bands: Sequence[Sequence[float]],
    sideband: tuple[float, float],
    nyquist: float,
) -> Band:
    """Frequencies (Hz) around the bands and their sideband windows."""
    low = min(band[0] for band in bands) - sideband[1]
    high = max(band[1] for band in bands) + sideband[1]
    return max(low, 0.0), min(high, nyquist)


@dataclass(frozen=True)
class RatioSpectrogram:
    """ASD ratio cleaned / raw over time.

    Attributes:
        times: Start of each stride, s after the stretch start,
            ``(time,)``.
        frequencies: Hz, ``(freq,)``.
        ratio: ``ASD(cleaned) / ASD(raw)`` per stride (median Welch
            within the stride), shape ``(time, freq)``.
    """

    times: np.ndarray
    frequencies: np.ndarray
    ratio: np.ndarray


def ratio_spectrogram(
    raw: np.ndarray,
    cleaned: np.ndarray,
    sample_rate: float,
    stride: float = DEFAULT_STRIDE,
    fftlength: float = DEFAULT_FFTLENGTH,
    frequency_range: tuple[float, float] | None = None,
) -> RatioSpectrogram:
    """ASD ratio of cleaned to raw strain per stride of time.

    Args:
        raw: Raw strain, ``(time,)``.
        cleaned: Cleaned strain, ``(time,)``.
        sample_rate: Hz.
        stride: Length of each time bin, s; a last partial stride is
            left out.
        fftlength: Welch segment length within a stride, s.
        frequency_range: ``(low, high)`` Hz kept; all when None.

    Returns:
        The spectrogram.
    """
    _check_same_shape(raw=raw, cleaned=cleaned)
    stride_size = whole_samples("stride", stride, sample_rate)
    num_strides = raw.size // stride_size
    if num_strides == 0:
        raise ValueError(
            f"{raw.size / sample_rate:g} s of data are shorter than one "
            f"stride ({stride:g} s); use a shorter stride"
        )
    usable = num_strides * stride_size
    frequencies, raw_psd = welch_psd(
        raw[:usable].reshape(num_strides, stride_size), sample_rate, fftlength
    )
    _, cleaned_psd = welch_psd(
        cleaned[:usable].reshape(num_strides, stride_size),
        sample_rate,
        fftlength,
    )
    keep = np.ones(frequencies.size, dtype=bool)
    if frequency_range is not None:
        keep = (frequencies >= frequency_range[0]) & (
            frequencies <= frequency_range[1]
        )
    return RatioSpectrogram(
        times=np.arange(num_strides) * stride_size / sample_rate,
        frequencies=frequencies[keep],
        ratio=np.sqrt(cleaned_psd[:, keep] / raw_psd[:, keep]),
    )


def bns_range(
    frequencies: np.ndarray,
    asd: np.ndarray,
    fmin: float = DEFAULT_FMIN,
    snr: float = 8.0,
    mass1: float = 1.4,
    mass2: float = 1.4,
) -> float:
    """Angle-averaged, cosmology-corrected BNS inspiral range.

    ``gwpy.astro.inspiral_range`` (Belczynski et al. 2014, via the
    ``inspiral-range`` package) of the PSD ``asd**2``.

    Args:
        frequencies: Regularly spaced frequencies, Hz, ``(freq,)``.
        asd: ASD, strain / sqrt(Hz), ``(freq,)``.
        fmin: Lower limit of the SNR integral, Hz.
        snr: Detection SNR threshold.
        mass1: Component mass, solar masses.
        mass2: Component mass, solar masses.

    Returns:
        Range in Mpc.
    """
    from gwpy.astro import inspiral_range
    from gwpy.frequencyseries import FrequencySeries

    psd = FrequencySeries(
        np.asarray(asd) ** 2,
        f0=float(frequencies[0]),
        df=float(frequencies[1] - frequencies[0]),
        unit="1/Hz",
    )
    distance = inspiral_range(
        psd, snr=snr, mass1=mass1, mass2=mass2, fmin=fmin
    )
    return float(distance.to("Mpc").value)


def excess_over_ideal(
    frequencies: np.ndarray,
    cleaned_asd: np.ndarray,
    ideal_asd: np.ndarray,
    bands: Sequence[Sequence[float]],
) -> float:
    """Median over in-band bins of ``ASD(cleaned) / ASD(ideal) - 1``.

    Args:
        frequencies: Hz, ``(freq,)``.
        cleaned_asd: ASD of cleaned strain, ``(freq,)``.
        ideal_asd: ASD of the ideal cleaned strain (background +
            injections), ``(freq,)``.
        bands: Cleaning bands, ``(low, high)`` pairs in Hz.

    Returns:
        0 for a perfect cleaner, > 0 for noise left (or added).
    """
    mask = band_mask(frequencies, bands)
    return float(np.median(cleaned_asd[mask] / ideal_asd[mask]) - 1)


def coupled_power_removed(
    raw: np.ndarray,
    cleaned: np.ndarray,
    ideal: np.ndarray,
    sample_rate: float,
    bands: Sequence[Sequence[float]],
    fftlength: float = DEFAULT_FFTLENGTH,
) -> float:
    """Share of the in-band coupled-noise power that cleaning removed.

    ``1 - P(cleaned - ideal) / P(raw - ideal)``, with ``P`` the power in
    the bands from a mean-average Welch PSD (powers add; medians do not).

    Args:
        raw: Raw strain, ``(time,)``.
        cleaned: Cleaned strain, ``(time,)``.
        ideal: Background + injections, ``(time,)``.
        sample_rate: Hz.
        bands: Cleaning bands, ``(low, high)`` pairs in Hz.
        fftlength: Welch segment length, s.

    Returns:
        1 for perfect removal, 0 for none, < 0 when noise was added.
    """
    _check_same_shape(raw=raw, cleaned=cleaned, ideal=ideal)
    frequencies, psd = welch_psd(
        np.stack([cleaned - ideal, raw - ideal]),
        sample_rate,
        fftlength,
        average="mean",
    )
    mask = band_mask(frequencies, bands)
    residual, coupled = psd[:, mask].sum(axis=-1)
    if coupled <= 0:
        raise ValueError(
            "raw strain equals the ideal strain in the bands: there is no "
            "coupled noise to remove"
        )
    return float(1 - residual / coupled)


def _check_same_shape(**series: np.ndarray) -> None:
    shapes = {name: np.shape(values) for name, values in series.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 1:
        raise ValueError(
            f"strain series must be 1-D with the same number of samples, "
            f"got shapes {shapes}; evaluate the same span of each"
        )


def _jsonable(value: Any) -> Any:
    """Numpy arrays and scalars, tuples and dataclasses as JSON types.

    NaN (a ratio without bins to average) becomes None: JSON has no NaN.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: _jsonable(getattr(value, item.name))
            for item in dataclasses.fields(value)
        }
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@dataclass
class Evaluation:
    """Every number of an evaluation of one stretch.

    Versions are ``"raw"``, each cleaned version by name and, with the
    truth, ``"ideal"`` (background + injections).

    Attributes:
        start: GPS start of the stretch, s.
        duration: Length, s.
        sample_rate: Hz.
        bands: Cleaning bands, Hz.
        fftlength: Welch segment length of every ASD, s.
        stride: Time bin of the ratio spectrograms, s.
        sideband: ``(near, far)`` Hz of the out-of-band windows.
        fmin: Lower frequency of ranges and SNRs, Hz.
        frequencies: ASD frequencies, Hz, ``(freq,)``.
        asds: Median-Welch ASD of every version, ``(freq,)`` each.
        ranges: BNS inspiral range of every version, Mpc.
        ratios: ASD ratios to raw of every version but raw.
        spectrograms: Ratio spectrograms of every version but raw,
            within :func:`display_range` of the bands.
        excess_over_ideal: Per cleaned version (with the truth).
        coupled_power_removed: Per cleaned version (with the truth).
        injections: Injection recovery per version but raw (with
            injection templates).
    """

    start: float
    duration: float
    sample_rate: float
    bands: tuple[Band, ...]
    fftlength: float
    stride: float
    sideband: tuple[float, float]
    fmin: float
    frequencies: np.ndarray
    asds: dict[str, np.ndarray]
    ranges: dict[str, float]
    ratios: dict[str, ASDRatios]
    spectrograms: dict[str, RatioSpectrogram]
    excess_over_ideal: dict[str, float]
    coupled_power_removed: dict[str, float]
    injections: dict[str, list[InjectionRecovery]]

    @property
    def range_gains(self) -> dict[str, float]:
        """Fractional range change of every version over raw."""
        return {
            name: distance / self.ranges[RAW] - 1
            for name, distance in self.ranges.items()
            if name != RAW
        }

    def headline(self) -> dict[str, dict[str, float]]:
        """The numbers to print: per version, in-band ASD ratio, range
        gain, and (with the truth) excess over ideal."""
        summary = {
            name: {
                "in_band_asd_ratio": ratios.in_band,
                "out_of_band_asd_ratio": ratios.out_of_band,
                "range_gain": self.range_gains[name],
            }
            for name, ratios in self.ratios.items()
        }
        for name, excess in self.excess_over_ideal.items():
            summary[name]["excess_over_ideal"] = excess
        for name, removed in self.coupled_power_removed.items():
            summary[name]["coupled_power_removed"] = removed
        return summary

    def to_dict(self) -> dict[str, Any]:
        """Every field, the range gains and the headline, JSON-ready."""
        content = _jsonable(self)
        content["range_gains"] = _jsonable(self.range_gains)
        content["headline"] = _jsonable(self.headline())
        return content


def evaluate(
    raw: np.ndarray,
    cleaned: Mapping[str, np.ndarray],
    sample_rate: float,
    bands: Sequence[Sequence[float]],
    start: float = 0.0,
    ideal: np.ndarray | None = None,
    injections: Sequence[InjectionTemplate] = (),
    fftlength: float = DEFAULT_FFTLENGTH,
    stride: float = DEFAULT_STRIDE,
    sideband: tuple[float, float] = DEFAULT_SIDEBAND,
    fmin: float = DEFAULT_FMIN,
) -> Evaluation:
    """Evaluate cleaned versions of one stretch of strain.

    Args:
        raw: Raw strain, ``(time,)``.
        cleaned: Cleaned strain of the same samples by method name, e.g.
            ``{"DeepClean": ..., "Wiener": ...}``, ``(time,)`` each.
        sample_rate: Hz.
        bands: Cleaning bands, ``(low, high)`` pairs in Hz.
        start: GPS time of the first sample, s.
        ideal: Background + injections from a simulation's truth,
            ``(time,)``; enables the excess over ideal and the coupled
            power removed.
        injections: Known injected waveforms inside the stretch; those
            within ``4 * fftlength`` (the matched filter's padding) of
            either end are left out.
        fftlength: Welch segment length of every ASD, s.
        stride: Time bin of the ratio spectrograms, s.
        sideband: ``(near, far)`` Hz either side of each band for the
            out-of-band ratios.
        fmin: Lower frequency of ranges and SNRs, Hz.

    Returns:
        The :class:`Evaluation`.
    """
    reserved = {RAW, IDEAL} & set(cleaned)
    if reserved:
        raise ValueError(
            f"cleaned versions may not be named {sorted(reserved)}; those "
            "names are reserved for the raw and ideal strain"
        )
    if not cleaned:
        raise ValueError("pass at least one cleaned version to evaluate")
    bands = validate_bands(bands, sample_rate)
    versions = {RAW: raw, **cleaned}
    if ideal is not None:
        versions[IDEAL] = ideal
    _check_same_shape(**versions)
    frequencies, asd = welch_asd(
        np.stack(list(versions.values())), sample_rate, fftlength
    )
    asds = dict(zip(versions, asd, strict=True))
    focus = display_range(bands, sideband, sample_rate / 2)
    others = [name for name in versions if name != RAW]
    truth_metrics = ideal is not None
    return Evaluation(
        start=float(start),
        duration=raw.size / sample_rate,
        sample_rate=float(sample_rate),
        bands=bands,
        fftlength=float(fftlength),
        stride=float(stride),
        sideband=tuple(sideband),
        fmin=float(fmin),
        frequencies=frequencies,
        asds=asds,
        ranges={
            name: bns_range(frequencies, asds[name], fmin) for name in asds
        },
        ratios={
            name: asd_ratios(
                frequencies, asds[RAW], asds[name], bands, sideband
            )
            for name in others
        },
        spectrograms={
            name: ratio_spectrogram(
                raw, versions[name], sample_rate, stride, fftlength, focus
            )
            for name in others
        },
        excess_over_ideal={
            name: excess_over_ideal(
                frequencies, asds[name], asds[IDEAL], bands
            )
            for name in cleaned
            if truth_metrics
        },
        coupled_power_removed={
            name: coupled_power_removed(
                raw, cleaned[name], ideal, sample_rate, bands, fftlength
            )
            for name in cleaned
            if truth_metrics
        },
        injections={
            name: injection_recovery(
                raw,
                versions[name],
                start,
                sample_rate,
                injections,
                frequencies,
                asds[RAW],
                asds[name],
                fmin,
                4 * fftlength,
            )
            for name in others
            if injections
        },
    )
