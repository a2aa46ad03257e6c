"""The simulated interferometer: every channel and its truth, per block.

Channels:

- strain = background + coupled noise + injections, strain units;
- the mains monitor (the witness named ``mains_channel``) = mains voltage
  + white sensor noise, counts;
- every other witness is an angular-control channel = its motion +
  white sensor noise, counts;
- with ``coupling.drift_witness``, a drift witness (``DRIFT_CHANNEL``) =
  the linear gain's fractional drift + white sensor noise, added like
  the decoys;
- decoys: PEM-like channels with their own noise that never couples;
- candidates (``config.candidates``, none by default): uncoupled
  channels = their own motion + white sensor noise, and correlated ones
  = a gain times a coupled angular channel's motion + their own motion +
  white sensor noise, counts; none couples.

Truth (``truth_channels``): the background, the coupled noise and its
linear, bilinear and nonlinear terms, and the injections, all in strain.
"""

from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft

from deepclean_data.simulation.blocks import (
    BlockSinusoids,
    ColouredNoise,
    parameter_rng,
    stream_key,
    white_noise,
)
from deepclean_data.simulation.candidates import CandidatePool
from deepclean_data.simulation.config import CandidateConfig, SimulationConfig
from deepclean_data.simulation.couplings import CouplingModel
from deepclean_data.simulation.injections import InjectionSchedule
from deepclean_data.simulation.mains import MainsModel, MainsSignal
from deepclean_data.simulation.spectra import (
    MotionSpectrum,
    background_asd,
    design_fir,
    draw_motion_spectrum,
    fir_psd,
    motion_firs,
    two_sided_psd,
)
from deepclean_io.truth import truth_channels

# Realistic PEM channel names (IFO prefix added) for the decoy witnesses.
DECOY_CHANNELS = (
    "PEM-EX_ACC_BSC9_ETMX_Y_DQ",
    "PEM-EY_MIC_VEA_PLUSY_DQ",
)
# PEM-like name (IFO prefix added) of the witness of the coupling drift.
DRIFT_CHANNEL = "PEM-CS_TEMP_LVEA_VERTEX_DQ"
STRAIN_UNIT = "strain"
WITNESS_UNIT = "ct"
# Offsets (Hz) around the mains line over which motion spectra are kept
# to scale the couplings; motion has negligible power above this.
_MOTION_SPECTRUM_EXTENT = 64.0


def _with_ifo(strain_channel: str, names: tuple[str, ...]) -> list[str]:
    """Channel names with the strain channel's IFO prefix."""
    ifo = strain_channel.split(":", 1)[0]
    return [f"{ifo}:{name}" for name in names]


def decoy_channels(strain_channel: str) -> list[str]:
    """Decoy witness names with the strain channel's IFO prefix."""
    return _with_ifo(strain_channel, DECOY_CHANNELS)


def drift_channel(strain_channel: str) -> str:
    """Name of the drift witness with the strain channel's IFO prefix."""
    return _with_ifo(strain_channel, (DRIFT_CHANNEL,))[0]


def _candidate_pool(
    strain_channel: str, witnesses: list[str], config: CandidateConfig
) -> CandidatePool:
    """Candidate names clear of strain, witnesses, decoys and drift."""
    reserved = {
        strain_channel,
        *witnesses,
        *decoy_channels(strain_channel),
        drift_channel(strain_channel),
    }
    ifo = strain_channel.split(":", 1)[0]
    return CandidatePool.named(ifo, reserved, config)


def candidate_channels(
    strain_channel: str, witnesses: list[str], config: SimulationConfig
) -> list[str]:
    """Names of the candidate witnesses a simulated file will hold.

    The same names, in the same order, as the data file's candidate
    channels (after the decoys), without simulating anything; they do
    not depend on the seed.

    Args:
        strain_channel: ``IFO:NAME`` of strain; gives the IFO prefix.
        witnesses: The witnesses given to the simulation.
        config: Simulation parameters (``config.candidates`` counts).
    """
    return list(
        _candidate_pool(strain_channel, witnesses, config.candidates).channels
    )


@dataclass(frozen=True)
class ChannelRoles:
    """Which channel plays which part.

    Attributes:
        strain: Strain channel.
        mains: Mains monitor.
        angular: Angular-control witnesses, in the order given.
        decoys: Witnesses that do not couple.
        drift: The drift witness, if any (none or one name).
        pool: Candidate witnesses, none of which couples.
    """

    strain: str
    mains: str
    angular: tuple[str, ...]
    decoys: tuple[str, ...]
    drift: tuple[str, ...] = ()
    pool: CandidatePool = CandidatePool()

    @classmethod
    def assign(
        cls,
        strain_channel: str,
        witnesses: list[str],
        mains_channel: str,
        drift: bool = False,
        candidates: CandidateConfig = CandidateConfig(),
    ) -> "ChannelRoles":
        """Split the witnesses, refusing lists the simulator cannot use.

        Args:
            strain_channel: ``IFO:NAME`` of strain.
            witnesses: Witness channels, the mains monitor among them.
            mains_channel: The witness that is the mains monitor; the
                others are angular-control channels.
            drift: Add the drift witness (``coupling.drift_witness``).
            candidates: The candidate pool to add (``config.candidates``).
        """
        if ":" not in strain_channel:
            raise ValueError(
                f"strain channel {strain_channel!r} must be named "
                "'IFO:NAME', e.g. 'H1:GDS-CALIB_STRAIN'"
            )
        if isinstance(witnesses, str):
            raise TypeError(
                f"witnesses must be a list of channel names, got the string "
                f"{witnesses!r}"
            )
        duplicates = sorted({w for w in witnesses if witnesses.count(w) > 1})
        if duplicates:
            raise ValueError(f"witnesses {duplicates} are listed twice")
        if strain_channel in witnesses:
            raise ValueError(
                f"the strain channel {strain_channel!r} is also listed as a "
                "witness; remove it from witnesses"
            )
        if mains_channel not in witnesses:
            raise ValueError(
                f"mains channel {mains_channel!r} is not among the "
                f"witnesses {witnesses}; pass the mains monitor among them "
                "as mains_channel (--mains_channel), or add it to witnesses"
            )
        angular = tuple(name for name in witnesses if name != mains_channel)
        if not angular:
            raise ValueError(
                "witnesses hold no angular-control channel to mix with the "
                "mains; add e.g. 'H1:ASC-CHARD_P_INMON'"
            )
        decoys = tuple(decoy_channels(strain_channel))
        reserved = {*decoys, drift_channel(strain_channel)}
        clashes = sorted(reserved & set(witnesses))
        if clashes:
            raise ValueError(
                f"witnesses {clashes} are names the simulator reserves for "
                "the decoys and the drift witness it adds; remove them from "
                "witnesses"
            )
        added = (drift_channel(strain_channel),) if drift else ()
        pool = _candidate_pool(strain_channel, witnesses, candidates)
        return cls(strain_channel, mains_channel, angular, decoys, added, pool)

    @property
    def witnesses(self) -> tuple[str, ...]:
        """Mains then angular channels."""
        return (self.mains, *self.angular)

    @property
    def candidates(self) -> tuple[str, ...]:
        """The candidate witnesses: uncoupled, then correlated."""
        return self.pool.channels

    @property
    def recorded(self) -> tuple[str, ...]:
        """Every witness row of the data, in order.

        Mains, angular channels, drift witness, decoys, candidates.
        """
        return (
            self.mains,
            *self.angular,
            *self.drift,
            *self.decoys,
            *self.candidates,
        )

    @property
    def data_channels(self) -> tuple[str, ...]:
        """Channels of the data file: strain, then :attr:`recorded`."""
        return (self.strain, *self.recorded)


@dataclass(frozen=True)
class Correlation:
    """How a correlated candidate records a coupled angular motion.

    The candidate = ``gain`` x the source's true motion + its own motion
    + its own white sensor noise.

    Attributes:
        source: The coupled angular witness whose motion it records.
        snr: Power of ``gain`` x the source's motion over the candidate's
            own motion and sensor noise, below ``candidates.snr_band``.
        gain: Counts of the candidate per count of the source's motion.
    """

    source: str
    snr: float
    gain: float


def _samples(seconds: float, sample_rate: float, what: str) -> int:
    """Whole number of samples in a duration, or a clear error."""
    samples = seconds * sample_rate
    if abs(samples - round(samples)) > 1e-6 or round(samples) <= 0:
        raise ValueError(
            f"{what} = {seconds} s is not a positive whole number of "
            f"samples at {sample_rate} Hz"
        )
    return round(samples)


class _LineSet:
    """The deterministic lines of several channels over any block.

    Args:
        spectra: One spectrum per channel, with its lines.
        offsets: Seconds of each sample after its block start, ``(time,)``.
    """

    def __init__(
        self, spectra: list[MotionSpectrum], offsets: np.ndarray
    ) -> None:
        # One row and sinusoid per line, added one at a time so that a
        # block needs one line's waveform at once, however many there are.
        self.lines = [
            (
                row,
                np.float32(line.amplitude),
                BlockSinusoids(
                    np.array([line.frequency]),
                    np.array([line.phase]),
                    offsets,
                ),
            )
            for row, spectrum in enumerate(spectra)
            for line in spectrum.lines
        ]

    def add_to(self, channels: np.ndarray, gps: float) -> None:
        """Add the lines of the block at ``gps`` to ``(channels, time)``."""
        for row, amplitude, sinusoid in self.lines:
            channels[row] += amplitude * sinusoid.cos(gps)[0]


class SimulatedDetector:
    """Every channel of the simulated interferometer, by GPS block.

    Block ``k`` covers GPS ``[k * B, (k + 1) * B)`` with ``B =
    config.block_duration``; its samples depend only on the seed, the
    configuration and the channel names, never on which span is asked
    for.

    Args:
        roles: Channel names and roles.
        sample_rate: Hz.
        seed: Seed of every random choice.
        config: Simulation parameters.
        executor: Draws random streams in parallel threads when given.
    """

    def __init__(
        self,
        roles: ChannelRoles,
        sample_rate: float,
        seed: int,
        config: SimulationConfig,
        executor: Executor | None = None,
    ) -> None:
        if bool(roles.drift) != config.coupling.drift_witness:
            raise ValueError(
                f"the channel roles list drift witnesses {roles.drift} but "
                f"coupling.drift_witness is {config.coupling.drift_witness}; "
                "assign the roles with drift=config.coupling.drift_witness"
            )
        pool = _candidate_pool(
            roles.strain, list(roles.witnesses), config.candidates
        )
        if roles.pool != pool:
            raise ValueError(
                f"the channel roles' {len(roles.candidates)} candidates are "
                f"not the {len(pool.channels)} that config.candidates = "
                f"{config.candidates} names; assign the roles with "
                "candidates=config.candidates"
            )
        self.roles = roles
        self.sample_rate = float(sample_rate)
        self.seed = seed
        self.config = config
        self.executor = executor
        self.block_duration = config.block_duration
        self.block_samples = _samples(
            config.block_duration, sample_rate, "block_duration"
        )
        taps = 2 * _samples(
            config.filter_duration / 2, sample_rate, "filter_duration / 2"
        )
        self.offsets = np.arange(self.block_samples) / self.sample_rate

        frequencies = sp_fft.rfftfreq(taps, 1 / sample_rate)
        background_fir = design_fir(
            background_asd(frequencies, config.background)[None], sample_rate
        )
        self.background = ColouredNoise(
            seed,
            [stream_key("background", roles.strain)],
            background_fir,
            self.block_samples,
            np.float64,
            executor,
        )
        self.mains = MainsModel.draw(config.mains, seed, sample_rate)
        self.mains_signal = MainsSignal(self.mains, self.offsets)
        self.angular_spectra = [
            draw_motion_spectrum(
                config.angular,
                parameter_rng(seed, "angular", name),
                sample_rate,
            )
            for name in roles.angular
        ]
        angular_firs = motion_firs(self.angular_spectra, sample_rate, taps)
        self.angular = ColouredNoise(
            seed,
            [stream_key("motion", name) for name in roles.angular],
            angular_firs,
            self.block_samples,
            executor=executor,
        )
        self.decoy_spectra = [
            draw_motion_spectrum(
                config.decoys, parameter_rng(seed, "decoy", name), sample_rate
            )
            for name in roles.decoys
        ]
        self.decoys = ColouredNoise(
            seed,
            [stream_key("motion", name) for name in roles.decoys],
            motion_firs(self.decoy_spectra, sample_rate, taps),
            self.block_samples,
            executor=executor,
        )
        self.candidate_spectra = [
            draw_motion_spectrum(
                motion, parameter_rng(seed, "candidate", name), sample_rate
            )
            for motion, names in (
                (config.decoys, pool.broadband),
                (config.angular, pool.low_frequency),
                (config.angular, pool.correlated),
            )
            for name in names
        ]
        self.candidates = ColouredNoise(
            seed,
            [stream_key("motion", name) for name in roles.candidates],
            motion_firs(self.candidate_spectra, sample_rate, taps),
            self.block_samples,
            executor=executor,
        )
        self.sensor_keys = [
            stream_key("sensor", name) for name in roles.recorded
        ]
        self.sensor_rms = np.array(
            [
                self.mains.sensor_noise_rms,
                *(s.sensor_noise_rms for s in self.angular_spectra),
                *(config.coupling.drift_witness_noise for _ in roles.drift),
                *(s.sensor_noise_rms for s in self.decoy_spectra),
                *(s.sensor_noise_rms for s in self.candidate_spectra),
            ],
            dtype=np.float32,
        )[:, None]

        self.coupling = self._draw_coupling(angular_firs, background_fir[0])
        self.correlations = self._draw_correlations()
        self.correlation_sources = np.array(
            [roles.angular.index(c.source) for c in self.correlations],
            dtype=int,
        )
        self.correlation_gains = np.array(
            [c.gain for c in self.correlations], dtype=np.float32
        )[:, None]
        self.drift = self.coupling.drift_modes.sinusoids(self.offsets)
        self.angular_lines = _LineSet(self.angular_spectra, self.offsets)
        self.decoy_lines = _LineSet(self.decoy_spectra, self.offsets)
        self.candidate_lines = _LineSet(self.candidate_spectra, self.offsets)
        self.injections = InjectionSchedule(
            config.injections, seed, sample_rate
        )

    def _draw_coupling(
        self, angular_firs: np.ndarray, background_fir: np.ndarray
    ) -> CouplingModel:
        """Couplings scaled against the realised noise spectra.

        Args:
            angular_firs: Motion FIRs, ``(angular channels, taps)``.
            background_fir: Background strain FIR, ``(taps,)``.
        """
        config = self.config
        band = config.coupling.band
        if band[1] >= self.sample_rate / 2:
            raise ValueError(
                f"coupling.band {band} reaches the Nyquist frequency "
                f"{self.sample_rate / 2:g} Hz; raise sample_rate"
            )
        resolution = 1 / (2 * config.filter_duration)
        motion_grid, motion_psd = two_sided_psd(
            angular_firs,
            self.angular_spectra,
            self.sample_rate,
            resolution,
            _MOTION_SPECTRUM_EXTENT,
        )
        frequencies, background_psd = fir_psd(
            background_fir,
            self.sample_rate,
            round(self.sample_rate / 2 / resolution) + 1,
        )
        in_band = (frequencies >= band[0]) & (frequencies <= band[1])
        line_asd = background_asd(
            np.array(config.mains.frequency), config.background
        )
        return CouplingModel.draw(
            config.coupling,
            self.seed,
            self.mains,
            list(self.roles.angular),
            motion_grid,
            motion_psd,
            background_band_power=float(
                background_psd[in_band].sum() * resolution
            ),
            background_psd_at_line=float(line_asd**2),
        )

    def _draw_correlations(self) -> list[Correlation]:
        """Source, SNR and gain of each correlated candidate.

        Sources cycle through the coupled angular channels in an order
        drawn from the seed, so they spread evenly over them; each SNR is
        drawn from the candidate's name, and the gain follows from it.
        """
        config = self.config.candidates
        order = parameter_rng(self.seed, "candidates", "sources")
        coupled = order.permutation(self.coupling.coupled)
        band = min(config.snr_band, self.sample_rate / 2)
        num_uncoupled = len(self.roles.pool.uncoupled)
        correlations = []
        for k, name in enumerate(self.roles.pool.correlated):
            source = int(coupled[k % len(coupled)])
            snr = float(
                np.exp(
                    parameter_rng(self.seed, "correlation", name).uniform(
                        *np.log(config.correlated_snr)
                    )
                )
            )
            own = self.candidate_spectra[num_uncoupled + k]
            shared = self.angular_spectra[source]
            gain = np.sqrt(
                snr
                * own.recorded_band_power(band, self.sample_rate)
                / shared.band_power(band, self.sample_rate)
            )
            correlations.append(
                Correlation(self.roles.angular[source], snr, float(gain))
            )
        return correlations

    def block_start(self, index: int) -> float:
        """GPS start of block ``index``, s."""
        return index * self.block_duration

    def blocks(
        self, first_sample: int, num_samples: int
    ) -> Iterator[tuple[int, slice, slice]]:
        """The blocks that cover a span of the GPS sample grid, in order.

        Args:
            first_sample: Index of the span's first sample on the grid
                (GPS time times ``sample_rate``).
            num_samples: Length of the span.

        Yields:
            ``(index, rows, span)``: the block, the slice of its samples
            inside the span and where they go in the span.
        """
        block_samples = self.block_samples
        last = first_sample + num_samples
        for index in range(
            first_sample // block_samples, (last - 1) // block_samples + 1
        ):
            block_first = index * block_samples
            low = max(first_sample, block_first)
            high = min(last, block_first + block_samples)
            yield (
                index,
                slice(low - block_first, high - block_first),
                slice(low - first_sample, high - first_sample),
            )

    def motion(self, index: int) -> np.ndarray:
        """True angular motion of block ``index``, without sensor noise.

        Returns:
            float32, ``(angular, block_samples)`` in ``roles.angular``
            order: coloured motion plus the deterministic lines.
        """
        motion = self.angular.block(index)
        self.angular_lines.add_to(motion, self.block_start(index))
        return motion

    def block(self, index: int) -> dict[str, np.ndarray]:
        """Every data and truth channel over block ``index``.

        Returns:
            Arrays of shape ``(block_samples,)`` keyed by channel name:
            float64 strain and truth, float32 witnesses and decoys.
        """
        roles = self.roles
        gps = self.block_start(index)
        offsets = self.offsets
        # Witness rows: mains, angular channels, drift witness, decoys,
        # candidates.
        witnesses = white_noise(
            self.seed,
            self.sensor_keys,
            index,
            self.block_samples,
            executor=self.executor,
        )
        witnesses *= self.sensor_rms
        state = self.mains_signal.state(gps)
        motion = self.motion(index)
        num_angular = len(roles.angular)
        drift_modes = self.drift.sin(gps)
        witnesses[0] += self.mains.voltage(state).astype(np.float32)
        witnesses[1 : num_angular + 1] += motion
        if roles.drift:
            witnesses[num_angular + 1] += (
                self.coupling.linear.fractional_drift(drift_modes)
            ).astype(np.float32)
        first_decoy = num_angular + 1 + len(roles.drift)
        first_candidate = first_decoy + len(roles.decoys)
        decoys = witnesses[first_decoy:first_candidate]
        decoys += self.decoys.block(index)
        self.decoy_lines.add_to(decoys, gps)
        candidates = witnesses[first_candidate:]
        candidates += self.candidates.block(index)
        self.candidate_lines.add_to(candidates, gps)
        correlated = candidates[len(roles.pool.uncoupled) :]
        correlated += self.correlation_gains * motion[self.correlation_sources]
        terms = self.coupling.apply(self.mains, state, motion, drift_modes)
        coupled = terms["linear"] + terms["bilinear"] + terms["nonlinear"]
        background = self.background.block(index)[0]
        injections = self.injections.strain(gps, offsets)
        truth = truth_channels(roles.strain)
        channels = {roles.strain: background + coupled + injections}
        channels |= dict(zip(roles.recorded, witnesses, strict=True))
        channels |= {
            truth["background"]: background,
            truth["coupled"]: coupled,
            truth["linear"]: terms["linear"],
            truth["bilinear"]: terms["bilinear"],
            truth["nonlinear"]: terms["nonlinear"],
            truth["injections"]: injections,
        }
        return channels

    def candidate_truth(self) -> dict[str, object]:
        """Which candidates are uncoupled and what the others record.

        Returns:
            ``{"uncoupled": [names], "low_frequency": [the uncoupled ones
            with angular-like spectra], "correlated": {name: {"source",
            "snr", "gain"}}}``, for JSON.
        """
        pool = self.roles.pool
        return {
            "uncoupled": list(pool.uncoupled),
            "low_frequency": list(pool.low_frequency),
            "correlated": {
                name: vars(correlation)
                for name, correlation in zip(
                    pool.correlated, self.correlations, strict=True
                )
            },
        }

    def description(self) -> dict[str, object]:
        """The drawn parameters of every channel and coupling, for JSON."""
        coupling = self.coupling
        return {
            "mains": _jsonable(vars(self.mains)),
            "angular": {
                name: _jsonable(spectrum)
                for name, spectrum in zip(
                    self.roles.angular, self.angular_spectra, strict=True
                )
            },
            "decoys": {
                name: _jsonable(spectrum)
                for name, spectrum in zip(
                    self.roles.decoys, self.decoy_spectra, strict=True
                )
            },
            "candidates": {
                name: _jsonable(spectrum)
                for name, spectrum in zip(
                    self.roles.candidates, self.candidate_spectra, strict=True
                )
            },
            "coupling": {
                "linear": _jsonable(vars(coupling.linear)),
                "bilinear": _jsonable(vars(coupling.bilinear)),
                "nonlinear": _jsonable(
                    None
                    if coupling.nonlinear is None
                    else vars(coupling.nonlinear)
                ),
                "nonlinear_pairs": [
                    [self.roles.angular[i], self.roles.angular[j]]
                    for i, j in coupling.pairs
                ],
                "rectified": _jsonable(
                    None
                    if coupling.rectified is None
                    else vars(coupling.rectified)
                ),
                "coupled": [self.roles.angular[i] for i in coupling.coupled],
                "drift_modes": _jsonable(vars(coupling.drift_modes)),
            },
        }


def _jsonable(value: object) -> object:
    """Convert dataclasses, arrays and numpy scalars to JSON types."""
    if hasattr(value, "__dataclass_fields__"):
        return _jsonable(vars(value))
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
