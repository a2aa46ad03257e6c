"""Injection waveforms: sine-Gaussians and leading-order inspiral chirps.

The simulated detector injects these into strain and records each one in
its truth JSON as a description, ``{"type": kind, **parameters}``
(:func:`describe`); :func:`from_description` rebuilds the waveform, so an
evaluation recomputes exactly what was injected. Waveforms are closed-form
functions of GPS time (s), in strain.
"""

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

SOLAR_MASS_SECONDS = 4.925490947641267e-06  # G M_sun / c**3, s
MEGAPARSEC_SECONDS = 1.0292712503e14  # 1 Mpc / c, s
# Sine-Gaussians are evaluated within this many e-folding times.
_SINE_GAUSSIAN_WIDTHS = 6.0
# Chirps are tapered over this fraction of their start and end frequency.
_CHIRP_TAPER = 0.2


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

    kind: ClassVar[str] = "sine_gaussian"

    time: float
    frequency: float
    q: float
    hrss: float
    phase: float

    @property
    def reference_time(self) -> float:
        """GPS time of the peak, s."""
        return self.time

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

    kind: ClassVar[str] = "chirp"

    coalescence_time: float
    chirp_mass: float
    distance: float
    inclination: float
    phase: float
    frequency_start: float
    frequency_end: float

    @property
    def reference_time(self) -> float:
        """GPS time of coalescence, s."""
        return self.coalescence_time

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
WAVEFORMS: dict[str, type[Injection]] = {
    waveform.kind: waveform for waveform in (SineGaussian, Chirp)
}
"""Waveform class by the ``type`` of its description."""


def describe(injection: Injection) -> dict[str, Any]:
    """Parameters of an injection as a JSON-ready dict with its type."""
    return {"type": injection.kind, **asdict(injection)}


def from_description(description: dict[str, Any]) -> Injection:
    """The injection a :func:`describe` dict describes.

    Raises:
        ValueError: the type is unknown.
    """
    parameters = dict(description)
    kind = parameters.pop("type")
    if kind not in WAVEFORMS:
        raise ValueError(
            f"unknown injection type {kind!r} in the truth JSON; expected "
            f"one of {sorted(WAVEFORMS)}"
        )
    return WAVEFORMS[kind](**parameters)
