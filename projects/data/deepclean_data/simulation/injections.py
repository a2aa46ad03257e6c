"""Software injections: when and with what parameters.

The waveforms (sine-Gaussians and leading-order inspiral chirps) and
their JSON descriptions are :mod:`deepclean_io.waveforms`, shared with
the evaluation that rebuilds them from the truth. Injections sit on a
fixed grid of GPS slots: slot ``k`` of a kind covers ``[k * spacing, (k +
1) * spacing)`` and its parameters come from a generator seeded by
``(seed, kind, k)``. Waveforms are closed-form functions of GPS time, so
any span of strain holds exactly the same injections however it is cut.
"""

import math

import numpy as np

from deepclean_data.simulation.blocks import block_rng, stream_key
from deepclean_data.simulation.config import InjectionConfig
from deepclean_io.waveforms import (
    Chirp,
    Injection,
    SineGaussian,
    time_to_coalescence,
)


def _log_uniform(
    rng: np.random.Generator, bounds: tuple[float, float]
) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


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
