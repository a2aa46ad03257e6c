"""Software injections: sine-Gaussians and leading-order inspiral chirps.

Injections sit on a fixed grid of GPS slots: slot ``k`` of a kind covers
``[k * spacing, (k + 1) * spacing)`` and its parameters come from a
generator seeded by ``(seed, kind, k)``. Waveforms are closed-form
functions of GPS time, so any span of strain holds exactly the same
injections however it is cut.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from deepclean_data.simulation.blocks import block_rng, stream_key
from deepclean_data.simulation.config import InjectionConfig

SOLAR_MASS_SECONDS = 4.925490947641267e-06  # G M_sun / c**3, s
MEGAPARSEC_SECONDS = 1.0292712503e14  # 1 Mpc / c, s
# Sine-Gaussians are evaluated within this many e-folding times.
_SINE_GAUSSIAN_WIDTHS = 6.0
# Chirps are tapered over this fraction of their start and end frequency.
_CHIRP_TAPER = 0.2


def _log_uniform(
    rng: np.random.Generator, bounds: tuple[float, float]
) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def time_to_coalescence(frequency: float, chirp_mass: float) -> float:
    """Leading-order seconds from a GW frequency (Hz) to coalescence.

    Args:
        frequency: Gravitational-wave frequency, Hz.
        chirp_mass: Solar masses.
    """
    return (
        5
        / 256
        * (math.pi * frequency) ** (-8 / 3)
        * (chirp_mass * SOLAR_MASS_SECONDS) ** (-5 / 3)
    )


def _taper(position: np.ndarray) -> np.ndarray:
    """Smooth step from 0 (position <= 0) to 1 (position >= 1)."""
    return np.sin(np.pi / 2 * np.clip(position, 0.0, 1.0)) ** 2


@dataclass(frozen=True)
class SineGaussian:
    """``h(t) = A exp(-(t-t0)**2/tau**2) sin(2 pi f (t-t0) + phase)``.

    ``tau = q / (sqrt(2) pi f)`` and ``A`` gives ``sqrt(int h**2 dt) =
    hrss``.

    Attributes:
        time: GPS time of the peak ``t0``, s.
        frequency: Central frequency ``f``, Hz.
        q: Quality factor.
        hrss: Root-sum-squared strain, 1/sqrt(Hz).
        phase: rad.
    """

    time: float
    frequency: float
    q: float
    hrss: float
    phase: float

    @property
    def tau(self) -> float:
        """Gaussian width, s."""
        return self.q / (math.sqrt(2) * math.pi * self.frequency)

    @property
    def span(self) -> tuple[float, float]:
        """GPS interval outside which the waveform is taken as zero."""
        half = _SINE_GAUSSIAN_WIDTHS * self.tau
        return self.time - half, self.time + half

    def strain(self, gps: float, offsets: np.ndarray) -> np.ndarray:
        """Waveform at ``gps + offsets`` (s), shape ``(time,)``."""
        delay = (gps - self.time) + offsets
        amplitude = self.hrss / math.sqrt(
            self.tau * math.sqrt(math.pi / 2) / 2
        )
        inside = np.abs(delay) <= _SINE_GAUSSIAN_WIDTHS * self.tau
        return np.where(
            inside,
            amplitude
            * np.exp(-((delay / self.tau) ** 2))
            * np.sin(2 * np.pi * self.frequency * delay + self.phase),
            0.0,
        )


@dataclass(frozen=True)
class Chirp:
    """Leading-order (Newtonian) quadrupole inspiral, plus polarisation.

    ``h = 4 c Tc**(5/3) (pi f)**(2/3) / D * (1 + cos(i)**2) / 2 *
    cos(Phi)`` with ``Tc = G Mc / c**3``, frequency ``f(tau) = (5 / 256
    tau)**(3/8) Tc**(-5/8) / pi`` and phase ``Phi = phase - 2 (tau / 5
    Tc)**(5/8)`` at ``tau`` seconds before coalescence; tapered to zero
    at the start and end frequencies.

    Attributes:
        coalescence_time: GPS time of coalescence, s.
        chirp_mass: Solar masses.
        distance: Luminosity distance, Mpc.
        inclination: rad.
        phase: Phase at coalescence, rad.
        frequency_start: Frequency where the chirp starts, Hz.
        frequency_end: Frequency where it stops, Hz.
    """

    coalescence_time: float
    chirp_mass: float
    distance: float
    inclination: float
    phase: float
    frequency_start: float
    frequency_end: float

    @property
    def span(self) -> tuple[float, float]:
        """GPS interval of the chirp, s."""
        return (
            self.coalescence_time
            - time_to_coalescence(self.frequency_start, self.chirp_mass),
            self.coalescence_time
            - time_to_coalescence(self.frequency_end, self.chirp_mass),
        )

    def strain(self, gps: float, offsets: np.ndarray) -> np.ndarray:
        """Waveform at ``gps + offsets`` (s), shape ``(time,)``."""
        before = (self.coalescence_time - gps) - offsets
        inside = (
            before
            <= time_to_coalescence(self.frequency_start, self.chirp_mass)
        ) & (
            before >= time_to_coalescence(self.frequency_end, self.chirp_mass)
        )
        tau = np.where(inside, before, 1.0)
        mass = self.chirp_mass * SOLAR_MASS_SECONDS
        frequency = (5 / (256 * tau)) ** (3 / 8) * mass ** (-5 / 8) / math.pi
        phase = self.phase - 2 * (tau / (5 * mass)) ** (5 / 8)
        amplitude = (
            4
            * mass ** (5 / 3)
            * (math.pi * frequency) ** (2 / 3)
            / (self.distance * MEGAPARSEC_SECONDS)
            * (1 + math.cos(self.inclination) ** 2)
            / 2
        )
        taper = _taper(
            (frequency - self.frequency_start)
            / (_CHIRP_TAPER * self.frequency_start)
        ) * _taper(
            (self.frequency_end - frequency)
            / (_CHIRP_TAPER * self.frequency_end)
        )
        return np.where(inside, amplitude * taper * np.cos(phase), 0.0)


Injection = SineGaussian | Chirp


class InjectionSchedule:
    """Injections of every configured kind, on their GPS slot grids.

    Args:
        config: Injection parameters.
        seed: Simulation seed.
        sample_rate: Simulation sample rate, Hz (chirps must end below
            Nyquist).
    """

    def __init__(
        self, config: InjectionConfig, seed: int, sample_rate: float
    ) -> None:
        if (
            config.chirp_spacing > 0
            and config.chirp_frequency[1] >= sample_rate / 2
        ):
            raise ValueError(
                f"injections.chirp_frequency ends at "
                f"{config.chirp_frequency[1]:g} Hz, at or above the Nyquist "
                f"frequency {sample_rate / 2:g} Hz; lower it"
            )
        if (
            config.sine_gaussian_spacing > 0
            and config.sine_gaussian_frequency[1] >= sample_rate / 2
        ):
            raise ValueError(
                "injections.sine_gaussian_frequency reaches the Nyquist "
                f"frequency {sample_rate / 2:g} Hz; lower it"
            )
        self.config = config
        self.seed = seed
        self.sample_rate = sample_rate

    def _sine_gaussian(self, slot: int) -> SineGaussian:
        config = self.config
        rng = block_rng(self.seed, stream_key("sine_gaussian"), slot)
        return SineGaussian(
            time=(slot + rng.uniform()) * config.sine_gaussian_spacing,
            frequency=float(rng.uniform(*config.sine_gaussian_frequency)),
            q=_log_uniform(rng, config.sine_gaussian_q),
            hrss=_log_uniform(rng, config.sine_gaussian_hrss),
            phase=float(rng.uniform(0, 2 * np.pi)),
        )

    def _chirp(self, slot: int) -> Chirp:
        config = self.config
        rng = block_rng(self.seed, stream_key("chirp"), slot)
        return Chirp(
            coalescence_time=(slot + rng.uniform()) * config.chirp_spacing,
            chirp_mass=float(rng.uniform(*config.chirp_mass)),
            distance=float(rng.uniform(*config.chirp_distance)),
            inclination=float(np.arccos(rng.uniform(-1, 1))),
            phase=float(rng.uniform(0, 2 * np.pi)),
            frequency_start=config.chirp_frequency[0],
            frequency_end=config.chirp_frequency[1],
        )

    def overlapping(self, start: float, end: float) -> list[Injection]:
        """Injections whose waveform overlaps GPS ``[start, end)``."""
        config = self.config
        found: list[Injection] = []
        if config.sine_gaussian_spacing > 0:
            spacing = config.sine_gaussian_spacing
            first = math.floor(start / spacing) - 1
            last = math.floor(end / spacing) + 1
            found += [self._sine_gaussian(k) for k in range(first, last + 1)]
        if config.chirp_spacing > 0:
            spacing = config.chirp_spacing
            longest = time_to_coalescence(
                config.chirp_frequency[0], config.chirp_mass[0]
            )
            first = math.floor(start / spacing) - 1
            last = math.floor((end + longest) / spacing) + 1
            found += [self._chirp(k) for k in range(first, last + 1)]
        return [
            injection
            for injection in found
            if injection.span[0] < end and injection.span[1] >= start
        ]

    def strain(self, gps: float, offsets: np.ndarray) -> np.ndarray:
        """Sum of all injections at ``gps + offsets`` (s), ``(time,)``."""
        total = np.zeros_like(offsets)
        end = gps + len(offsets) / self.sample_rate
        for injection in self.overlapping(gps, end):
            total += injection.strain(gps, offsets)
        return total


def describe(injection: Injection) -> dict[str, float | str]:
    """Parameters of an injection as a JSON-ready dict with its type."""
    kind = "sine_gaussian" if isinstance(injection, SineGaussian) else "chirp"
    return {"type": kind, **asdict(injection)}
