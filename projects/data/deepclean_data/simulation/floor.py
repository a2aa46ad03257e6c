"""The witness floor: the coupled strain the recorded witnesses predict.

No cleaner can remove what the witnesses do not record: each angular
witness records its motion plus white sensor noise, and the coupled
sidebands carry the motion at offsets (a few Hz) where that noise is
not negligible. :func:`witness_floor` is the minimum-mean-square-error
estimate of the coupled strain for a cleaner that knows the coupling
exactly (every gain, phase and drift, and the mains' phase): the same
terms evaluated on the posterior of each motion given its recorded
witness. Subtracting it from strain cleans as well as these witnesses
allow; what a trained method leaves beyond that is estimation error
(too little data, a model that does not fit), not missing information.

Each witness's posterior is Gaussian (motion and sensor noise are
independent Gaussian streams, channel by channel), with mean ``m(t)``
from a non-causal Wiener smoother fitted against the true motion and a
constant variance ``s**2``. The terms then take their expectations:
the bilinear term is linear in the motion, a product of two different
channels has expectation ``m_i m_j``, and a rectified input ``|a|`` has
``E|a| = s sqrt(2/pi) exp(-m**2 / 2 s**2) + m erf(m / (s sqrt(2)))``.
"""

import json
import os

import numpy as np
from scipy import signal, special

from deepclean_data.simulation.config import load_simulation_config
from deepclean_data.simulation.detector import ChannelRoles, SimulatedDetector
from deepclean_io import read_timeseries
from deepclean_io.truth import truth_paths


def true_motion(
    detector: SimulatedDetector, first_sample: int, num_samples: int
) -> np.ndarray:
    """True angular motion over a span of the GPS sample grid.

    Args:
        detector: The simulated detector.
        first_sample: Index of the span's first sample on the grid
            (GPS time times ``sample_rate``).
        num_samples: Length of the span.

    Returns:
        float32, ``(angular, num_samples)`` in ``roles.angular`` order.
    """
    motion = np.empty((len(detector.roles.angular), num_samples), np.float32)
    for index, rows, span in detector.blocks(first_sample, num_samples):
        motion[:, span] = detector.motion(index)[:, rows]
    return motion


def _smooth(
    recorded: np.ndarray, motion: np.ndarray, fit: int, taps: int
) -> tuple[np.ndarray, float]:
    """One witness's posterior mean and variance of its motion.

    Args:
        recorded: The witness, ``(time,)``.
        motion: Its true motion, ``(time,)``; only ``[:fit]`` is used.
        fit: Samples of the fit.
        taps: FIR length of the smoother (its fit's FFT length).

    Returns:
        ``(mean, variance)``: the mean over the whole span, ``(time,)``,
        and the variance of the motion around it on the fit, where the
        smoother sees a whole window (counts squared).
    """
    x, y = recorded[:fit].astype(np.float64), motion[:fit].astype(np.float64)
    _, cross = signal.csd(x, y, nperseg=taps)
    _, power = signal.welch(x, nperseg=taps)
    # Zero lag in the middle: the smoother looks both ways.
    fir = np.roll(np.fft.irfft(cross / power, n=taps), taps // 2)
    half = taps // 2
    mean = signal.oaconvolve(recorded.astype(np.float64), fir)[
        half : half + recorded.size
    ]
    inside = slice(taps, fit - taps)
    return mean, float(np.mean((y[inside] - mean[inside]) ** 2))


def _expected_magnitude(mean: np.ndarray, variance: float) -> np.ndarray:
    """``E|a|`` for ``a ~ N(mean, variance)``, elementwise."""
    if variance <= 0:
        return np.abs(mean)
    sigma = np.sqrt(variance)
    ratio = mean / sigma
    return sigma * np.sqrt(2 / np.pi) * np.exp(-(ratio**2) / 2) + (
        mean * special.erf(ratio / np.sqrt(2))
    )


def witness_floor(
    detector: SimulatedDetector,
    recorded: np.ndarray,
    start: float,
    fit_end: float,
    fftlength: float = 8.0,
) -> np.ndarray:
    """The coupled strain as well as the recorded witnesses predict it.

    Args:
        detector: The simulated detector that wrote the data.
        recorded: Its angular witnesses as written, ``(angular, time)``
            in ``detector.roles.angular`` order, from GPS ``start``.
        start: GPS time of the first sample, s (on the sample grid).
        fit_end: GPS end of the span on which each smoother is fitted
            against the true motion, s; at least four ``fftlength``
            after ``start``.
        fftlength: Length of the smoothers, s (resolution
            ``1 / fftlength`` Hz); they look ``fftlength / 2`` either
            way, so the estimate is poorer that close to either end.

    Returns:
        The estimate of the coupled strain (the ``coupled`` truth
        channel), float64, ``(time,)``; strain minus it is cleaned at
        the floor.
    """
    sample_rate = detector.sample_rate
    num_angular, num_samples = recorded.shape
    if num_angular != len(detector.roles.angular):
        raise ValueError(
            f"recorded holds {num_angular} rows; pass the "
            f"{len(detector.roles.angular)} angular witnesses "
            f"{detector.roles.angular} in that order"
        )
    taps = round(fftlength * sample_rate)
    fit = round((fit_end - start) * sample_rate)
    if not 4 * taps <= fit <= num_samples:
        raise ValueError(
            f"the fit [{start}, {fit_end}) must lie inside the "
            f"{num_samples / sample_rate} s given and last at least "
            f"{4 * fftlength} s (4 x fftlength)"
        )
    first_sample = round(start * sample_rate)
    motion = true_motion(detector, first_sample, fit)
    posterior = [
        _smooth(row, truth, fit, taps)
        for row, truth in zip(recorded, motion, strict=True)
    ]
    mean = np.stack([row_mean for row_mean, _ in posterior])
    coupling = detector.coupling
    block_mean = np.zeros((num_angular, detector.block_samples))
    block_magnitude = (
        None
        if coupling.rectified is None
        else np.zeros((len(coupling.coupled), detector.block_samples))
    )
    coupled = np.empty(num_samples)
    for index, rows, span in detector.blocks(first_sample, num_samples):
        # The terms are instantaneous: what the block arrays hold outside
        # the span does not reach the samples inside.
        block_mean[:, rows] = mean[:, span]
        if block_magnitude is not None:
            block_magnitude[:, rows] = [
                _expected_magnitude(mean[channel, span], posterior[channel][1])
                for channel in coupling.coupled
            ]
        gps = detector.block_start(index)
        terms = coupling.apply(
            detector.mains,
            detector.mains_signal.state(gps),
            block_mean,
            detector.drift.sin(gps),
            block_magnitude,
        )
        coupled[span] = sum(terms.values())[rows]
    return coupled


def simulated_file_floor(
    data_path: str | os.PathLike, fit_end: float, fftlength: float = 8.0
) -> tuple[np.ndarray, float]:
    """:func:`witness_floor` of a file that ``deepclean-data simulate``
    wrote.

    The detector is rebuilt from the parameters JSON beside the file's
    truth (seed, channels, configuration), and the angular witnesses are
    read from the file.

    Args:
        data_path: The simulated data file.
        fit_end: GPS end of the smoothers' fit, which starts at the
            file's start, s.
        fftlength: Length of the smoothers, s.

    Returns:
        ``(coupled, t0)``: the estimate of the coupled strain over the
        whole file, ``(time,)``, and the GPS time of its first sample.
    """
    _, parameters_path = truth_paths(data_path)
    if not parameters_path.exists():
        raise FileNotFoundError(
            f"{data_path} has no simulation parameters at "
            f"{parameters_path}: the witness floor needs a file that "
            "deepclean-data simulate wrote, with its truth beside it"
        )
    description = json.loads(parameters_path.read_text())
    config = load_simulation_config(description["config"])
    roles = ChannelRoles.assign(
        description["strain_channel"],
        description["witnesses"],
        description["mains_channel"],
        config.coupling.drift_witness,
        config.candidates,
    )
    recorded, t0, sample_rate = read_timeseries(data_path, list(roles.angular))
    detector = SimulatedDetector(
        roles, sample_rate, description["seed"], config
    )
    coupled = witness_floor(
        detector,
        np.stack([recorded[name] for name in roles.angular]),
        t0,
        fit_end,
        fftlength,
    )
    return coupled, t0
