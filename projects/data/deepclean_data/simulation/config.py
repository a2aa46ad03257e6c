"""Typed parameters of the simulated detector.

Every number the simulator uses comes from these dataclasses, so a
configuration (and the seed) fixes the output bit for bit. They nest
under ``SimulationConfig`` and are read by jsonargparse, so each field is
a command-line option (``--config.coupling.skirt_ratio 2.5``).

Ranges are ``(low, high)`` pairs from which each channel draws its own
value (log-uniformly for scales, frequencies and Qs).
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _check_range(
    name: str, bounds: tuple[float, float], minimum: float = 0.0
) -> None:
    """Refuse a (low, high) pair that is reversed or below a minimum."""
    low, high = bounds
    if not minimum <= low <= high:
        raise ValueError(
            f"{name} = {bounds} must be a (low, high) pair with "
            f"{minimum} <= low <= high"
        )


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} = {value} must be > 0")


@dataclass
class BackgroundConfig:
    """Gaussian strain noise coloured by a LIGO-T1800545 noise curve.

    Attributes:
        noise_curve: Curve shipped with lalsuite, named as in its data
            file ``LIGO-T1800545-v1-{noise_curve}.txt`` (e.g.
            ``"aLIGO_O3low"``, ``"aLIGO_140Mpc"``, ``"aLIGO_175Mpc"``).
        wall_slope: Power-law index of the seismic wall: below the
            curve's lowest frequency (9 Hz) the amplitude spectral density
            (ASD) grows as ``f ** -wall_slope``.
        wall_floor_frequency: Below this frequency (Hz) the ASD stays at
            its value there.
    """

    noise_curve: str = "aLIGO_O3low"
    wall_slope: float = 6.0
    wall_floor_frequency: float = 3.0

    def __post_init__(self) -> None:
        _check_positive("background.wall_slope", self.wall_slope)
        _check_positive(
            "background.wall_floor_frequency", self.wall_floor_frequency
        )


@dataclass
class MainsConfig:
    """The mains voltage, seen by the mains monitor and coupling to strain.

    Attributes:
        frequency: Nominal line frequency, Hz.
        amplitude: Amplitude of the fundamental in the monitor, counts.
        wander: RMS deviation of the instantaneous frequency, Hz.
        wander_periods: Periods of the frequency wander, s.
        num_wander_modes: Sinusoids summed to make the wander.
        modulation_depth: RMS fractional amplitude modulation.
        modulation_periods: Periods of the amplitude modulation, s.
        num_modulation_modes: Sinusoids summed to make the modulation.
        harmonics: Amplitudes of harmonics 2, 3, ... relative to the
            fundamental.
        sensor_snr: Power of the fundamental over the monitor's (white)
            sensor-noise power in a 10 Hz band.
    """

    frequency: float = 60.0
    amplitude: float = 100.0
    wander: float = 0.02
    wander_periods: tuple[float, float] = (60.0, 900.0)
    num_wander_modes: int = 3
    modulation_depth: float = 0.1
    modulation_periods: tuple[float, float] = (10.0, 300.0)
    num_modulation_modes: int = 3
    harmonics: tuple[float, ...] = (0.1, 0.3)
    sensor_snr: float = 1.0e4

    def __post_init__(self) -> None:
        _check_positive("mains.frequency", self.frequency)
        _check_positive("mains.amplitude", self.amplitude)
        _check_positive("mains.sensor_snr", self.sensor_snr)
        _check_range("mains.wander_periods", self.wander_periods, 1e-3)
        _check_range("mains.modulation_periods", self.modulation_periods, 1e-3)
        if self.wander < 0 or not 0 <= self.modulation_depth < 1:
            raise ValueError(
                f"mains.wander = {self.wander} must be >= 0 and "
                f"mains.modulation_depth = {self.modulation_depth} in [0, 1)"
            )
        if self.num_wander_modes < 1 or self.num_modulation_modes < 1:
            raise ValueError(
                "mains.num_wander_modes and mains.num_modulation_modes must "
                "be >= 1 (set wander or modulation_depth to 0 to disable)"
            )


@dataclass
class MotionConfig:
    """Coloured motion recorded by a witness, plus its sensor noise.

    The motion's ASD is a low-pass continuum (flat below a corner
    frequency, falling as ``f ** -2`` above it) plus resonances, scaled to
    an RMS, plus a few deterministic lines. The witness records motion
    plus white sensor noise; only the motion couples into strain.

    Attributes:
        rms: Range of the RMS of the coloured motion, counts.
        corner_frequency: Range of the continuum's corner, Hz.
        num_resonances: Range (inclusive) of resonances per channel.
        resonance_frequency: Range of resonance frequencies, Hz.
        resonance_q: Range of resonance quality factors.
        resonance_gain: Range of resonance peak ASD over the continuum.
        num_lines: Range (inclusive) of lines per channel.
        line_frequency: Range of line frequencies, Hz.
        line_amplitude: Range of line amplitudes relative to ``rms``.
        sensor_snr: Motion power over sensor-noise power below
            ``sensor_band``.
        sensor_band: Upper edge of the band for ``sensor_snr``, Hz.
    """

    rms: tuple[float, float] = (1.0, 100.0)
    corner_frequency: tuple[float, float] = (0.5, 5.0)
    num_resonances: tuple[int, int] = (1, 3)
    resonance_frequency: tuple[float, float] = (1.0, 10.0)
    resonance_q: tuple[float, float] = (3.0, 10.0)
    resonance_gain: tuple[float, float] = (3.0, 30.0)
    num_lines: tuple[int, int] = (0, 2)
    line_frequency: tuple[float, float] = (0.5, 10.0)
    line_amplitude: tuple[float, float] = (0.05, 0.3)
    sensor_snr: float = 100.0
    sensor_band: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "rms",
            "corner_frequency",
            "resonance_frequency",
            "resonance_q",
            "resonance_gain",
            "line_frequency",
        ):
            _check_range(f"MotionConfig.{name}", getattr(self, name), 1e-12)
        for name in ("num_resonances", "num_lines", "line_amplitude"):
            _check_range(f"MotionConfig.{name}", getattr(self, name))
        _check_positive("MotionConfig.sensor_snr", self.sensor_snr)
        _check_positive("MotionConfig.sensor_band", self.sensor_band)


def _decoy_motion() -> MotionConfig:
    """Broadband, accelerometer- and microphone-like decoy spectra.

    Their lines (fans, pumps) stay below 50 Hz, clear of the mains lines.
    """
    return MotionConfig(
        corner_frequency=(5.0, 40.0),
        resonance_frequency=(10.0, 400.0),
        resonance_q=(5.0, 30.0),
        line_frequency=(10.0, 50.0),
        sensor_band=500.0,
    )


@dataclass
class CandidateConfig:
    """A pool of candidate witnesses that never couple into strain.

    For witness discovery: the data file holds, after the decoys,
    auxiliary channels (counts) of which none couples, some are
    redundant witnesses of a coupled motion, and some look like the
    coupled angular channels without coupling. Their names depend only on
    the strain channel's IFO, the witnesses and these counts (see
    ``candidate_channels``); every other parameter is drawn per channel
    from the seed and the channel's name.

    Attributes:
        num_uncoupled: Candidates recording only their own motion plus
            white sensor noise: broadband PEM-like channels
            (accelerometers, microphones, magnetometers, with spectra
            drawn like the decoys' from ``SimulationConfig.decoys``) and
            low-frequency ones (suspension damping and witness sensors,
            seismometers, with spectra drawn like the angular witnesses'
            from ``SimulationConfig.angular``, the hard decoys).
        low_frequency_fraction: Share of the uncoupled candidates with
            low-frequency spectra (rounded to a whole number).
        num_correlated: Candidates that record a coupled angular
            witness's true motion times a gain, plus their own motion
            (spectra from ``SimulationConfig.angular``) and sensor noise:
            other sensors of the same loops (wavefront sensors, optical
            levers). Their sources are spread over the coupled angular
            channels; they do not couple themselves.
        correlated_snr: Range of the power of the shared motion over the
            power of the candidate's own motion and sensor noise, both
            below ``snr_band``; drawn log-uniformly per channel.
        snr_band: Upper edge of the band of ``correlated_snr``, Hz.
    """

    num_uncoupled: int = 0
    low_frequency_fraction: float = 0.5
    num_correlated: int = 0
    correlated_snr: tuple[float, float] = (1.0, 100.0)
    snr_band: float = 10.0

    def __post_init__(self) -> None:
        if self.num_uncoupled < 0 or self.num_correlated < 0:
            raise ValueError(
                f"candidates.num_uncoupled = {self.num_uncoupled} and "
                f"candidates.num_correlated = {self.num_correlated} must be "
                ">= 0"
            )
        if not 0 <= self.low_frequency_fraction <= 1:
            raise ValueError(
                "candidates.low_frequency_fraction = "
                f"{self.low_frequency_fraction} must be in [0, 1]"
            )
        _check_range("candidates.correlated_snr", self.correlated_snr, 1e-12)
        _check_positive("candidates.snr_band", self.snr_band)

    @property
    def num_low_frequency(self) -> int:
        """Uncoupled candidates with low-frequency spectra."""
        return round(self.low_frequency_fraction * self.num_uncoupled)


COUPLING_TERMS = ("linear", "bilinear", "nonlinear", "rectified")


@dataclass
class CouplingConfig:
    """How the mains and the angular motion couple into strain.

    The linear term passes the true mains voltage (fundamental and
    harmonics) through a resonant transfer function
    ``1 / (1 - (f/f_r)**2 + i f / (f_r Q))``. The bilinear term multiplies
    the mains fundamental (with a phase per channel) by a weighted sum of
    angular motions, giving sidebands at ``frequency +/- f_motion``; the
    optional nonlinear terms do the same with products of two motions and
    with rectified motions ``|a| - mean(|a|)``. Every gain drifts over
    hours with a few shared slow modes; a witness of the linear gain's
    drift can be added to the data.

    Gains are set from the targets below, on average over the drift:

    Attributes:
        band: Band in which ``skirt_ratio`` holds, Hz.
        line_ratio: Peak of the mains line in a Hann-window Welch PSD with
            1 s FFTs (the DeepClean loss resolution) over the background
            PSD at the line.
        skirt_ratio: In-band power of background + bilinear + nonlinear
            noise over that of the background alone.
        nonlinear_fraction: Share of the skirt's in-band power from the
            nonlinear (mains x motion x motion) term; 0 disables it.
        num_nonlinear_pairs: Pairs of angular channels in that term.
        rectified_fraction: Share of the skirt's in-band power from the
            rectified (mains x ``|motion|``) term, one input per coupled
            angular channel, its mean removed; 0 disables it. The bilinear
            term keeps ``1 - nonlinear_fraction - rectified_fraction``.
        num_uncoupled: Angular witnesses (drawn at random) whose motion
            does not couple into strain at all.
        weight_range: Range of each angular channel's relative gain.
        transfer_frequency: Resonance ``f_r`` of the linear transfer
            function, Hz.
        transfer_q: Quality factor ``Q`` of that resonance.
        drift_depth: RMS fractional change of each gain over time.
        drift_periods: Range of the drift modes' periods, s.
        num_drift_modes: Slow sinusoidal modes shared by all gains.
        drift_terms: Terms whose gains drift, among ``"linear"``,
            ``"bilinear"``, ``"nonlinear"`` and ``"rectified"``; the
            others keep constant gains.
        drift_witness: Add a witness channel (``DRIFT_CHANNEL``) that
            records the linear gain's fractional drift ``sum_k c_k u_k(t)``
            (dimensionless, written in counts) plus white sensor noise.
        drift_witness_noise: RMS of that white sensor noise, in the same
            fractional-gain units.
    """

    band: tuple[float, float] = (55.0, 65.0)
    line_ratio: float = 30.0
    skirt_ratio: float = 3.0
    nonlinear_fraction: float = 0.2
    num_nonlinear_pairs: int = 3
    rectified_fraction: float = 0.0
    num_uncoupled: int = 0
    weight_range: tuple[float, float] = (0.1, 1.0)
    transfer_frequency: float = 150.0
    transfer_q: float = 1.0
    drift_depth: float = 0.1
    drift_periods: tuple[float, float] = (3600.0, 21600.0)
    num_drift_modes: int = 3
    drift_terms: tuple[str, ...] = COUPLING_TERMS
    drift_witness: bool = False
    drift_witness_noise: float = 1e-3

    def __post_init__(self) -> None:
        _check_range("coupling.band", self.band, 1e-12)
        _check_range("coupling.weight_range", self.weight_range, 1e-12)
        _check_range("coupling.drift_periods", self.drift_periods, 1e-3)
        _check_positive("coupling.transfer_frequency", self.transfer_frequency)
        _check_positive("coupling.transfer_q", self.transfer_q)
        if self.line_ratio < 0 or self.skirt_ratio < 1:
            raise ValueError(
                f"coupling.line_ratio = {self.line_ratio} must be >= 0 and "
                f"coupling.skirt_ratio = {self.skirt_ratio} >= 1 (1: no "
                "skirt)"
            )
        if not (
            min(self.nonlinear_fraction, self.rectified_fraction) >= 0
            and self.nonlinear_fraction + self.rectified_fraction < 1
        ):
            raise ValueError(
                f"coupling.nonlinear_fraction = {self.nonlinear_fraction} "
                f"and rectified_fraction = {self.rectified_fraction} must "
                "be >= 0 with a sum < 1"
            )
        unknown = sorted(set(self.drift_terms) - set(COUPLING_TERMS))
        if unknown:
            raise ValueError(
                f"coupling.drift_terms {unknown} are not terms; choose "
                f"among {COUPLING_TERMS}"
            )
        if self.num_uncoupled < 0:
            raise ValueError(
                f"coupling.num_uncoupled = {self.num_uncoupled} must be >= 0"
            )
        _check_positive(
            "coupling.drift_witness_noise", self.drift_witness_noise
        )
        if not 0 <= self.drift_depth < 1 or self.num_drift_modes < 1:
            raise ValueError(
                f"coupling.drift_depth = {self.drift_depth} must be in "
                f"[0, 1) and num_drift_modes = {self.num_drift_modes} >= 1"
            )


@dataclass
class InjectionConfig:
    """Software injections added to strain (never to witnesses).

    Each kind is placed once per slot of ``*_spacing`` seconds of GPS
    time, at a random time inside the slot; a spacing of 0 disables it.
    Sine-Gaussians: ``hrss * norm * exp(-(t/tau)**2) sin(2 pi f t + phi)``
    with ``tau = Q / (sqrt(2) pi f)``. Chirps: leading-order
    (Newtonian) quadrupole inspirals for an optimally oriented detector
    (F+ = 1), sweeping from ``chirp_frequency[0]`` to
    ``chirp_frequency[1]`` with smooth tapers at both ends.

    Attributes:
        sine_gaussian_spacing: Seconds per sine-Gaussian; 0 for none.
        sine_gaussian_frequency: Range of central frequencies, Hz.
        sine_gaussian_q: Range of quality factors.
        sine_gaussian_hrss: Range of root-sum-squared strain, 1/sqrt(Hz).
        chirp_spacing: Seconds per chirp; 0 for none.
        chirp_mass: Range of chirp masses, solar masses.
        chirp_distance: Range of luminosity distances, Mpc.
        chirp_frequency: Start and end of each chirp's sweep, Hz.
    """

    sine_gaussian_spacing: float = 0.0
    sine_gaussian_frequency: tuple[float, float] = (55.0, 65.0)
    sine_gaussian_q: tuple[float, float] = (5.0, 30.0)
    sine_gaussian_hrss: tuple[float, float] = (5e-23, 5e-22)
    chirp_spacing: float = 0.0
    chirp_mass: tuple[float, float] = (1.0, 1.6)
    chirp_distance: tuple[float, float] = (20.0, 100.0)
    chirp_frequency: tuple[float, float] = (30.0, 300.0)

    def __post_init__(self) -> None:
        for name in (
            "sine_gaussian_frequency",
            "sine_gaussian_q",
            "sine_gaussian_hrss",
            "chirp_mass",
            "chirp_distance",
            "chirp_frequency",
        ):
            _check_range(f"injections.{name}", getattr(self, name), 1e-30)
        if self.sine_gaussian_spacing < 0 or self.chirp_spacing < 0:
            raise ValueError(
                "injections.sine_gaussian_spacing and chirp_spacing must be "
                ">= 0 seconds (0 disables)"
            )


@dataclass
class SimulationConfig:
    """Everything the simulated detector needs besides channels and span.

    Attributes:
        background: Background strain noise.
        mains: Mains voltage and its monitor.
        angular: Angular-control (ASC) motion and sensor noise.
        decoys: Decoy witnesses that do not couple.
        coupling: Couplings into strain.
        injections: Software injections.
        candidates: Candidate witnesses for witness discovery (none by
            default).
        block_duration: Length of the fixed GPS blocks (k * block_duration
            onwards) the simulation is computed in, s; with the seed it
            fixes every random number, so spans computed separately join
            exactly.
        filter_duration: Length of the FIR filters that colour the noise,
            s (at most ``block_duration``); sets the finest spectral
            detail, ~1 / filter_duration Hz.
    """

    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    mains: MainsConfig = field(default_factory=MainsConfig)
    angular: MotionConfig = field(default_factory=MotionConfig)
    decoys: MotionConfig = field(default_factory=_decoy_motion)
    coupling: CouplingConfig = field(default_factory=CouplingConfig)
    injections: InjectionConfig = field(default_factory=InjectionConfig)
    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    block_duration: float = 64.0
    filter_duration: float = 8.0

    def __post_init__(self) -> None:
        if not 0 < self.filter_duration <= self.block_duration:
            raise ValueError(
                f"filter_duration = {self.filter_duration} s must be > 0 "
                f"and <= block_duration = {self.block_duration} s"
            )


def load_simulation_config(
    source: str | os.PathLike | Mapping[str, Any],
) -> SimulationConfig:
    """A :class:`SimulationConfig` from a YAML file (or mapping) of its
    fields.

    The file holds any subset of the fields, nested as in the dataclass
    (``coupling: {skirt_ratio: 2.5}``); the others keep their defaults.
    jsonargparse reads and checks it, as it reads ``deepclean-data
    simulate`` options.

    Args:
        source: The YAML file, or its fields as a mapping (the
            ``config`` that a simulated file's parameters JSON records).
    """
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--config", type=SimulationConfig)
    namespace = (
        parser.parse_object({"config": dict(source)})
        if isinstance(source, Mapping)
        else parser.parse_args([f"--config={os.fspath(source)}"])
    )
    return parser.instantiate(namespace).config
