"""The simulated detector's truth: its files and how to read them.

Beside each simulated data file ``{folder}/{name}.hdf5`` the simulator
(``deepclean-data simulate``) writes, in a ``truth`` folder:

- ``truth/{name}.hdf5``: in gwpy's HDF5 layout (:mod:`deepclean_io.hdf5`),
  the strain's components named ``{strain}{suffix}`` with the suffixes of
  :data:`TRUTH_SUFFIXES`: the background, the coupled noise (the sum of
  its linear, bilinear and nonlinear terms) and the injections, all in
  strain. Raw strain = background + coupled + injections;
- ``truth/{stem}.json``: the span, seed, configuration and drawn
  parameters, with at least ``strain_channel`` and ``injections``, one
  :func:`deepclean_io.waveforms.describe` dict per injection overlapping
  the span.

:func:`read_truth` reads a span of it and rebuilds each injection's
waveform on the data's sample grid (:class:`InjectionTemplate`).
"""

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepclean_io.hdf5 import read_timeseries
from deepclean_io.waveforms import from_description

TRUTH_FOLDER = "truth"
# Suffixes of the truth channels, appended to the strain channel name.
TRUTH_SUFFIXES = {
    "background": "_BACKGROUND",
    "coupled": "_COUPLED",
    "linear": "_COUPLED_LINEAR",
    "bilinear": "_COUPLED_BILINEAR",
    "nonlinear": "_COUPLED_NONLINEAR",
    "injections": "_INJECTIONS",
}


def truth_paths(data_path: str | os.PathLike) -> tuple[Path, Path]:
    """Truth HDF5 file and parameter JSON beside a simulated data file."""
    data_path = Path(data_path)
    folder = data_path.parent / TRUTH_FOLDER
    return folder / data_path.name, folder / f"{data_path.stem}.json"


def truth_channels(strain_channel: str) -> dict[str, str]:
    """Truth channel names by component, e.g. ``"H1:..._BACKGROUND"``."""
    return {
        component: f"{strain_channel}{suffix}"
        for component, suffix in TRUTH_SUFFIXES.items()
    }


@dataclass(frozen=True)
class InjectionTemplate:
    """A known injected waveform on the data's sample grid.

    Attributes:
        kind: Waveform family, e.g. ``"sine_gaussian"`` or ``"chirp"``.
        time: Reference GPS time (peak or coalescence), s.
        start: GPS time of ``waveform[0]``, s.
        waveform: Strain, shape ``(time,)``, at the data sample rate.
        parameters: Waveform parameters, for the report.
    """

    kind: str
    time: float
    start: float
    waveform: np.ndarray
    parameters: Mapping[str, Any] = field(default_factory=dict)


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
    description: dict[str, Any], start: float, end: float, sample_rate: float
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

    Raises:
        ValueError: the description's type is unknown.
    """
    injection = from_description(description)
    total = round((end - start) * sample_rate)
    first = max(math.floor((injection.span[0] - start) * sample_rate), 0)
    last = min(math.ceil((injection.span[1] - start) * sample_rate) + 1, total)
    if last <= first:
        return None
    offsets = np.arange(last - first) / sample_rate
    first_gps = start + first / sample_rate
    parameters = dict(description)
    del parameters["type"]
    return InjectionTemplate(
        kind=injection.kind,
        time=float(injection.reference_time),
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
    truth_path, parameters_path = truth_paths(data_path)
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
