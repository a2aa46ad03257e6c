"""Classical baseline: a multi-input frequency-domain Wiener filter.

The filter predicts the noise that witnesses couple into strain with one
linear transfer function per input, ``N(f) = sum_i H_i(f) X_i(f)``. On a
training span it estimates, with Welch averaging (periodic Hann windows
overlapping by half, mean average: cross-spectra are complex), the
cross-spectral matrix of the inputs ``S_xx(f)`` and their cross-spectra
with strain ``S_xy(f)``, and solves ``S_xx(f) H(f) = S_xy(f)`` per
frequency bin, only where the cleaning band-pass lets power through. The
residual PSD is then ``(1 - multiple coherence) x PSD(strain)``: the
filter removes only what is linearly coherent with its inputs.

On the span to clean, the inputs are cut into the same windowed segments,
their spectra multiplied by ``H`` and transformed back, and the segments
overlap-added (the windows sum to 1). The filter thus acts on exactly the
kind of spectra it was fitted to; an FIR realisation of ``H`` would
interpolate between frequency bins and let part of a strong line (the
mains monitor's) leak into the prediction.

Bilinear couplings (mains x slow angular motion, giving sidebands around
the line) are invisible to linear filters of the witnesses themselves;
adding the products of the mains monitor with every other witness as
inputs (``mains_index``) makes them linear in the inputs.

The prediction is filtered with the cleaning engine's zero-phase
band-pass (:class:`deepclean_engine.BandpassFilter`), as DeepClean's is,
and subtracted from strain.
"""

from collections.abc import Iterator, Sequence
from typing import Self

import numpy as np
import scipy.signal
import torch

from deepclean_engine import BandpassFilter
from deepclean_engine.config import whole_samples

DEFAULT_FFTLENGTH = 2.0
DEFAULT_REGULARISATION = 1e-6
# Transfer functions are solved where the band-pass passes more than this
# fraction of the power; elsewhere the band-pass removes the prediction.
_SUPPORT_FLOOR = 1e-6
# Values per chunk of windowed segments when estimating cross-spectra.
_CHUNK_VALUES = 1 << 22


def _zero_extended(series: np.ndarray, begin: int, end: int) -> np.ndarray:
    """Samples ``[begin, end)`` along the last axis, zeros outside."""
    size = series.shape[-1]
    inside = series[..., max(begin, 0) : min(end, size)]
    padding = [(0, 0)] * (series.ndim - 1)
    padding.append((max(-begin, 0), max(end - size, 0)))
    return np.pad(inside, padding)


def checked_witnesses(witnesses: np.ndarray) -> np.ndarray:
    """Witnesses as float64 ``(channels, time)``, every sample finite.

    Raises:
        ValueError: another shape, or NaN/inf samples.
    """
    witnesses = np.asarray(witnesses, dtype=np.float64)
    if witnesses.ndim != 2:
        raise ValueError(
            f"witnesses must have shape (channels, time), got "
            f"{witnesses.shape}"
        )
    if not np.isfinite(witnesses).all():
        raise ValueError(
            "witnesses contain NaN or infinite samples; cut those "
            "stretches out before fitting or predicting"
        )
    return witnesses


def checked_strain(strain: np.ndarray, witnesses: np.ndarray) -> np.ndarray:
    """Strain as float64 ``(time,)``, as long as the witnesses.

    Raises:
        ValueError: the shapes do not match.
    """
    strain = np.asarray(strain, dtype=np.float64)
    if strain.shape != witnesses.shape[1:]:
        raise ValueError(
            f"strain {strain.shape} must have shape (time,) with the "
            f"witnesses' {witnesses.shape[1]} samples"
        )
    return strain


def find_mains(channels: Sequence[str], mains_channel: str) -> int:
    """Row of the mains monitor among the witness channels.

    Args:
        channels: Witness channel names, in the order of the witness rows.
        mains_channel: Name of the mains monitor, e.g.
            ``H1:PEM-CS_MAINSMON_EBAY_1_DQ``.

    Returns:
        Position of ``mains_channel`` in ``channels``.

    Raises:
        ValueError: ``mains_channel`` is not among ``channels``.
    """
    if mains_channel not in channels:
        raise ValueError(
            f"mains channel {mains_channel!r} is not among the witnesses "
            f"{list(channels)}; pass the mains monitor among them as "
            "mains_channel (--mains_channel)"
        )
    return list(channels).index(mains_channel)


class WienerFilter:
    """Multi-input (MISO) frequency-domain Wiener filter within bands.

    Args:
        bands: Cleaning bands, ``(low, high)`` pairs in Hz.
        fftlength: Welch segment length in seconds (an even number of
            samples), also the segment length :meth:`predict` filters: it
            bounds the memory of the couplings the filter can model and
            sets the resolution, ``1 / fftlength`` Hz.
        regularisation: Diagonal loading of the cross-spectral matrix
            after normalising every input to unit power per bin
            (relative to 1); keeps nearly collinear inputs solvable.
        mains_index: Row of the mains monitor among the witnesses; when
            given, the products of that row with every other row are
            added as inputs (the variant for bilinear couplings).
        filter_order: Butterworth order of the band-pass, per band.

    Attributes after :meth:`fit`:
        sample_rate: Sample rate, Hz.
        frequencies: Frequencies where transfer functions were solved,
            Hz, shape ``(freq,)``.
        transfer_functions: Complex ``H_i(f)`` from each input to strain,
            shape ``(inputs, freq)``: witnesses first, then the products
            in witness order (the mains row skipped).
    """

    def __init__(
        self,
        bands: Sequence[Sequence[float]],
        fftlength: float = DEFAULT_FFTLENGTH,
        regularisation: float = DEFAULT_REGULARISATION,
        mains_index: int | None = None,
        filter_order: int = 8,
    ) -> None:
        if fftlength <= 0:
            raise ValueError(f"fftlength must be > 0 seconds, got {fftlength}")
        if regularisation <= 0:
            raise ValueError(
                f"regularisation must be > 0 (e.g. 1e-6), got {regularisation}"
            )
        self.bands = [tuple(map(float, band)) for band in bands]
        self.fftlength = float(fftlength)
        self.regularisation = float(regularisation)
        self.mains_index = mains_index
        self.filter_order = filter_order
        self.sample_rate: float | None = None
        self.num_witnesses: int | None = None
        self.frequencies: np.ndarray | None = None
        self.transfer_functions: np.ndarray | None = None
        self._bins: np.ndarray | None = None
        self._bandpass: BandpassFilter | None = None

    @property
    def nperseg(self) -> int:
        """Welch segment length in samples."""
        if self.sample_rate is None:
            raise RuntimeError("call fit() before using the filter")
        return whole_samples("fftlength", self.fftlength, self.sample_rate)

    def _check_witnesses(self, witnesses: np.ndarray) -> np.ndarray:
        witnesses = checked_witnesses(witnesses)
        if self.mains_index is not None and not (
            0 <= self.mains_index < witnesses.shape[0]
            and witnesses.shape[0] > 1
        ):
            raise ValueError(
                f"mains_index {self.mains_index} must be the row of the mains "
                f"monitor among {witnesses.shape[0]} witnesses, with at "
                "least one other witness to multiply it with"
            )
        return witnesses

    @property
    def num_inputs(self) -> int:
        """Number of filter inputs: witnesses, plus products if any."""
        if self.num_witnesses is None:
            raise RuntimeError("call fit() before using the filter")
        if self.mains_index is None:
            return self.num_witnesses
        return 2 * self.num_witnesses - 1

    def inputs(self, witnesses: np.ndarray) -> Iterator[np.ndarray]:
        """Yield the filter's input series one at a time.

        Args:
            witnesses: Shape ``(channels, time)``.

        Yields:
            Each witness row, then (with ``mains_index``) the product of
            the mains row with every other row, shape ``(time,)``.
        """
        yield from witnesses
        if self.mains_index is not None:
            mains = witnesses[self.mains_index]
            for index, witness in enumerate(witnesses):
                if index != self.mains_index:
                    yield mains * witness

    def _segment_spectra(
        self,
        series: list[np.ndarray],
        first_start: int,
        num_segments: int,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Hann-windowed spectra of half-overlapping segments.

        Segment ``k`` covers samples ``[first_start + k * nperseg / 2,
        ... + nperseg)``; samples outside the series count as zeros.

        Args:
            series: ``[witnesses (channels, time)]``, optionally followed by
                strain ``(time,)``.
            first_start: First sample of segment 0 (may be negative).
            num_segments: Number of segments.

        Yields:
            ``(k, spectra)``: the index of the chunk's first segment and
            the spectra in the solved bins, shape ``(inputs [+ 1 for
            strain], segments, freq)``.
        """
        nperseg = self.nperseg
        step = nperseg // 2
        window = scipy.signal.get_window("hann", nperseg)
        rows = self.num_inputs + len(series) - 1
        chunk = max(1, _CHUNK_VALUES // (nperseg * rows))
        for first in range(0, num_segments, chunk):
            count = min(chunk, num_segments - first)
            begin = first_start + first * step
            end = begin + (count + 1) * step
            witnesses, *strain = (
                _zero_extended(values, begin, end) for values in series
            )
            segments = np.lib.stride_tricks.sliding_window_view(
                np.stack([*self.inputs(witnesses), *strain]), nperseg, axis=-1
            )[:, ::step]
            spectra = np.fft.rfft(segments * window, axis=-1)
            yield first, spectra[..., self._bins]

    def fit(
        self, witnesses: np.ndarray, strain: np.ndarray, sample_rate: float
    ) -> Self:
        """Estimate the transfer functions on a training span.

        Args:
            witnesses: Witness series, shape ``(channels, time)``.
            strain: Strain over the same samples, shape ``(time,)``.
            sample_rate: Sample rate of both, Hz.

        Returns:
            The fitted filter.
        """
        self.sample_rate = float(sample_rate)
        self._bandpass = BandpassFilter(
            self.bands, sample_rate, self.filter_order
        )
        witnesses = self._check_witnesses(witnesses)
        strain = np.asarray(strain, dtype=np.float64)
        if strain.shape != witnesses.shape[1:]:
            raise ValueError(
                f"strain {strain.shape} must have shape (time,) with the "
                f"witnesses' {witnesses.shape[1]} samples"
            )
        if not np.isfinite(strain).all():
            raise ValueError(
                "strain contains NaN or infinite samples; cut those "
                "stretches out before fitting"
            )
        nperseg = self.nperseg
        if nperseg % 2:
            raise ValueError(
                f"fftlength ({self.fftlength:g} s) is an odd number of "
                f"samples ({nperseg}) at {sample_rate:g} Hz; Hann windows "
                "overlapping by half add up to 1 only for an even number"
            )
        if strain.size < nperseg:
            raise ValueError(
                f"the training span ({strain.size / sample_rate:g} s) is "
                f"shorter than fftlength ({self.fftlength:g} s); use a longer "
                "span or a shorter fftlength"
            )
        self.num_witnesses = witnesses.shape[0]
        response = self._bandpass.response(nperseg).numpy()
        self._bins = np.flatnonzero(response > _SUPPORT_FLOOR)
        self.frequencies = np.fft.rfftfreq(nperseg, 1 / sample_rate)[
            self._bins
        ]

        num_bins, num_inputs = self._bins.size, self.num_inputs
        cross = np.zeros((num_bins, num_inputs, num_inputs), np.complex128)
        to_strain = np.zeros((num_bins, num_inputs), np.complex128)
        num_segments = (strain.size - nperseg) // (nperseg // 2) + 1
        for _, spectra in self._segment_spectra(
            [witnesses, strain], 0, num_segments
        ):
            inputs, target = spectra[:-1], spectra[-1]
            cross += np.einsum("isf,jsf->fij", inputs.conj(), inputs)
            to_strain += np.einsum("isf,sf->fi", inputs.conj(), target)

        power = np.einsum("fii->fi", cross).real
        scale = np.divide(
            1.0, np.sqrt(power), out=np.zeros_like(power), where=power > 0
        )
        normalised = scale[:, :, None] * cross * scale[:, None, :]
        normalised += self.regularisation * np.eye(num_inputs)
        solution = np.linalg.solve(normalised, (scale * to_strain)[..., None])[
            ..., 0
        ]
        self.transfer_functions = (scale * solution).T
        return self

    def predict(self, witnesses: np.ndarray) -> np.ndarray:
        """Predict the band-passed noise coupled into strain.

        Within ``fftlength`` plus the band-pass settling time of either
        end the prediction sees zero-extended witnesses.

        Args:
            witnesses: Witness series, shape ``(channels, time)``, in the
                order and at the sample rate used in :meth:`fit`.

        Returns:
            Predicted noise in strain units, shape ``(time,)``.
        """
        if self.transfer_functions is None:
            raise RuntimeError("call fit() before predict()")
        witnesses = self._check_witnesses(witnesses)
        if witnesses.shape[0] != self.num_witnesses:
            raise ValueError(
                f"the filter was fitted on {self.num_witnesses} witnesses, "
                f"got {witnesses.shape[0]}; pass the same channels in the "
                "same order"
            )
        size = witnesses.shape[1]
        nperseg = self.nperseg
        step = nperseg // 2
        num_segments = (size - 1) // step + 2
        halves = np.zeros((num_segments + 1, step))
        for first, spectra in self._segment_spectra(
            [witnesses], -step, num_segments
        ):
            count = spectra.shape[1]
            spectrum = np.zeros((count, nperseg // 2 + 1), np.complex128)
            spectrum[:, self._bins] = np.einsum(
                "if,isf->sf", self.transfer_functions, spectra
            )
            segments = np.fft.irfft(spectrum, nperseg, axis=-1)
            halves[first : first + count] += segments[:, :step]
            halves[first + 1 : first + count + 1] += segments[:, step:]
        noise = halves.reshape(-1)[step : step + size]
        return self._bandpass(torch.from_numpy(noise)).numpy()

    def clean(self, witnesses: np.ndarray, strain: np.ndarray) -> np.ndarray:
        """Strain minus the predicted noise, shape ``(time,)``."""
        return checked_strain(strain, witnesses) - self.predict(witnesses)


def wiener_baselines(
    train_witnesses: np.ndarray,
    train_strain: np.ndarray,
    witnesses: np.ndarray,
    strain: np.ndarray,
    sample_rate: float,
    bands: Sequence[Sequence[float]],
    mains_index: int,
    fftlength: float = DEFAULT_FFTLENGTH,
    regularisation: float = DEFAULT_REGULARISATION,
) -> dict[str, np.ndarray]:
    """Clean a span with both Wiener baselines fitted on a training span.

    Args:
        train_witnesses: Training witnesses, shape ``(channels, time)``.
        train_strain: Training strain, shape ``(time,)``.
        witnesses: Witnesses of the span to clean, ``(channels, time)``.
        strain: Strain of the span to clean, shape ``(time,)``.
        sample_rate: Sample rate of every series, Hz.
        bands: Cleaning bands, ``(low, high)`` pairs in Hz.
        mains_index: Row of the mains monitor among the witnesses.
        fftlength: Welch segment and FIR length, s.
        regularisation: Relative diagonal loading.

    Returns:
        Cleaned strain, shape ``(time,)``, keyed ``"Wiener"`` (witnesses
        as they are) and ``"Wiener + products"`` (mains x every other
        witness added).
    """
    variants = {"Wiener": None, "Wiener + products": mains_index}
    return {
        name: WienerFilter(bands, fftlength, regularisation, products)
        .fit(train_witnesses, train_strain, sample_rate)
        .clean(witnesses, strain)
        for name, products in variants.items()
    }
