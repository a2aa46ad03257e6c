"""The mains voltage: a wandering, amplitude-modulated line with harmonics.

Everything here is a closed-form function of GPS time (sums of slow
sinusoids), so its value at any time is exact and needs no history.
Slow modes are evaluated in float32 by angle addition from tables; the
line's phase is computed in float64.
"""

from dataclasses import dataclass

import numpy as np

from deepclean_data.simulation.blocks import (
    BlockSinusoids,
    cycles,
    parameter_rng,
)
from deepclean_data.simulation.config import MainsConfig


@dataclass(frozen=True)
class SlowModes:
    """A sum of slow sinusoids ``sum_j a_j sin(2 pi t / T_j + phi_j)``.

    Attributes:
        periods: ``T_j``, s, shape ``(modes,)``.
        amplitudes: ``a_j``, shape ``(modes,)``.
        phases: ``phi_j`` at GPS 0, rad, shape ``(modes,)``.
    """

    periods: np.ndarray
    amplitudes: np.ndarray
    phases: np.ndarray

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        periods: tuple[float, float],
        num_modes: int,
        rms: float,
    ) -> "SlowModes":
        """Modes with log-uniform periods whose sum has RMS ``rms``."""
        log_periods = rng.uniform(*np.log(periods), num_modes)
        weights = rng.uniform(0.5, 1.0, num_modes)
        amplitudes = rms * np.sqrt(2) * weights / np.linalg.norm(weights)
        phases = rng.uniform(0, 2 * np.pi, num_modes)
        return cls(np.exp(log_periods), amplitudes, phases)

    @property
    def mean_square(self) -> float:
        """Time average of the squared sum."""
        return float(np.sum(self.amplitudes**2) / 2)

    def sinusoids(self, offsets: np.ndarray) -> BlockSinusoids:
        """The modes' unit sinusoids over blocks of these offsets (s)."""
        return BlockSinusoids(1 / self.periods, self.phases, offsets)


@dataclass(frozen=True)
class MainsState:
    """The mains over one block of samples.

    Attributes:
        cos: ``cos(2 pi h phi(t))`` for harmonics h = 1, 2, ...,
            shape ``(harmonics, time)``.
        sin: ``sin(2 pi h phi(t))``, shape ``(harmonics, time)``.
        frequency: Instantaneous frequency of the fundamental, Hz,
            shape ``(time,)``.
        envelope: Relative amplitude ``1 + modulation``, ``(time,)``.
    """

    cos: np.ndarray
    sin: np.ndarray
    frequency: np.ndarray
    envelope: np.ndarray


@dataclass(frozen=True)
class MainsModel:
    """Mains voltage ``A e(t) sum_h a_h cos(2 pi h phi(t) + psi_h)``.

    Attributes:
        frequency: Nominal frequency of the fundamental, Hz.
        amplitude: ``A``, amplitude of the fundamental, counts.
        wander: Frequency deviation ``phi'(t) - frequency``, Hz.
        modulation: Amplitude modulation ``e(t) - 1``.
        harmonic_amplitudes: ``a_h`` for h = 1, 2, ... (``a_1 = 1``).
        harmonic_phases: ``psi_h``, rad (``psi_1 = 0``).
        sensor_noise_rms: Per-sample RMS of the monitor's white sensor
            noise, counts.
    """

    frequency: float
    amplitude: float
    wander: SlowModes
    modulation: SlowModes
    harmonic_amplitudes: np.ndarray
    harmonic_phases: np.ndarray
    sensor_noise_rms: float

    @classmethod
    def draw(
        cls, config: MainsConfig, seed: int, sample_rate: float
    ) -> "MainsModel":
        """Draw the slow modes and harmonic phases for a seed."""
        nyquist = sample_rate / 2
        highest = config.frequency * (len(config.harmonics) + 1)
        if highest >= nyquist:
            raise ValueError(
                f"mains harmonic at {highest:g} Hz is at or above the "
                f"Nyquist frequency {nyquist:g} Hz; raise sample_rate or "
                "shorten mains.harmonics"
            )
        rng = parameter_rng(seed, "mains")
        wander = SlowModes.draw(
            rng,
            config.wander_periods,
            config.num_wander_modes,
            config.wander,
        )
        modulation = SlowModes.draw(
            rng,
            config.modulation_periods,
            config.num_modulation_modes,
            config.modulation_depth,
        )
        phases = rng.uniform(0, 2 * np.pi, len(config.harmonics))
        # Fundamental power A**2 / 2 over white noise of PSD 2 s**2 / fs
        # integrated over 10 Hz.
        sensor_psd = config.amplitude**2 / 2 / (config.sensor_snr * 10.0)
        return cls(
            frequency=config.frequency,
            amplitude=config.amplitude,
            wander=wander,
            modulation=modulation,
            harmonic_amplitudes=np.array([1.0, *config.harmonics]),
            harmonic_phases=np.array([0.0, *phases]),
            sensor_noise_rms=float(np.sqrt(sensor_psd * sample_rate / 2)),
        )

    @property
    def harmonic_numbers(self) -> np.ndarray:
        """1, 2, ... for each harmonic, shape ``(harmonics,)``."""
        return np.arange(1, len(self.harmonic_amplitudes) + 1)

    def voltage(self, state: MainsState) -> np.ndarray:
        """True mains voltage, counts, shape ``(time,)``."""
        in_phase = self.harmonic_amplitudes * np.cos(self.harmonic_phases)
        quadrature = self.harmonic_amplitudes * np.sin(self.harmonic_phases)
        return (
            self.amplitude
            * state.envelope
            * (in_phase @ state.cos - quadrature @ state.sin)
        )


class MainsSignal:
    """The mains model evaluated over blocks of fixed sample offsets.

    Args:
        model: The mains parameters.
        offsets: Seconds of each sample after its block start, ``(time,)``.
    """

    def __init__(self, model: MainsModel, offsets: np.ndarray) -> None:
        self.model = model
        self.offsets = offsets
        self._wander = model.wander.sinusoids(offsets)
        self._modulation = model.modulation.sinusoids(offsets)
        wander = model.wander
        # Integral of a sin(2 pi t / T + phi) is -a T / 2 pi cos(...).
        self._wander_turns = (
            -wander.amplitudes * wander.periods / (2 * np.pi)
        ).astype(np.float32)

    def state(self, gps: float) -> MainsState:
        """Phases, frequency and envelope over the block at ``gps`` (s)."""
        model = self.model
        turns = cycles(model.frequency, gps, self.offsets) + (
            self._wander_turns @ self._wander.cos(gps)
        )
        angle = 2 * np.pi * (turns % 1)
        num_harmonics = len(model.harmonic_amplitudes)
        cos = np.empty((num_harmonics, len(self.offsets)))
        sin = np.empty_like(cos)
        np.cos(angle, out=cos[0])
        np.sin(angle, out=sin[0])
        # Angle addition: harmonic h + 1 from harmonic h and the fundamental.
        for h in range(1, num_harmonics):
            cos[h] = cos[h - 1] * cos[0] - sin[h - 1] * sin[0]
            sin[h] = sin[h - 1] * cos[0] + cos[h - 1] * sin[0]
        wander = model.wander.amplitudes.astype(np.float32)
        modulation = model.modulation.amplitudes.astype(np.float32)
        return MainsState(
            cos=cos,
            sin=sin,
            frequency=model.frequency + wander @ self._wander.sin(gps),
            envelope=1 + modulation @ self._modulation.sin(gps),
        )
