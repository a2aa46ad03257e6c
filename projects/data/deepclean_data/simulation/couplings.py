"""Couplings of the mains and the angular motion into strain.

Four terms, each a function of the witnesses' true signals at the same
instant (so a network seeing ~1 s of witness data can learn them):

- linear: the mains voltage through a frequency-dependent transfer
  function, evaluated at each harmonic's instantaneous frequency (the
  mains is a slowly wandering line, so this is the filter's response);
- bilinear: ``sum_i g_i(t) a_i(t) e(t) cos(2 pi phi(t) + theta_i)``,
  angular motions ``a_i`` mixed with the mains fundamental, giving
  sidebands at ``f_mains +/- f_motion``;
- nonlinear: the same with products ``a_i a_j`` of pairs of motions;
- rectified (optional): the same with ``|a_i| - mean(|a_i|)``.

Every gain of the terms in ``drift_terms`` (all by default) drifts as
``g(t) = g (1 + sum_k c_k u_k(t))`` with slow modes ``u_k`` (periods of
hours) shared by all terms. Angular channels may be
left uncoupled: their motion is recorded but never reaches strain.
"""

from dataclasses import dataclass

import numpy as np

from deepclean_data.simulation.blocks import parameter_rng
from deepclean_data.simulation.config import CouplingConfig
from deepclean_data.simulation.mains import MainsModel, MainsState, SlowModes

# Equivalent noise bandwidth of a Hann window over 1 s FFTs, Hz.
_HANN_ENBW_1S = 1.5


def resonant_response(
    frequencies: np.ndarray, resonance: float, q: float
) -> np.ndarray:
    """Complex response ``1 / (1 - (f/f_r)**2 + i f / (f_r q))``."""
    ratio = frequencies / resonance
    return 1 / (1 - ratio**2 + 1j * ratio / q)


def _draw_drift(
    rng: np.random.Generator, config: CouplingConfig, term: str
) -> np.ndarray:
    """Drift coefficients ``c_k`` of one gain, ``(modes,)``.

    The RMS of ``sum_k c_k u_k`` is ``config.drift_depth``, or 0 for a
    term not in ``config.drift_terms`` (drawn all the same, so the other
    draws do not change).

    Args:
        rng: The gain's generator.
        config: Coupling parameters.
        term: ``"linear"``, ``"bilinear"``, ``"nonlinear"`` or
            ``"rectified"``.
    """
    scale = config.drift_depth * np.sqrt(2 / config.num_drift_modes)
    drift = rng.normal(0.0, scale, config.num_drift_modes)
    return drift if term in config.drift_terms else np.zeros_like(drift)


@dataclass(frozen=True)
class LinearCoupling:
    """Mains voltage into strain through a resonant transfer function.

    Attributes:
        amplitude: Strain amplitude of the fundamental line when the
            drift and the mains modulation are zero.
        transfer_frequency: Resonance of the transfer function, Hz.
        transfer_q: Its quality factor.
        drift: Drift coefficients, shape ``(modes,)``.
    """

    amplitude: float
    transfer_frequency: float
    transfer_q: float
    drift: np.ndarray

    def fractional_drift(self, drift_modes: np.ndarray) -> np.ndarray:
        """``sum_k c_k u_k(t)``, the gain's relative change, ``(time,)``.

        Args:
            drift_modes: ``u_k(t)``, shape ``(modes, time)``.
        """
        return self.drift @ drift_modes

    def apply(
        self,
        mains: MainsModel,
        state: MainsState,
        drift_modes: np.ndarray,
    ) -> np.ndarray:
        """Strain from the mains, shape ``(time,)``.

        Args:
            mains: The mains model.
            state: Its phase, frequency and envelope over the block.
            drift_modes: ``u_k(t)``, shape ``(modes, time)``.
        """
        numbers = mains.harmonic_numbers[:, None]
        reference = abs(
            resonant_response(
                np.array(mains.frequency),
                self.transfer_frequency,
                self.transfer_q,
            )
        )
        response = (
            resonant_response(
                numbers * state.frequency,
                self.transfer_frequency,
                self.transfer_q,
            )
            / reference
        )
        # Re(response * exp(i (2 pi h phi + psi_h))) for each harmonic.
        rotated = response * np.exp(1j * mains.harmonic_phases)[:, None]
        waves = rotated.real * state.cos - rotated.imag * state.sin
        gain = self.amplitude * (1 + self.fractional_drift(drift_modes))
        return gain * state.envelope * (mains.harmonic_amplitudes @ waves)


@dataclass(frozen=True)
class ModulatedCoupling:
    """Inputs mixed with the mains fundamental, each with gain and phase.

    Output ``sum_i g_i(t) x_i(t) e(t) cos(2 pi phi(t) + theta_i)`` with
    ``g_i(t) = gains_i (1 + sum_k drift_ik u_k(t))``.

    Attributes:
        gains: ``(inputs,)``, strain per input unit.
        phases: ``theta_i``, rad, ``(inputs,)``.
        drift: ``(inputs, modes)``.
    """

    gains: np.ndarray
    phases: np.ndarray
    drift: np.ndarray

    def apply(
        self,
        inputs: np.ndarray,
        state: MainsState,
        drift_modes: np.ndarray,
    ) -> np.ndarray:
        """Strain from the inputs ``x_i``, shape ``(time,)``.

        Args:
            inputs: ``(inputs, time)``.
            state: The mains over the block.
            drift_modes: ``u_k(t)``, shape ``(modes, time)``.
        """
        in_phase = self.gains * np.cos(self.phases)
        quadrature = self.gains * np.sin(self.phases)
        # Rows: static in-phase sum, one per drift mode, then quadrature.
        weights = np.concatenate(
            [
                in_phase[None],
                in_phase * self.drift.T,
                quadrature[None],
                quadrature * self.drift.T,
            ]
        )
        sums = weights @ inputs.astype(np.float64, copy=False)
        num_modes = len(drift_modes)
        in_phase_sum = sums[0] + np.einsum(
            "kt,kt->t", drift_modes, sums[1 : num_modes + 1]
        )
        quadrature_sum = sums[num_modes + 1] + np.einsum(
            "kt,kt->t", drift_modes, sums[num_modes + 2 :]
        )
        return state.envelope * (
            in_phase_sum * state.cos[0] - quadrature_sum * state.sin[0]
        )


def _band_power(
    grid: np.ndarray, psd: np.ndarray, low: float, high: float
) -> np.ndarray:
    """Integral of a two-sided PSD over ``low <= u <= high``."""
    resolution = grid[1] - grid[0]
    inside = (grid >= low) & (grid <= high)
    return psd[..., inside].sum(axis=-1) * resolution


def _product_psds(
    grid: np.ndarray, first: np.ndarray, second: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided PSDs of products of independent Gaussian series.

    Args:
        grid: Offsets of the input PSDs, Hz, ``(bins,)``, evenly spaced.
        first: Two-sided PSDs of the first factors, ``(inputs, bins)``.
        second: Those of the second factors, ``(inputs, bins)``.

    Returns:
        ``(grid, psd)``: offsets, Hz, ``(2 * bins - 1,)``, and the PSD of
        each product (the convolution of its factors' PSDs),
        ``(inputs, 2 * bins - 1)``.
    """
    resolution = grid[1] - grid[0]
    psd = np.stack(
        [
            np.convolve(a, b) * resolution
            for a, b in zip(first, second, strict=True)
        ]
    )
    return 2 * grid[0] + resolution * np.arange(psd.shape[-1]), psd


@dataclass(frozen=True)
class CouplingModel:
    """All couplings into strain, with their shared drift.

    Attributes:
        linear: The mains line.
        bilinear: Mains x angular motion, one input per coupled channel.
        nonlinear: Mains x products of two motions, one input per pair;
            None when disabled.
        rectified: Mains x ``|motion| - rectified_means``, one input per
            coupled channel; None when disabled.
        coupled: Indices of the coupled angular channels, ``(coupled,)``.
        pairs: Indices of the angular channels in each product,
            ``(pairs, 2)``.
        rectified_means: Mean of each coupled channel's ``|motion|``
            (Gaussian motion: its RMS times ``sqrt(2 / pi)``), counts,
            ``(coupled,)``.
        drift_modes: The slow modes ``u_k`` (unit amplitude).
    """

    linear: LinearCoupling
    bilinear: ModulatedCoupling
    nonlinear: ModulatedCoupling | None
    rectified: ModulatedCoupling | None
    coupled: np.ndarray
    pairs: np.ndarray
    rectified_means: np.ndarray
    drift_modes: SlowModes

    @classmethod
    def draw(
        cls,
        config: CouplingConfig,
        seed: int,
        mains: MainsModel,
        channels: list[str],
        motion_grid: np.ndarray,
        motion_psd: np.ndarray,
        background_band_power: float,
        background_psd_at_line: float,
    ) -> "CouplingModel":
        """Draw gains, phases and drifts, scaled to the configured ratios.

        Args:
            config: Coupling parameters.
            seed: Simulation seed.
            mains: The mains model (for its modulation).
            channels: Angular channel names, ``(channels,)``.
            motion_grid: Offsets ``u`` of ``motion_psd``, Hz, ``(bins,)``.
            motion_psd: Two-sided motion PSDs, ``(channels, bins)``.
            background_band_power: Background strain power in
                ``config.band``, strain**2.
            background_psd_at_line: One-sided background PSD at the mains
                frequency, strain**2/Hz.
        """
        envelope_square = 1 + mains.modulation.mean_square
        low = config.band[0] - mains.frequency
        high = config.band[1] - mains.frequency
        skirt_power = (config.skirt_ratio - 1) * background_band_power
        drift_rng = parameter_rng(seed, "coupling", "drift")
        drift_modes = SlowModes(
            periods=np.exp(
                drift_rng.uniform(
                    *np.log(config.drift_periods), config.num_drift_modes
                )
            ),
            amplitudes=np.ones(config.num_drift_modes),
            phases=drift_rng.uniform(0, 2 * np.pi, config.num_drift_modes),
        )

        linear_drift = _draw_drift(drift_rng, config, "linear")
        # A line of amplitude A peaks at A**2 / 2 / ENBW in a Welch PSD.
        amplitude_square = (
            2 * _HANN_ENBW_1S * config.line_ratio * background_psd_at_line
        )
        linear = LinearCoupling(
            amplitude=float(
                np.sqrt(
                    amplitude_square
                    / envelope_square
                    / (1 + np.sum(linear_drift**2) / 2)
                )
            ),
            transfer_frequency=config.transfer_frequency,
            transfer_q=config.transfer_q,
            drift=linear_drift,
        )

        coupled = _draw_coupled(config, seed, channels)
        names = [channels[i] for i in coupled]
        psd = motion_psd[coupled]
        bilinear_fraction = (
            1 - config.nonlinear_fraction - config.rectified_fraction
        )
        bilinear = _modulated(
            config,
            "bilinear",
            [parameter_rng(seed, "coupling", name) for name in names],
            _band_power(motion_grid, psd, low, high),
            bilinear_fraction * skirt_power / envelope_square,
        )

        pairs = np.zeros((0, 2), dtype=int)
        nonlinear = None
        if config.nonlinear_fraction > 0:
            local = _draw_pairs(config, seed, names)
            pairs = coupled[local]
            nonlinear = _modulated(
                config,
                "nonlinear",
                [
                    parameter_rng(seed, "coupling", names[i], names[j])
                    for i, j in local
                ],
                _band_power(
                    *_product_psds(
                        motion_grid, psd[local[:, 0]], psd[local[:, 1]]
                    ),
                    low,
                    high,
                ),
                config.nonlinear_fraction * skirt_power / envelope_square,
            )

        resolution = motion_grid[1] - motion_grid[0]
        variance = psd.sum(axis=-1) * resolution
        rectified_means = np.sqrt(2 / np.pi * variance)
        rectified = None
        if config.rectified_fraction > 0:
            # |a| - mean(|a|) of Gaussian a: its autocovariance is
            # R(t)**2 / (pi var) plus higher powers of R holding 12 % of
            # its variance, left out here.
            grid, squared_psd = _product_psds(motion_grid, psd, psd)
            rectified = _modulated(
                config,
                "rectified",
                [
                    parameter_rng(seed, "coupling", "rectified", name)
                    for name in names
                ],
                _band_power(grid, squared_psd, low, high) / (np.pi * variance),
                config.rectified_fraction * skirt_power / envelope_square,
            )
        return cls(
            linear,
            bilinear,
            nonlinear,
            rectified,
            coupled,
            pairs,
            rectified_means,
            drift_modes,
        )

    def apply(
        self,
        mains: MainsModel,
        state: MainsState,
        motion: np.ndarray,
        drift_modes: np.ndarray,
        magnitude: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Coupled strain of each term over one block.

        Every term is a function of the inputs at the same instant, so
        any span of a block can be computed on its own.

        Args:
            mains: The mains model.
            state: The mains over the block.
            motion: True angular motions, ``(channels, time)``.
            drift_modes: ``u_k(t)`` over the block (from
                ``self.drift_modes.sinusoids(offsets).sin(gps)``),
                ``(modes, time)``.
            magnitude: ``|a_i|`` of the coupled channels for the
                rectified term, ``(coupled, time)``; by default that of
                ``motion`` (an estimate of the motion passes its own
                expected magnitude here).

        Returns:
            ``{"linear", "bilinear", "nonlinear"}`` strain, each
            ``(time,)``; nonlinear holds the products of pairs and the
            rectified term (zeros when both are disabled).
        """
        coupled = motion[self.coupled]
        terms = {
            "linear": self.linear.apply(mains, state, drift_modes),
            "bilinear": self.bilinear.apply(coupled, state, drift_modes),
            "nonlinear": np.zeros(motion.shape[-1]),
        }
        if self.nonlinear is not None:
            products = (
                motion[self.pairs[:, 0]].astype(np.float64)
                * motion[self.pairs[:, 1]]
            )
            terms["nonlinear"] = self.nonlinear.apply(
                products, state, drift_modes
            )
        if self.rectified is not None:
            rectified = (
                np.abs(coupled.astype(np.float64))
                if magnitude is None
                else magnitude.astype(np.float64)
            )
            rectified -= self.rectified_means[:, None]
            terms["nonlinear"] += self.rectified.apply(
                rectified, state, drift_modes
            )
        return terms


def _draw_coupled(
    config: CouplingConfig, seed: int, channels: list[str]
) -> np.ndarray:
    """Indices of the angular channels that couple, ascending."""
    if config.num_uncoupled >= len(channels):
        raise ValueError(
            f"coupling.num_uncoupled = {config.num_uncoupled} leaves none "
            f"of the {len(channels)} angular witnesses coupled"
        )
    indices = np.arange(len(channels))
    if config.num_uncoupled == 0:
        return indices
    rng = parameter_rng(seed, "coupling", "uncoupled")
    uncoupled = rng.choice(indices, size=config.num_uncoupled, replace=False)
    return np.setdiff1d(indices, uncoupled)


def _draw_pairs(
    config: CouplingConfig, seed: int, channels: list[str]
) -> np.ndarray:
    """Distinct pairs of angular channels for the nonlinear term."""
    candidates = np.array(
        [
            (i, j)
            for i in range(len(channels))
            for j in range(i + 1, len(channels))
        ],
        dtype=int,
    ).reshape(-1, 2)
    if len(candidates) == 0:
        raise ValueError(
            "the nonlinear coupling needs at least two angular witnesses; "
            "add witnesses or set coupling.nonlinear_fraction to 0"
        )
    count = min(config.num_nonlinear_pairs, len(candidates))
    rng = parameter_rng(seed, "coupling", "nonlinear")
    chosen = rng.choice(len(candidates), size=count, replace=False)
    return candidates[np.sort(chosen)]


def _modulated(
    config: CouplingConfig,
    term: str,
    rngs: list[np.random.Generator],
    input_band_power: np.ndarray,
    target_power: float,
) -> ModulatedCoupling:
    """Gains giving ``target_power`` in band, shared by relative weights.

    Each input's share of the in-band power is proportional to its
    squared weight (log-uniform in ``config.weight_range``).

    Args:
        config: Coupling parameters.
        term: The term's name, for its drift (see :func:`_draw_drift`).
        rngs: One generator per input.
        input_band_power: Two-sided power of each input within the band
            offsets, ``(inputs,)``.
        target_power: In-band strain power wanted, divided by the mean
            square of the mains envelope.
    """
    draws = [
        (
            np.exp(rng.uniform(*np.log(config.weight_range))),
            rng.uniform(0, 2 * np.pi),
            _draw_drift(rng, config, term),
        )
        for rng in rngs
    ]
    weights = np.array([draw[0] for draw in draws])
    phases = np.array([draw[1] for draw in draws])
    drift = np.stack([draw[2] for draw in draws])
    drift_square = 1 + np.sum(drift**2, axis=1) / 2
    # A term g x(t) cos(2 pi phi + theta) carries g**2 / 2 times the power
    # of x within the band offsets.
    scale = np.sqrt(2 * target_power / np.sum(weights**2 * drift_square))
    gains = scale * weights / np.sqrt(input_band_power)
    return ModulatedCoupling(gains=gains, phases=phases, drift=drift)
