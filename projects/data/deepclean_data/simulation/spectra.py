"""Noise spectra of the simulated detector and the filters that make them.

Spectral densities here are one-sided (``S(f)`` with ``f >= 0``, so the
variance is the integral over ``[0, fs/2]``); ASD = sqrt(PSD).
"""

import functools
import importlib.resources
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft

from deepclean_data.simulation.config import BackgroundConfig, MotionConfig

NOISE_CURVE_PACKAGE = "lalapps"
NOISE_CURVE_FILE = "LIGO-T1800545-v1-{name}.txt"


def _available_curves() -> list[str]:
    prefix, suffix = NOISE_CURVE_FILE.split("{name}")
    folder = importlib.resources.files(NOISE_CURVE_PACKAGE) / "data"
    return sorted(
        item.name.removeprefix(prefix).removesuffix(suffix)
        for item in folder.iterdir()
        if item.name.startswith(prefix)
    )


@functools.cache
def load_noise_curve(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A LIGO-T1800545 noise curve shipped with lalsuite.

    Args:
        name: Curve name, e.g. ``"aLIGO_O3low"``.

    Returns:
        ``(frequencies, asd)``: frequencies in Hz and the strain ASD in
        1/sqrt(Hz), both of shape ``(points,)``.
    """
    resource = (
        importlib.resources.files(NOISE_CURVE_PACKAGE)
        / "data"
        / NOISE_CURVE_FILE.format(name=name)
    )
    if not resource.is_file():
        raise ValueError(
            f"noise curve {name!r} is not shipped with lalsuite; choose "
            f"one of {_available_curves()}"
        )
    frequencies, asd = np.loadtxt(str(resource), unpack=True)
    return frequencies, asd


def background_asd(
    frequencies: np.ndarray, config: BackgroundConfig
) -> np.ndarray:
    """Strain ASD of the background noise, 1/sqrt(Hz).

    The curve is interpolated log-log within its range, extended by a
    power-law seismic wall below it (held flat below
    ``config.wall_floor_frequency``) and held flat above it.

    Args:
        frequencies: Frequencies, Hz, any shape.
        config: Curve and seismic-wall parameters.
    """
    curve_frequencies, curve_asd = load_noise_curve(config.noise_curve)
    lowest = curve_frequencies[0]
    floor = min(config.wall_floor_frequency, lowest)
    clipped = np.clip(frequencies, floor, curve_frequencies[-1])
    inside = np.exp(
        np.interp(
            np.log(np.maximum(clipped, lowest)),
            np.log(curve_frequencies),
            np.log(curve_asd),
        )
    )
    wall = curve_asd[0] * (clipped / lowest) ** -config.wall_slope
    return np.where(clipped < lowest, wall, inside)


@dataclass(frozen=True)
class Line:
    """A sinusoid ``amplitude * cos(2 pi frequency t + phase)``.

    Attributes:
        frequency: Hz.
        amplitude: Peak value, in the channel's unit.
        phase: Phase at GPS time 0, rad.
    """

    frequency: float
    amplitude: float
    phase: float


@dataclass(frozen=True)
class Resonance:
    """A damped resonance in a motion spectrum.

    Attributes:
        frequency: Resonant frequency, Hz.
        q: Quality factor.
        gain: Peak ASD relative to the continuum at ``frequency``.
    """

    frequency: float
    q: float
    gain: float

    def shape(self, frequencies: np.ndarray) -> np.ndarray:
        """ASD shape, 1 at the peak, of a driven damped oscillator."""
        ratio = frequencies / self.frequency
        return (1 / self.q) / np.hypot(1 - ratio**2, ratio / self.q)


@dataclass(frozen=True)
class MotionSpectrum:
    """Spectrum of one witness: coloured motion, lines, sensor noise.

    Attributes:
        rms: RMS of the coloured motion (lines excluded), counts.
        corner_frequency: Corner of the low-pass continuum, Hz.
        resonances: Resonances on top of the continuum.
        lines: Deterministic lines in the motion.
        sensor_noise_rms: Per-sample RMS of the white sensor noise at the
            simulation's sample rate, counts.
    """

    rms: float
    corner_frequency: float
    resonances: tuple[Resonance, ...]
    lines: tuple[Line, ...]
    sensor_noise_rms: float

    def shape(self, frequencies: np.ndarray) -> np.ndarray:
        """Unnormalised ASD of the coloured motion."""
        continuum = 1 / (1 + (frequencies / self.corner_frequency) ** 2)
        power = continuum**2
        for resonance in self.resonances:
            peak = resonance.gain / (
                1 + (resonance.frequency / self.corner_frequency) ** 2
            )
            power = power + (peak * resonance.shape(frequencies)) ** 2
        return np.sqrt(power)

    def band_power(self, band: float, sample_rate: float) -> float:
        """Power of the motion (coloured part and lines) below ``band``.

        Args:
            band: Upper edge of the band, Hz (at most the Nyquist
                frequency).
            sample_rate: Simulation sample rate, Hz.

        Returns:
            counts**2.
        """
        frequencies = np.linspace(0, sample_rate / 2, 2**16 + 1)
        shape_power = self.shape(frequencies) ** 2
        in_band = frequencies <= band
        return self.rms**2 * np.trapezoid(
            shape_power[in_band], frequencies[in_band]
        ) / np.trapezoid(shape_power, frequencies) + sum(
            line.amplitude**2 / 2
            for line in self.lines
            if line.frequency <= band
        )

    def recorded_band_power(self, band: float, sample_rate: float) -> float:
        """Power of motion plus sensor noise below ``band``, counts**2.

        Args:
            band: Upper edge of the band, Hz (at most the Nyquist
                frequency).
            sample_rate: Simulation sample rate, Hz.
        """
        # White noise of per-sample variance s**2 has PSD 2 s**2 / fs.
        sensor_psd = 2 * self.sensor_noise_rms**2 / sample_rate
        return self.band_power(band, sample_rate) + sensor_psd * band


def _log_uniform(
    rng: np.random.Generator, bounds: tuple[float, float], size: int = 1
) -> np.ndarray:
    return np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]), size))


def draw_motion_spectrum(
    config: MotionConfig, rng: np.random.Generator, sample_rate: float
) -> MotionSpectrum:
    """Draw one channel's spectrum from the configured ranges.

    Lines and resonances at or above the Nyquist frequency are dropped.

    Args:
        config: Ranges of the spectral parameters.
        rng: Generator seeded for this channel.
        sample_rate: Simulation sample rate, Hz.
    """
    nyquist = sample_rate / 2
    rms = float(_log_uniform(rng, config.rms)[0])
    corner = float(_log_uniform(rng, config.corner_frequency)[0])
    num_resonances = int(rng.integers(*config.num_resonances, endpoint=True))
    resonances = tuple(
        Resonance(float(f), float(q), float(g))
        for f, q, g in zip(
            _log_uniform(rng, config.resonance_frequency, num_resonances),
            _log_uniform(rng, config.resonance_q, num_resonances),
            _log_uniform(rng, config.resonance_gain, num_resonances),
            strict=True,
        )
        if f < nyquist
    )
    num_lines = int(rng.integers(*config.num_lines, endpoint=True))
    lines = tuple(
        Line(float(f), float(a) * rms, float(p))
        for f, a, p in zip(
            _log_uniform(rng, config.line_frequency, num_lines),
            rng.uniform(*config.line_amplitude, num_lines),
            rng.uniform(0, 2 * np.pi, num_lines),
            strict=True,
        )
        if f < nyquist
    )
    spectrum = MotionSpectrum(rms, corner, resonances, lines, 0.0)
    band = min(config.sensor_band, nyquist)
    motion_power = spectrum.band_power(band, sample_rate)
    # White noise of per-sample variance s**2 has PSD 2 s**2 / fs.
    sensor_psd = motion_power / (config.sensor_snr * band)
    sensor_noise_rms = float(np.sqrt(sensor_psd * sample_rate / 2))
    return MotionSpectrum(rms, corner, resonances, lines, sensor_noise_rms)


def design_fir(asd: np.ndarray, sample_rate: float) -> np.ndarray:
    """Linear-phase FIR that turns unit white noise into a given ASD.

    Args:
        asd: Target one-sided ASD on the grid ``rfftfreq(taps,
            1/sample_rate)``, shape ``(..., taps // 2 + 1)``, unit/sqrt(Hz).
        sample_rate: Hz.

    Returns:
        Hann-windowed taps, shape ``(..., taps)`` with ``taps`` even.
        Filtering white noise of unit variance gives a one-sided PSD of
        ``|FFT(taps)|**2 * 2 / sample_rate``, close to ``asd**2``.
    """
    taps = 2 * (asd.shape[-1] - 1)
    impulse = sp_fft.irfft(asd * np.sqrt(sample_rate / 2), n=taps, axis=-1)
    return np.roll(impulse, taps // 2, axis=-1) * np.hanning(taps + 1)[:-1]


def fir_psd(
    taps: np.ndarray, sample_rate: float, num_frequencies: int
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided PSD that a FIR gives unit white noise.

    Args:
        taps: Filter taps, shape ``(..., taps)``.
        sample_rate: Hz.
        num_frequencies: Points of the returned grid over ``[0, fs/2]``.

    Returns:
        ``(frequencies, psd)`` with shapes ``(num_frequencies,)`` and
        ``(..., num_frequencies)``.
    """
    n = 2 * (num_frequencies - 1)
    response = sp_fft.rfft(taps, n=n, axis=-1)
    return (
        sp_fft.rfftfreq(n, 1 / sample_rate),
        np.abs(response) ** 2 * 2 / sample_rate,
    )


def motion_firs(
    spectra: list[MotionSpectrum], sample_rate: float, taps: int
) -> np.ndarray:
    """FIRs giving each channel's coloured motion from unit white noise.

    Args:
        spectra: One spectrum per channel (possibly none).
        sample_rate: Hz.
        taps: Filter length, samples (even).

    Returns:
        Taps of shape ``(channels, taps)``, scaled so that each output has
        the channel's ``rms``.
    """
    frequencies = sp_fft.rfftfreq(taps, 1 / sample_rate)
    shapes = np.array(
        [spectrum.shape(frequencies) for spectrum in spectra]
    ).reshape(len(spectra), len(frequencies))
    firs = design_fir(shapes, sample_rate)
    # Unit white noise through taps h has variance sum(h**2).
    rms = np.array([spectrum.rms for spectrum in spectra])
    return firs * (rms / np.sqrt(np.sum(firs**2, axis=-1)))[:, None]


def two_sided_psd(
    firs: np.ndarray,
    spectra: list[MotionSpectrum],
    sample_rate: float,
    resolution: float,
    max_frequency: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided PSD of each channel's motion (coloured part and lines).

    ``S2(u) = S(|u|) / 2`` on the grid ``u = k * resolution`` for
    ``|u| <= max_frequency``; each line of amplitude ``c`` puts power
    ``c**2 / 4`` into the bins at ``+/-`` its frequency.

    Args:
        firs: Motion FIRs from ``motion_firs``, ``(channels, taps)``.
        spectra: The channels' spectra (for their lines).
        sample_rate: Hz.
        resolution: Grid spacing, Hz (must divide ``sample_rate / 2``).
        max_frequency: Largest ``|u|`` kept, Hz.

    Returns:
        ``(grid, psd)`` of shapes ``(bins,)`` and ``(channels, bins)``,
        grid in Hz and PSD in counts**2/Hz.
    """
    num_frequencies = round(sample_rate / 2 / resolution) + 1
    frequencies, one_sided = fir_psd(firs, sample_rate, num_frequencies)
    kept = round(min(max_frequency, sample_rate / 2) / resolution)
    half = one_sided[:, : kept + 1] / 2
    psd = np.concatenate([half[:, :0:-1], half], axis=-1)
    for row, spectrum in zip(psd, spectra, strict=True):
        for line in spectrum.lines:
            offset = round(line.frequency / resolution)
            if offset <= kept:
                row[kept + offset] += line.amplitude**2 / 4 / resolution
                row[kept - offset] += line.amplitude**2 / 4 / resolution
    grid = resolution * np.arange(-kept, kept + 1)
    return grid, psd
