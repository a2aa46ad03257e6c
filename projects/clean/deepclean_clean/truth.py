"""The simulator's ground truth beside a data file, for evaluation.

``deepclean_data.simulate`` writes, next to each data file, a ``truth``
folder with the background, coupled noise and injections in strain and a
JSON of every parameter, injections included. This module reads a span of
it and rebuilds each injection's waveform with the simulator's own
waveform classes, as :class:`~deepclean_clean.injections.InjectionTemplate`
on the data's sample grid.
"""

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepclean_clean.injections import InjectionTemplate
from deepclean_data.simulate import truth_paths
from deepclean_data.simulation import truth_channels
from deepclean_data.simulation.injections import Chirp, SineGaussian
from deepclean_io.hdf5 import read_timeseries

_WAVEFORMS = {"sine_gaussian": SineGaussian, "chirp": Chirp}
_REFERENCE_TIME = {"sine_gaussian": "time", "chirp": "coalescence_time"}


@dataclass(frozen=True)
class SimulationTruth:
    """Components of simulated strain over one span.

    Raw strain = ``background + coupled + injections``.

    Attributes:
        start: GPS time of the first sample, s.
        sample_rate: Hz.
        background: Detector noise without couplings, ``(time,)``.
        coupled: Noise coupled from the witnesses, ``(time,)``.
        injections: Sum of the injected signals, ``(time,)``.
        templates: Each injection overlapping the span, cut to it.
    """

    start: float
    sample_rate: float
    background: np.ndarray
    coupled: np.ndarray
    injections: np.ndarray
    templates: tuple[InjectionTemplate, ...]

    @property
    def ideal(self) -> np.ndarray:
        """Perfectly cleaned strain: background + injections, ``(time,)``."""
        return self.background + self.injections


def injection_template(
    description: dict, start: float, end: float, sample_rate: float
) -> InjectionTemplate | None:
    """Sample one described injection over a GPS span.

    Args:
        description: ``{"type": "sine_gaussian" | "chirp", **parameters}``
            as in the truth JSON.
        start: GPS time of the span's first sample, s (on the grid).
        end: GPS end of the span (exclusive), s.
        sample_rate: Hz.

    Returns:
        The template over the samples where the waveform is non-zero
        within ``[start, end)``; None when there are none.
    """
    parameters = dict(description)
    kind = parameters.pop("type")
    if kind not in _WAVEFORMS:
        raise ValueError(
            f"unknown injection type {kind!r} in the truth JSON; expected "
            f"one of {sorted(_WAVEFORMS)}"
        )
    injection = _WAVEFORMS[kind](**parameters)
    total = round((end - start) * sample_rate)
    first = max(math.floor((injection.span[0] - start) * sample_rate), 0)
    last = min(math.ceil((injection.span[1] - start) * sample_rate) + 1, total)
    if last <= first:
        return None
    offsets = np.arange(last - first) / sample_rate
    first_gps = start + first / sample_rate
    return InjectionTemplate(
        kind=kind,
        time=float(parameters[_REFERENCE_TIME[kind]]),
        start=first_gps,
        waveform=injection.strain(first_gps, offsets),
        parameters=parameters,
    )


def read_truth(
    data_path: str | os.PathLike,
    start: float | None = None,
    end: float | None = None,
) -> SimulationTruth | None:
    """Read the truth of a span of a simulated data file.

    Args:
        data_path: The simulated data file (its truth lies in the
            ``truth`` folder beside it).
        start: GPS start, s; the file start when None.
        end: GPS end (exclusive), s; the file end when None.

    Returns:
        The truth, or None when the file has no truth beside it (real
        data).
    """
    truth_path, parameters_path = truth_paths(Path(data_path))
    if not (truth_path.exists() and parameters_path.exists()):
        return None
    description = json.loads(parameters_path.read_text())
    names = truth_channels(description["strain_channel"])
    components = ("background", "coupled", "injections")
    data, t0, sample_rate = read_timeseries(
        truth_path,
        [names[component] for component in components],
        start,
        end,
        dtype=np.float64,
    )
    size = data[names["background"]].size
    span_end = t0 + size / sample_rate
    templates = [
        injection_template(injection, t0, span_end, sample_rate)
        for injection in description["injections"]
    ]
    return SimulationTruth(
        start=t0,
        sample_rate=sample_rate,
        background=data[names["background"]],
        coupled=data[names["coupled"]],
        injections=data[names["injections"]],
        templates=tuple(
            template for template in templates if template is not None
        ),
    )
