"""Analysis-ready segments: query, filter by length, split, save.

Segments are half-open GPS intervals ``(start, end)`` in seconds. The
``simulated`` source needs no account; ``dqsegdb`` asks the IGWN segment
database (credentials required) and ``gwosc`` the open-data segments.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from deepclean_io.atomic import write_text_atomic

Segment = tuple[float, float]
SegmentSource = Literal["simulated", "dqsegdb", "gwosc"]

logger = logging.getLogger(__name__)


def _active_segments(
    start: float,
    end: float,
    flag: str,
    source: SegmentSource,
    gaps: Sequence[Segment],
) -> list[Segment]:
    """Active segments of ``flag`` within [start, end) from ``source``."""
    from gwpy.segments import DataQualityFlag, SegmentList
    from gwpy.segments import Segment as GwpySegment

    span = SegmentList([GwpySegment(start, end)])
    if source == "simulated":
        active = span - SegmentList(GwpySegment(*gap) for gap in gaps)
    elif gaps:
        raise ValueError(
            "gaps only apply to the 'simulated' source; the "
            f"{source!r} source reports its own segments"
        )
    elif source == "dqsegdb":
        active = DataQualityFlag.query(flag, start, end).active & span
    elif source == "gwosc":
        active = DataQualityFlag.fetch_open_data(flag, start, end).active
        active = active & span
    else:
        raise ValueError(
            f"unknown segment source {source!r}; use 'simulated', "
            "'dqsegdb' or 'gwosc'"
        )
    return [(float(seg[0]), float(seg[1])) for seg in active.coalesce()]


def split_segment(
    segment: Segment, min_duration: float, max_duration: float
) -> list[Segment]:
    """Cut a segment into consecutive pieces of ``max_duration`` seconds.

    The last piece holds what is left; it is kept only when it lasts at
    least ``min_duration`` seconds.
    """
    start, end = segment
    num_pieces = math.ceil((end - start) / max_duration)
    pieces = [
        (start + i * max_duration, min(start + (i + 1) * max_duration, end))
        for i in range(num_pieces)
    ]
    if pieces[-1][1] - pieces[-1][0] < min_duration:
        dropped = pieces.pop()
        logger.info(
            "dropping the last %.0f s of segment [%s, %s): shorter than "
            "min_duration=%s s",
            dropped[1] - dropped[0],
            start,
            end,
            min_duration,
        )
    return pieces


def query_segments(
    start: float,
    end: float,
    flag: str = "H1:DMT-ANALYSIS_READY:1",
    min_duration: float = 0.0,
    max_duration: float | None = None,
    source: SegmentSource = "simulated",
    gaps: Sequence[Segment] = (),
) -> list[Segment]:
    """Segments in [start, end) where ``flag`` is active.

    Args:
        start: GPS start of the query, seconds.
        end: GPS end of the query, seconds.
        flag: data-quality flag, e.g. ``"H1:DMT-ANALYSIS_READY:1"``
            (DQSegDB; offline ``"H1:DCS-ANALYSIS_READY_C01:1"``) or an
            open-data flag such as ``"H1_DATA"`` (GWOSC).
        min_duration: shortest segment to keep, seconds.
        max_duration: segments longer than this are cut into pieces of
            this length (a last piece shorter than ``min_duration`` is
            dropped); ``None`` keeps them whole.
        source: ``"simulated"`` (all of [start, end) minus ``gaps``),
            ``"dqsegdb"`` (gwpy ``DataQualityFlag.query``) or ``"gwosc"``
            (gwpy ``DataQualityFlag.fetch_open_data``).
        gaps: GPS intervals (start, end) where a simulated detector is
            not analysis-ready.

    Returns:
        Sorted, non-overlapping list of (start, end) GPS pairs.

    Raises:
        ValueError: for end <= start, inconsistent durations, or when no
            segment lasts at least ``min_duration``.
    """
    if end <= start:
        raise ValueError(
            f"end must be after start: got start={start}, end={end}"
        )
    if min_duration < 0:
        raise ValueError(f"min_duration={min_duration} must not be negative")
    if max_duration is not None and (
        max_duration <= 0 or max_duration < min_duration
    ):
        raise ValueError(
            f"max_duration={max_duration} must be positive and at least "
            f"min_duration={min_duration}"
        )

    active = _active_segments(start, end, flag, source, gaps)
    kept = [seg for seg in active if seg[1] - seg[0] >= min_duration]
    if not kept:
        longest = max((seg[1] - seg[0] for seg in active), default=0.0)
        raise ValueError(
            f"no segment of {flag} ({source}) in [{start}, {end}) lasts at "
            f"least min_duration={min_duration} s (longest: {longest} s); "
            "lower min_duration or widen [start, end)"
        )
    if max_duration is None:
        return kept
    return [
        piece
        for seg in kept
        for piece in split_segment(seg, min_duration, max_duration)
    ]


def _format_gps(time: float) -> str:
    return str(int(time)) if float(time).is_integer() else repr(float(time))


def write_segments(fname: str | Path, segments: Sequence[Segment]) -> Path:
    """Write segments as text, one ``start end`` GPS pair a line.

    The file starts with a ``#`` comment header and is replaced
    atomically.
    """
    fname = Path(fname)
    lines = ["# start end (GPS seconds, half-open [start, end))"]
    lines += [f"{_format_gps(s)} {_format_gps(e)}" for s, e in segments]
    write_text_atomic(fname, "\n".join(lines) + "\n")
    return fname


def read_segments(fname: str | Path) -> list[Segment]:
    """Read a segment file written by `write_segments`.

    Blank lines and lines starting with ``#`` are skipped.

    Raises:
        ValueError: naming the line that is not two GPS times with
            end after start.
    """
    segments = []
    for number, line in enumerate(Path(fname).read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.split()
        try:
            start, end = (float(field) for field in fields)
        except ValueError:
            raise ValueError(
                f"{fname}:{number}: expected 'start end' GPS seconds, got "
                f"{line!r}"
            ) from None
        if end <= start:
            raise ValueError(
                f"{fname}:{number}: end must be after start in {line!r}"
            )
        segments.append((start, end))
    return segments
