"""Replay a stretch of an HDF5 data file as LIGO-style low-latency frames.

Each second ``gps`` becomes a pair of 1 s GWF frames, as the detectors
publish them:

- ``{obs}-{ifo}_llhoft-{gps}-1.gwf``: the strain channel and the state
  vector ``{ifo}:GDS-CALIB_STATE_VECTOR`` (analysis-ready bits 0 and 1
  set), both at the strain sample rate;
- ``{obs}-{ifo}_lldetchar-{gps}-1.gwf``: the witness channels.

The witness frame is written first, so when an ``llhoft`` frame appears
its ``lldetchar`` partner is already there; both appear atomically.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from deepclean_io.gwf import (
    ANALYSIS_READY_BITS,
    LLDETCHAR_TAG,
    LLHOFT_TAG,
    frame_name,
    prune_frames,
    state_vector_channel,
    write_gwf,
)
from deepclean_io.hdf5 import file_info, read_timeseries

FRAME_DURATION = 1
"""Length of one low-latency frame, seconds."""

logger = logging.getLogger(__name__)


def wait_until(
    wall_time: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    """Sleep until ``clock()`` reaches ``wall_time`` (seconds).

    Returns at once, with a warning when more than a frame behind, if
    that time has passed.
    """
    wait = wall_time - clock()
    if wait > 0:
        sleep(wait)
    elif wait < -FRAME_DURATION:
        logger.warning("replay is %.1f s behind the wall clock", -wait)


def replay(
    data_file: Path,
    output_dir: Path,
    strain_channel: str,
    witnesses: list[str] | None = None,
    start: int | None = None,
    duration: int | None = None,
    realtime: bool = False,
    keep: int | None = None,
    progress: bool = True,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> list[tuple[Path, Path]]:
    """Write ``[start, start + duration)`` of a data file as 1 s frames.

    Args:
        data_file: HDF5 file in the gwpy layout (simulated or fetched).
        output_dir: folder of the frames (created if missing).
        strain_channel: strain channel, e.g. ``"H1:GDS-CALIB_STRAIN"``;
            its prefix gives the IFO of the frame names.
        witnesses: channels for the ``lldetchar`` frames; None takes
            every other channel of the file.
        start: GPS start, whole seconds; None is the file's start.
        duration: seconds to replay; None runs to the file's end.
        realtime: write one frame pair per wall-clock second, on whole
            seconds of ``clock``; otherwise write all at once.
        keep: delete frames that ended more than ``keep`` seconds before
            the newest one; None keeps every frame.
        progress: show a tqdm progress bar.
        clock: wall clock in seconds (``time.time``).
        sleep: waits the given seconds (``time.sleep``).

    Returns:
        ``(llhoft, lldetchar)`` paths of every frame pair written.

    Raises:
        ValueError: for channels not in the file, a span outside it, or
            times that are not whole seconds or whole samples.
    """
    info = file_info(data_file)
    if witnesses is None:
        witnesses = [name for name in info.channels if name != strain_channel]
    missing = sorted({strain_channel, *witnesses} - set(info.channels))
    if missing:
        raise ValueError(
            f"channels {missing} are not in {data_file}; it holds "
            f"{sorted(info.channels)}"
        )
    if not witnesses:
        raise ValueError(
            f"{data_file} holds no witness channel besides {strain_channel}"
        )
    ifo = strain_channel.split(":", 1)[0]
    file_end = info.end
    start = math.ceil(info.t0) if start is None else start
    end = math.floor(file_end) if duration is None else start + duration
    if not (info.t0 <= start < end <= file_end):
        raise ValueError(
            f"cannot replay [{start}, {end}) from {data_file}, which spans "
            f"[{info.t0}, {file_end}); pick start and duration inside it"
        )
    if int(start) != start or int(end) != end:
        raise ValueError(
            f"start={start} and duration={end - start} must be whole "
            "seconds: frames start on integer GPS times"
        )
    offset = (start - info.t0) * info.sample_rate
    if not (float(info.sample_rate).is_integer() and offset.is_integer()):
        raise ValueError(
            f"{data_file} (t0={info.t0}, {info.sample_rate} Hz) has no "
            "sample on every whole GPS second: 1 s frames need an integer "
            "sample rate and samples aligned to integer GPS times"
        )
    if keep is not None and keep < FRAME_DURATION:
        raise ValueError(f"keep={keep} must be at least 1 s (or None)")

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    samples_per_frame = int(info.sample_rate) * FRAME_DURATION
    state_vector = {
        state_vector_channel(ifo): np.full(
            samples_per_frame, ANALYSIS_READY_BITS, dtype=np.uint32
        )
    }
    first_tick = math.ceil(clock())
    written = []
    gps_times = range(int(start), int(end), FRAME_DURATION)
    for index, gps in enumerate(
        tqdm(gps_times, disable=not progress, unit="frame")
    ):
        data, t0, sample_rate = read_timeseries(
            data_file,
            channels=[strain_channel, *witnesses],
            start=gps,
            end=gps + FRAME_DURATION,
        )
        if realtime:
            wait_until(first_tick + index * FRAME_DURATION, clock, sleep)
        detchar = write_gwf(
            frame_name(output_dir, ifo, LLDETCHAR_TAG, gps, FRAME_DURATION),
            {name: data[name] for name in witnesses},
            t0,
            sample_rate,
        )
        hoft = write_gwf(
            frame_name(output_dir, ifo, LLHOFT_TAG, gps, FRAME_DURATION),
            {strain_channel: data[strain_channel], **state_vector},
            t0,
            sample_rate,
        )
        written.append((hoft, detchar))
        if keep is not None:
            prune_frames(
                output_dir,
                ifo,
                (LLHOFT_TAG, LLDETCHAR_TAG),
                keep,
                gps + FRAME_DURATION,
            )
    return written
