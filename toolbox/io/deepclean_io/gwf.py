"""GWF frame files: naming, atomic writing and reading through lalframe.

Frames go through gwpy's GWF interface with lalsuite's lalframe backend
(the one that ships on PyPI). File names follow the LIGO convention
``{obs}-{ifo}_{tag}-{gps}-{duration}.gwf``, e.g.
``H-H1_llhoft-1262304000-1.gwf``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

GWF_BACKEND = "lalframe"

LLHOFT_TAG = "llhoft"
"""Frame type of low-latency strain frames (strain + state vector)."""
LLDETCHAR_TAG = "lldetchar"
"""Frame type of low-latency auxiliary (witness) frames."""
ANALYSIS_READY_BITS = 0b11
"""State-vector bits 0 and 1: data calibrated and analysis-ready."""

_FRAME_NAME = re.compile(
    r"^(?P<obs>[A-Z])-(?P<ifo>[A-Z][0-9])_(?P<tag>\w+)"
    r"-(?P<gps>\d+)-(?P<duration>\d+)\.gwf$"
)


class FrameName(NamedTuple):
    """The parts of a LIGO frame file name.

    ``gps`` is the GPS start of the frame and ``duration`` its length,
    both in whole seconds.
    """

    obs: str
    ifo: str
    tag: str
    gps: int
    duration: int


def _whole_seconds(value: float, name: str) -> int:
    if float(value) != int(value):
        raise ValueError(
            f"{name}={value} is not a whole number of seconds; frame "
            "names carry integer GPS times, so pass an integer"
        )
    return int(value)


def frame_name(
    directory: str | Path, ifo: str, tag: str, gps: float, duration: float
) -> Path:
    """Path of the frame of ``ifo`` with type ``tag`` starting at ``gps``.

    Args:
        directory: folder holding the frames.
        ifo: interferometer prefix, e.g. ``"H1"``; the observatory
            letter of the name is its first character.
        tag: frame type without the IFO, e.g. ``"llhoft"``.
        gps: GPS start of the frame in seconds (whole seconds).
        duration: frame length in seconds (whole seconds).

    Returns:
        ``{directory}/{obs}-{ifo}_{tag}-{gps}-{duration}.gwf``.
    """
    if not re.fullmatch(r"[A-Z][0-9]", ifo):
        raise ValueError(
            f"ifo={ifo!r} is not an interferometer prefix; use a capital "
            "letter and a digit such as 'H1', 'L1', 'V1' or 'K1'"
        )
    gps = _whole_seconds(gps, "gps")
    duration = _whole_seconds(duration, "duration")
    return Path(directory) / f"{ifo[0]}-{ifo}_{tag}-{gps}-{duration}.gwf"


def state_vector_channel(ifo: str) -> str:
    """Name of the calibration state vector of ``ifo`` (e.g. ``"H1"``).

    Data are analysis-ready where ``(value & ANALYSIS_READY_BITS) ==
    ANALYSIS_READY_BITS``.
    """
    return f"{ifo}:GDS-CALIB_STATE_VECTOR"


def parse_frame_name(path: str | Path) -> FrameName:
    """Split a frame file name made by `frame_name` into its parts.

    Raises:
        ValueError: if the name does not follow the LIGO convention.
    """
    match = _FRAME_NAME.match(Path(path).name)
    if match is None:
        raise ValueError(
            f"{Path(path).name!r} is not a frame name of the form "
            "'{obs}-{ifo}_{tag}-{gps}-{duration}.gwf'"
        )
    return FrameName(
        obs=match["obs"],
        ifo=match["ifo"],
        tag=match["tag"],
        gps=int(match["gps"]),
        duration=int(match["duration"]),
    )


def write_gwf(
    fname: str | Path,
    data: Mapping[str, np.ndarray],
    t0: float,
    sample_rate: float,
    units: Mapping[str, str] | None = None,
) -> Path:
    """Write channels sharing one time axis to a GWF frame, atomically.

    The frame is written under a hidden temporary name in the same folder
    and renamed to ``fname`` only once complete, so a reader never sees a
    partial file under the final name and a failed write leaves none.

    Args:
        fname: output path, normally from `frame_name`.
        data: channel name (``"H1:GDS-CALIB_STRAIN"``) -> samples, each a
            1-D array of shape (time,) of equal length; the dtype is kept
            (float64, float32, int32, uint32 ...).
        t0: GPS time of the first sample, seconds.
        sample_rate: samples per second of every channel, Hz.
        units: optional channel name -> unit string (e.g. ``"strain"``).

    Returns:
        The path of the written frame.
    """
    from gwpy.timeseries import TimeSeries, TimeSeriesDict

    if not data:
        raise ValueError("no channels given: pass at least one array")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate={sample_rate} must be positive (Hz)")
    units = dict(units or {})
    unknown_units = set(units) - set(data)
    if unknown_units:
        raise ValueError(
            f"units given for channels not in data: {sorted(unknown_units)}"
        )
    lengths = {name: np.shape(values) for name, values in data.items()}
    first_shape = next(iter(lengths.values()))
    if len(first_shape) != 1 or any(
        shape != first_shape for shape in lengths.values()
    ):
        raise ValueError(
            "every channel must be a 1-D array of the same length; "
            f"got shapes {lengths}"
        )

    series = TimeSeriesDict()
    for name, values in data.items():
        series[name] = TimeSeries(
            np.asarray(values),
            t0=t0,
            sample_rate=sample_rate,
            channel=name,
            name=name,
            unit=units.get(name),
        )

    fname = Path(fname)
    partial = fname.with_name(f".{fname.name}.{os.getpid()}.partial")
    try:
        series.write(partial, format="gwf", backend=GWF_BACKEND)
        os.replace(partial, fname)
    finally:
        partial.unlink(missing_ok=True)
    return fname


def read_gwf(
    fname: str | Path, channels: Sequence[str]
) -> tuple[dict[str, np.ndarray], float, float]:
    """Read channels sharing one sample rate from a GWF frame.

    Args:
        fname: frame file path.
        channels: names of the channels to read.

    Returns:
        ``(data, t0, sample_rate)``: channel name -> samples of shape
        (time,), GPS time of the first sample (s) and sample rate (Hz).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if a channel is not in the frame, or the channels
            have different sample rates or start times.
    """
    from gwpy.io.gwf import iter_channel_names
    from gwpy.timeseries import TimeSeriesDict

    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"frame file {fname} does not exist")
    if not channels:
        raise ValueError("no channels given: name at least one to read")
    available = set(iter_channel_names(fname))
    missing = [name for name in channels if name not in available]
    if missing:
        raise ValueError(
            f"channels {missing} are not in frame {fname}; it holds "
            f"{sorted(available)}"
        )

    series = TimeSeriesDict.read(
        fname, list(channels), format="gwf", backend=GWF_BACKEND
    )
    timing = {
        name: (float(ts.t0.value), float(ts.sample_rate.value))
        for name, ts in series.items()
    }
    if len(set(timing.values())) != 1:
        raise ValueError(
            f"channels in {fname} differ in (t0, sample_rate): {timing}; "
            "read them in separate calls"
        )
    t0, sample_rate = next(iter(timing.values()))
    return (
        {name: series[name].value for name in channels},
        t0,
        sample_rate,
    )
