"""Offline cleaning of archived data into GWF frames.

Data files (gwpy's HDF5 layout) are cleaned with an exported model by the
same :class:`~deepclean_engine.CleaningEngine` that validates models during
training and that the online cleaner runs: 1 s frames (the model's
``frame_length``), stitched predictions, band-passed with padding,
subtracted from the raw strain. Back-to-back files (Fetch cuts a long
segment into files of at most ``max_duration`` s) are joined into one
segment, so no context is lost at their boundaries; overlapping files are
refused.

Output files ``{obs}-{ifo}_DEEPCLEAN-{gps}-{duration}.gwf`` tile a GPS
grid of ``file_length`` seconds and hold the cleaned strain as
``{strain}{suffix}`` (optionally the predicted noise and the raw strain).
Frames whose witnesses, prediction or raw strain are not finite hold the
raw strain and are flagged with the reason.

Each output frame has a record ``{frame}.json`` beside it: the model that
wrote it (path, sha256 of ``model.pt``, training span, version), the
settings (channel suffix, written channels, cleaning config, file length)
and its flagged frames. The record is written before its frame, both
atomically, so an existing frame is complete and described by its record.

Resuming: a re-run keeps every existing frame whose record names the same
model and settings (the summary lists it under ``reused_files``, with its
flagged frames) and cleans the missing ones, so an interrupted run resumes
where it stopped. A frame written by another model or settings, or without
a record, is refused with what differs, unless ``overwrite`` is set, which
re-cleans it; so are frames that overlap this run's under other names (an
earlier run over another span or with other window edges), which
``overwrite`` deletes when they lie inside ``[start, end)``. Every
existing frame is checked before any is written. Temporaries left in the
output folder by killed writers are removed first. The JSON summary is
written last: its existence means the run finished.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from deepclean_engine import CleaningEngine
    from deepclean_io.hdf5 import ContiguousFiles

logger = logging.getLogger("deepclean_clean")

OUTPUT_TAG = "DEEPCLEAN"
RECORD_SUFFIX = ".json"
"""An output frame's record is ``{frame name}{RECORD_SUFFIX}``."""
STRAIN_NOT_FINITE = "strain not finite"
WITNESSES_NOT_FINITE = "witnesses not finite"
PREDICTION_NOT_FINITE = "prediction not finite"
_RECLEAN = "choose another --output_dir or pass --overwrite true to re-clean"
_Tile = tuple["ContiguousFiles", tuple[float, float], Path]
"""An output frame: its segment, GPS ``[start, end)`` in s and its path."""
_Chunk = tuple[dict[str, np.ndarray], float, np.ndarray, np.ndarray]
"""A chunk as :func:`_read_chunk` returns it."""


@dataclass
class CleanSummary:
    """What a cleaning run did, as written to its JSON summary.

    Attributes:
        model: path of the exported model.
        model_sha256: sha256 of the model file's content.
        start: requested GPS start, s.
        end: requested GPS end, s.
        files: output frame files written by this run, in GPS order.
        reused_files: output frame files kept from an earlier run with
            the same model and settings, in GPS order.
        cleaned: ``[start, end)`` GPS spans whose cleaned strain is in
            ``files`` and ``reused_files``.
        not_cleaned: ``[start, end, reason]`` spans of the request that
            were not: gaps between data files, and the edges of each
            segment where the engine lacks the context to clean.
        flagged_frames: ``[gps, reason]`` of every flagged frame in
            ``files`` and ``reused_files``: GPS start of a frame that holds
            the raw strain because its strain, witnesses or prediction
            were not finite.
        seconds_cleaned: duration cleaned by this run, s (reused files
            excluded).
        wall_seconds: wall-clock time of this run, s.
    """

    model: str
    model_sha256: str
    start: float
    end: float
    files: list[str] = field(default_factory=list)
    reused_files: list[str] = field(default_factory=list)
    cleaned: list[list[float]] = field(default_factory=list)
    not_cleaned: list[list] = field(default_factory=list)
    flagged_frames: list[list] = field(default_factory=list)
    seconds_cleaned: float = 0.0
    wall_seconds: float = 0.0

    def describe(self) -> str:
        """One line for people: what was cleaned, how fast, what not."""
        speed = self.seconds_cleaned / max(self.wall_seconds, 1e-9)
        text = (
            f"cleaned {self.seconds_cleaned:g} s in {self.wall_seconds:.1f} "
            f"s ({speed:.0f}x real time) into {len(self.files)} files"
        )
        if self.reused_files:
            text += (
                f"; kept {len(self.reused_files)} files of an earlier run "
                "with the same model and settings"
            )
        if self.not_cleaned:
            text += f"; {len(self.not_cleaned)} spans not cleaned"
        if self.flagged_frames:
            text += f"; {len(self.flagged_frames)} frames flagged"
        return text


def gps_text(gps: float) -> str:
    """GPS time without exponent or trailing zeros: ``1262304000.5``."""
    return np.format_float_positional(gps, trim="-")


def _cleanable_span(
    engine: CleaningEngine, file_start: float, file_end: float
) -> tuple[float, float]:
    """First and last GPS frame edges ``engine`` can clean in a segment."""
    frame = engine.config.frame_length
    before, after = engine.required_span(0.0, frame)
    first = math.ceil((file_start - before) / frame - 1e-9) * frame
    while engine.required_span(first, first + frame)[0] < file_start:
        first += frame
    last = math.floor((file_end - after) / frame + 1e-9) * frame + frame
    while engine.required_span(last - frame, last)[1] > file_end:
        last -= frame
    return first, last


def _output_tiles(
    start: float, end: float, file_length: float
) -> list[tuple[float, float]]:
    """``[a, b)`` pieces of ``[start, end)`` on a ``file_length`` grid."""
    tiles = []
    edge = math.floor(start / file_length) * file_length
    while edge < end:
        tiles.append((max(edge, start), min(edge + file_length, end)))
        edge += file_length
    return tiles


def _contiguous_groups(tiles: list[_Tile], length: float) -> list[list[_Tile]]:
    """Runs of back-to-back tiles of one segment, each at most ``length``
    s long (or one tile), so that short output files are cleaned in long
    passes and a long file is written while the next is cleaned."""
    groups: list[list[_Tile]] = []
    for tile in tiles:
        segment, (start, end), _ = tile
        if groups:
            first_segment, (first_start, _), _ = groups[-1][0]
            if (
                first_segment is segment
                and groups[-1][-1][1][1] == start
                and end - first_start <= length
            ):
                groups[-1].append(tile)
                continue
        groups.append([tile])
    return groups


def _differences(old: Any, new: Any, key: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs between two JSON
    values (nested dictionaries compared key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            difference
            for name in sorted(set(old) | set(new))
            for difference in _differences(
                old.get(name), new.get(name), f"{key}.{name}".lstrip(".")
            )
        ]
    if old == new:
        return []
    return [f"{key}: {json.dumps(old)} -> {json.dumps(new)}"]


def record_path(frame: Path) -> Path:
    """The record written beside an output frame."""
    return frame.with_name(frame.name + RECORD_SUFFIX)


def _reused_flags(
    frame: Path, provenance: dict[str, Any], overwrite: bool
) -> list[list] | None:
    """Flagged frames of an existing output frame to keep, or None when
    the frame must be (re)written.

    Raises:
        ValueError: the frame exists but its record is missing, unreadable
            or names another model or settings, and ``overwrite`` is off.
    """
    if overwrite or not frame.exists():
        return None
    record = record_path(frame)
    try:
        content = json.loads(record.read_text())
        written_by = {key: content[key] for key in provenance}
    except FileNotFoundError:
        raise ValueError(
            f"{frame} exists but {record.name}, the record of the model and "
            "settings that wrote it, does not (an older deepclean-clean or "
            f"another program wrote it); {_RECLEAN} it"
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{record} is not a readable record of {frame.name} ({error}); "
            f"{_RECLEAN} it"
        ) from None
    differences = _differences(written_by, provenance)
    if differences:
        raise ValueError(
            f"{frame} was written with another model or settings "
            f"({'; '.join(differences)}); {_RECLEAN} it"
        )
    return content["flagged_frames"]


def _overlapped_frames(
    output_dir: Path, ifo: str, tiles: list[_Tile]
) -> list[tuple[Path, int, int]]:
    """``(path, start, end)`` of existing output frames that overlap this
    run's frames under another name: an earlier run cleaned another span,
    with other window edges or with another ``file_length``."""
    from deepclean_io.gwf import parse_frame_name

    names = {name for _, _, name in tiles}
    spans = sorted(span for _, span, _ in tiles)
    starts = [start for start, _ in spans]
    found = []
    for path in sorted(output_dir.glob(f"*-{ifo}_{OUTPUT_TAG}-*.gwf")):
        try:
            parsed = parse_frame_name(path)
        except ValueError:
            continue
        start, end = parsed.gps, parsed.gps + parsed.duration
        # tiles are sorted and disjoint: only the one starting at or
        # before ``start`` and the next can overlap
        index = bisect.bisect_right(starts, start) - 1
        if path not in names and (
            (index >= 0 and spans[index][1] > start)
            or (index + 1 < len(spans) and spans[index + 1][0] < end)
        ):
            found.append((path, start, end))
    return found


def data_segments(
    data_files: list[Path],
    channels: list[str],
    user: str,
    subtracted: str | None,
    fix: str,
    sample_rate: float | None = None,
) -> list[ContiguousFiles]:
    """The data files as runs of back-to-back files, in GPS order.

    Args:
        data_files: HDF5 files in gwpy's layout.
        channels: Channels every file must hold.
        user: What reads the files, for messages (e.g. "the model").
        subtracted: What the files' strain must already have subtracted
            (:data:`deepclean_io.hdf5.SUBTRACTED_ATTRIBUTE`), None for
            raw strain.
        fix: What to do about a file with other strain, for the message.
        sample_rate: Rate every file must have, Hz; None for any.

    Raises:
        ValueError: no files, overlapping or unreadable files, a file
            without one of ``channels``, at another sample rate, or
            whose strain is not what ``user`` expects.
    """
    from deepclean_io.hdf5 import check_subtracted, contiguous_files

    if not data_files:
        raise ValueError("no data files given; pass at least one")
    segments = contiguous_files(data_files)
    for segment in segments:
        for path, info in zip(segment.files, segment.infos, strict=True):
            missing = [c for c in channels if c not in info.channels]
            if missing:
                raise ValueError(
                    f"{path} lacks {user}'s channels {missing}; fetch them "
                    "or choose channels the data hold"
                )
            if sample_rate is not None and info.sample_rate != sample_rate:
                raise ValueError(
                    f"{path} is sampled at {info.sample_rate} Hz but "
                    f"{user} at {sample_rate} Hz; fetch the data at "
                    f"{sample_rate} Hz (deepclean-data fetch "
                    f"--sample_rate {sample_rate:g})"
                )
            check_subtracted(path, info, subtracted, user, fix)
    return segments


def _existing_outputs(
    output_dir: Path,
    ifo: str,
    tiles: list[_Tile],
    provenance: dict[str, Any],
    overwrite: bool,
    start: float,
    end: float,
) -> dict[Path, list[list] | None]:
    """Check every existing output frame before any is written.

    Frames that overlap this run's under other names are deleted (with
    their records) when ``overwrite`` is set and they lie inside
    ``[start, end)``.

    Args:
        output_dir: the output folder.
        ifo: interferometer prefix of the frame names, e.g. ``H1``.
        tiles: this run's output frames.
        provenance: model and settings of this run.
        overwrite: re-clean instead of keeping or refusing.
        start: requested GPS start, s.
        end: requested GPS end, s.

    Returns:
        For each tile's frame, the flagged frames of an identical earlier
        run's frame to keep, or None where it is to be written.

    Raises:
        ValueError: frames of another model or settings, frames without a
            record, or frames that overlap this run's under other names
            (without ``overwrite``, or reaching outside ``[start, end)``).
    """
    flags = {
        name: _reused_flags(name, provenance, overwrite)
        for _, _, name in tiles
    }
    overlapped = _overlapped_frames(output_dir, ifo, tiles)
    kept = [
        (path, a, b)
        for path, a, b in overlapped
        if not overwrite or a < start or b > end
    ]
    if kept:
        path, a, b = kept[0]
        fix = (
            f"they reach outside [{gps_text(start)}, {gps_text(end)}), so "
            "--overwrite does not replace them; delete them and their "
            "records or choose another --output_dir"
            if overwrite
            else "choose another --output_dir or pass --overwrite true to "
            "replace output frames inside [start, end)"
        )
        raise ValueError(
            f"{path} [{a}, {b}) and {len(kept) - 1} other output frame(s) "
            "overlap this run's output frames under other names (an earlier "
            "run cleaned another span, with other window edges or another "
            f"file_length); {fix}"
        )
    for path, _, _ in overlapped:
        record_path(path).unlink(missing_ok=True)
        path.unlink()
    return flags


def _flag_reason(
    engine: CleaningEngine,
    data: dict[str, np.ndarray],
    data_start: float,
    strain_channel: str,
    witnesses: list[str],
    frame_start: float,
) -> str:
    """Why a flagged frame holds the raw strain.

    Args:
        engine: the cleaning engine.
        data: strain and witnesses ``(time,)`` read for the chunk that
            holds the frame.
        data_start: GPS time of their first sample, s.
        strain_channel: raw strain channel.
        witnesses: witness channels.
        frame_start: GPS start of the flagged frame, s.
    """
    rate = engine.config.sample_rate

    def finite(channel: str, start: float, end: float) -> bool:
        lo = max(0, round((start - data_start) * rate))
        hi = round((end - data_start) * rate)
        return bool(np.isfinite(data[channel][lo:hi]).all())

    frame_end = frame_start + engine.config.frame_length
    context = engine.required_span(frame_start, frame_end)
    reasons = [
        reason
        for reason, bad in (
            (
                STRAIN_NOT_FINITE,
                not finite(strain_channel, frame_start, frame_end),
            ),
            (
                WITNESSES_NOT_FINITE,
                not all(finite(w, *context) for w in witnesses),
            ),
        )
        if bad
    ]
    return ", ".join(reasons) or PREDICTION_NOT_FINITE


def _chunks(
    start: float, end: float, chunk_length: float
) -> list[tuple[float, float]]:
    """``[a, b)`` pieces of ``[start, end)``, ``chunk_length`` s long
    (the last shorter)."""
    return [
        (chunk_start, min(chunk_start + chunk_length, end))
        for chunk_start in np.arange(start, end, chunk_length).tolist()
    ]


def _read_ahead(
    read: Callable[..., _Chunk], requests: list[tuple]
) -> Iterator[_Chunk]:
    """``read(*request)`` for each request in order, the next one read in
    a second thread while the caller works on this one.

    Closing the iterator (or an error in ``read``, raised where its result
    is taken) waits for the read in flight and stops.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="deepclean-read") as reader:
        pending = reader.submit(read, *requests[0]) if requests else None
        for index in range(len(requests)):
            chunk = pending.result()
            if index + 1 < len(requests):
                pending = reader.submit(read, *requests[index + 1])
            yield chunk


def _read_chunk(
    segment: ContiguousFiles,
    strain_channel: str,
    witnesses: list[str],
    start: float,
    end: float,
) -> _Chunk:
    """Read ``[start, end)`` of a segment for the engine.

    Returns:
        The channels as read, the GPS time of their first sample, the
        strain ``(time,)`` as float64 and the witnesses stacked in the
        model's order ``(channels, time)`` as float32 (one pass each: no
        copy of float64 strain, witnesses converted while stacked).
    """
    data, t0, _ = segment.read([strain_channel, *witnesses], start, end)
    strain = np.asarray(data[strain_channel], np.float64)
    rows = np.stack([data[w] for w in witnesses], dtype=np.float32)
    return data, t0, strain, rows


def _clean_span(
    engine: CleaningEngine,
    chunks: list[tuple[float, float]],
    reads: Iterator[_Chunk],
    strain_channel: str,
    witnesses: list[str],
    advance: Callable[[float], object],
    classical: Any = None,
) -> tuple[dict[str, np.ndarray], list[list]]:
    """Clean back-to-back chunks of one segment.

    Each chunk comes with the context the engine needs around it
    (:meth:`~deepclean_engine.CleaningEngine.required_span`), read across
    the boundaries of the segment's files. A hybrid model's classical
    stage runs as one stream from the first chunk's first sample on, and
    its estimate is the engine's prior.

    Args:
        engine: the cleaning engine.
        chunks: GPS ``[start, end)`` of each chunk, s, on the frame grid.
        reads: for each chunk, its data read by :func:`_read_chunk`.
        strain_channel: raw strain channel.
        witnesses: witness channels in the model's order.
        advance: called with the seconds done after each chunk.
        classical: the NOMAD model of a hybrid model, or None.

    Returns:
        ``cleaned``, ``noise`` and ``raw`` strain ``(time,)`` over the
        chunks, and ``[gps, reason]`` of each flagged frame.
    """
    import torch

    from deepclean_clean.nomad import NomadEstimates

    rate = engine.config.sample_rate
    pieces: dict[str, list[np.ndarray]] = {
        "cleaned": [],
        "noise": [],
        "raw": [],
    }
    flagged: list[list] = []
    estimates = (
        None
        if classical is None
        else NomadEstimates(
            classical, len(witnesses), rate, engine.config.bands
        )
    )
    for chunk_start, chunk_end in chunks:
        data, t0, strain, rows = next(reads)
        prior = (
            None
            if estimates is None
            else torch.from_numpy(
                estimates.over(strain, rows, round(t0 * rate))
            )
        )
        cleaned = engine.clean(
            torch.from_numpy(strain), torch.from_numpy(rows), t0, prior
        )
        lo = round((chunk_start - cleaned.t0) * rate)
        hi = round((chunk_end - cleaned.t0) * rate)
        for key, values in pieces.items():
            values.append(getattr(cleaned, key)[lo:hi].cpu().numpy())
        frame_starts = cleaned.t0 + engine.config.frame_length * (
            torch.nonzero(cleaned.flagged).flatten().cpu().numpy()
        )
        flagged.extend(
            [
                float(gps),
                _flag_reason(engine, data, t0, strain_channel, witnesses, gps),
            ]
            for gps in frame_starts
            if chunk_start <= gps < chunk_end
        )
        advance(chunk_end - chunk_start)
    series = {key: np.concatenate(values) for key, values in pieces.items()}
    return series, flagged


def classical_stage(model: Path, metadata: dict[str, Any]) -> Any:
    """The NOMAD model a hybrid model carries; None for a model trained
    on raw strain.

    Raises:
        ValueError: a model trained after a classical stage that it does
            not carry.
    """
    subtracted = metadata.get("subtracted")
    if subtracted is None:
        return None
    from deepclean_clean.classical import METHOD, embedded_nomad

    classical = embedded_nomad(model) if subtracted == METHOD else None
    if classical is None:
        raise ValueError(
            f"{model} was trained on strain with {subtracted}'s estimate "
            "subtracted but carries no model of that classical stage to run "
            "on the raw strain; retrain it from the classical stage's "
            "residual files"
        )
    return classical


def window_config(
    metadata: dict,
    kernel_length: float | None = None,
    stride: float | None = None,
    filter_energy: float | None = None,
):
    """The model's :class:`~deepclean_engine.CleaningConfig`, with its
    window geometry and band-pass padding optionally replaced.

    Args:
        metadata: the exported model's metadata.
        kernel_length: window length, s.
        stride: seconds between windows.
        filter_energy: fraction of the band-pass kernel's energy inside
            the padding of each frame
            (:func:`deepclean_engine.filters.bandpass_settling_time`):
            lower values shorten the padding, hence the look-ahead, at a
            relative RMS error of about ``sqrt(1 - filter_energy)`` in
            the subtracted noise.

    Raises:
        ValueError: a replacement whose discarded window edges are
            shorter than half the model's receptive field (predictions
            there would see the window's zero padding), or a model whose
            metadata does not record its receptive field.
    """
    from deepclean_engine import CleaningConfig
    from deepclean_engine.filters import bandpass_settling_time

    values = dict(metadata["cleaning"])
    if filter_energy is not None:
        default = CleaningConfig.from_dict(values)
        values["filter_pad"] = bandpass_settling_time(
            default.bands,
            default.sample_rate,
            default.filter_order,
            filter_energy,
        )
    if kernel_length is None and stride is None:
        return CleaningConfig.from_dict(values)
    if "receptive_field" not in metadata:
        raise ValueError(
            "this model's metadata has no receptive_field, so other windows "
            "cannot be checked; clean with the model's own kernel_length "
            "and stride"
        )
    if kernel_length is not None:
        values["kernel_length"] = kernel_length
    if stride is not None:
        values["inference_sampling_rate"] = 1 / stride
    if values.get("edge_handling") == "edge_pad":
        values["keep_offset"] = None
    config = CleaningConfig.from_dict(values)
    if config.edge_handling == "overlap_add":
        return config
    first, last = config.stitch_support
    margin = min(first, config.kernel_size - last)
    needed = -(-metadata["receptive_field"] // 2)
    if margin < needed:
        raise ValueError(
            f"windows of {config.kernel_length} s every "
            f"{1 / config.inference_sampling_rate:g} s keep predictions "
            f"{margin / config.sample_rate:g} s from a window edge, but the "
            f"model sees {needed / config.sample_rate:g} s to each side; "
            "use longer windows or a shorter stride"
        )
    return config


def _plan(
    engine: CleaningEngine,
    segments: list[ContiguousFiles],
    result: CleanSummary,
) -> list[tuple[ContiguousFiles, float, float]]:
    """The cleanable ``(segment, first, last)`` spans of
    ``[result.start, result.end)``; fills ``result.cleaned`` and
    ``result.not_cleaned`` (gaps, short segments, edges without context).
    """
    start, end = result.start, result.end
    cursor = start
    work = []
    for segment in segments:
        if segment.t0 > cursor and cursor < end:
            result.not_cleaned.append(
                [cursor, min(segment.t0, end), "no data"]
            )
        cursor = max(cursor, segment.end)
        first, last = _cleanable_span(engine, segment.t0, segment.end)
        first, last = max(first, start), min(last, end)
        lo, hi = max(segment.t0, start), min(segment.end, end)
        if last <= first:
            if lo < hi:
                result.not_cleaned.append(
                    [lo, hi, "segment too short to clean"]
                )
            continue
        if first > lo:
            result.not_cleaned.append([lo, first, "segment edge (no context)"])
        if last < hi:
            result.not_cleaned.append([last, hi, "segment edge (no context)"])
        work.append((segment, first, last))
        result.cleaned.append([first, last])
    if cursor < end:
        result.not_cleaned.append([cursor, end, "no data"])
    for span in result.not_cleaned:
        logger.warning(
            "not cleaned: [%s, %s) %s",
            gps_text(span[0]),
            gps_text(span[1]),
            span[2],
        )
    return work


def clean(
    model: Path,
    data_files: list[Path],
    output_dir: Path,
    start: float | None = None,
    end: float | None = None,
    file_length: float = 4096.0,
    channel_suffix: str = "_DC",
    write_noise: bool = False,
    write_raw: bool = False,
    chunk_length: float = 256.0,
    kernel_length: float | None = None,
    stride: float | None = None,
    filter_energy: float | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    threads: int | None = None,
    summary: Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> CleanSummary:
    """Clean ``[start, end)`` of data files with an exported model.

    Args:
        model: exported ``model.pt`` (from ``deepclean-train``); a hybrid
            model (trained on a classical stage's residual files) runs
            the NOMAD it carries and subtracts both estimates.
        data_files: HDF5 files in gwpy's layout holding the model's strain
            and witness channels; back-to-back files are one segment,
            overlapping files are refused.
        output_dir: folder of the output GWF files and their records
            (created once the inputs are checked).
        start: GPS start to clean, s; the earliest file start when None.
        end: GPS end, s; the latest file end when None.
        file_length: seconds per output file on a GPS grid of this step
            (long files for archives, 1 for replays); a whole number of
            the model's frames.
        channel_suffix: cleaned strain is ``{strain}{suffix}``.
        write_noise: also write the predicted noise as
            ``{strain}{suffix}_NOISE``.
        write_raw: also write the raw strain under its own name.
        chunk_length: seconds processed at once (bounds memory).
        kernel_length: window length fed to the model, s, instead of the
            one in the model's metadata; with ``stride`` it trades
            latency for speed: 8 s windows every 7.5 s predict each
            second 1.07 times instead of twice. Fully convolutional
            models only: with edge padding, the discarded edges of each
            window must cover half the model's receptive field.
        stride: seconds between windows instead of the model's
            ``1 / inference_sampling_rate``.
        filter_energy: band-pass kernel energy kept in each frame's
            padding instead of the model's (see :func:`window_config`).
        batch_size: model windows per forward pass.
        device: ``cpu`` or a CUDA device such as ``cuda:0``.
        threads: torch CPU threads; by default the cores other processes
            leave free (:func:`deepclean_engine.threads.choose_threads`).
        summary: JSON summary path; ``{output_dir}/clean-{start}-{end}
            .json`` when None. Written last, atomically: its existence
            means the run finished.
        overwrite: re-clean output frames that exist; without it, frames
            written with the same model and settings are kept and frames
            written otherwise are refused.
        progress: show a progress bar.

    Returns:
        The run summary.

    Raises:
        ValueError: model channels missing from a file, a sample rate
            that differs from the model's, overlapping or unreadable data
            files, a classical stage's residual files (every model cleans
            raw strain; a hybrid model runs the NOMAD it carries), a
            hybrid model without a usable classical stage, a span outside
            the files, a file length that is not a whole number of
            frames, or existing output frames written by another model or
            settings (without ``overwrite``).
        PermissionError: the output directory is not writable.
    """
    from tqdm.auto import tqdm

    from deepclean_engine import CleaningEngine, load_exported_model
    from deepclean_engine.exported import file_sha256
    from deepclean_engine.threads import configure_threads
    from deepclean_io.atomic import (
        check_writable,
        remove_stale_partials,
        write_json_atomic,
    )
    from deepclean_io.gwf import frame_name, write_gwf

    began = time.perf_counter()
    model, output_dir = Path(model), Path(output_dir)
    configure_threads(threads)
    module, metadata = load_exported_model(model, device)
    config = window_config(metadata, kernel_length, stride, filter_energy)
    engine = CleaningEngine(module, config, batch_size, device)
    strain_channel = metadata["strain_channel"]
    witnesses = list(metadata["witnesses"])
    channels = [strain_channel, *witnesses]
    ifo = strain_channel.split(":")[0]
    frames_per_file = file_length / config.frame_length
    if (
        file_length <= 0
        or abs(frames_per_file - round(frames_per_file)) > 1e-9
    ):
        raise ValueError(
            f"file_length={file_length} s is not a whole number of the "
            f"model's {config.frame_length} s frames"
        )
    chunk_length = (
        max(1, round(chunk_length / config.frame_length)) * config.frame_length
    )

    classical = classical_stage(model, metadata)
    segments = data_segments(
        data_files,
        channels,
        "the model",
        None,
        "pass the fetched files (a hybrid model runs its classical stage "
        "itself)",
        config.sample_rate,
    )
    start = segments[0].t0 if start is None else start
    end = segments[-1].end if end is None else end
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    if start >= segments[-1].end or end <= segments[0].t0:
        covered = ", ".join(
            f"[{gps_text(s.t0)}, {gps_text(s.end)})" for s in segments
        )
        raise ValueError(
            f"span [{gps_text(start)}, {gps_text(end)}) is outside the "
            f"data files, which cover {covered}"
        )

    # what makes an output frame: compared with the record of every frame
    # that exists (a JSON round trip turns tuples into lists, as stored)
    provenance = json.loads(
        json.dumps(
            {
                "model": {
                    "sha256": file_sha256(model),
                    "train_span": metadata.get("train_span"),
                    "package_version": metadata.get("package_version"),
                },
                "settings": {
                    "channel_suffix": channel_suffix,
                    "write_noise": write_noise,
                    "write_raw": write_raw,
                    "file_length": file_length,
                    "cleaning": config.to_dict(),
                },
            }
        )
    )
    result = CleanSummary(
        model=str(model),
        model_sha256=provenance["model"]["sha256"],
        start=start,
        end=end,
    )
    work = _plan(engine, segments, result)

    check_writable(output_dir, "--output_dir")
    remove_stale_partials(output_dir)
    tiles = [
        (segment, (a, b), frame_name(output_dir, ifo, OUTPUT_TAG, a, b - a))
        for segment, first, last in work
        for a, b in _output_tiles(first, last, file_length)
    ]
    flags = _existing_outputs(
        output_dir, ifo, tiles, provenance, overwrite, start, end
    )
    reused = {name for name, kept in flags.items() if kept is not None}

    bar = tqdm(
        total=sum(b - a for _, (a, b), _ in tiles),
        unit="s",
        desc="clean",
        disable=not progress,
        smoothing=0,
    )
    bar.update(sum(b - a for _, (a, b), name in tiles if name in reused))
    pending = [tile for tile in tiles if tile[2] not in reused]
    suffixed = f"{strain_channel}{channel_suffix}"
    outputs = {suffixed: "cleaned"}
    if write_noise:
        outputs[f"{suffixed}_NOISE"] = "noise"
    if write_raw:
        outputs[strain_channel] = "raw"
    stopping = threading.Event()

    def write_tiles(
        group: list[_Tile], series: dict[str, np.ndarray]
    ) -> float:
        """Write a group's frames and records; the seconds written.
        Stops between frames once ``stopping`` is set."""
        group_start = group[0][1][0]
        seconds = 0.0
        for _, (tile_start, tile_end), name in group:
            if stopping.is_set():
                break
            lo = round((tile_start - group_start) * config.sample_rate)
            hi = round((tile_end - group_start) * config.sample_rate)
            # the record first, then the frame: an older frame must not
            # outlive the record that replaces its own
            name.unlink(missing_ok=True)
            write_json_atomic(
                record_path(name),
                {
                    "model_path": str(model.resolve()),
                    **provenance,
                    "flagged_frames": flags[name],
                },
            )
            write_gwf(
                name,
                {
                    channel: series[key][lo:hi]
                    for channel, key in outputs.items()
                },
                tile_start,
                config.sample_rate,
                units=dict.fromkeys(outputs, "strain"),
            )
            seconds += tile_end - tile_start
        return seconds

    # chunks are read one ahead in a second thread, and a group's frames
    # are written in a third while the next group is cleaned (at most one
    # group waits to be written); on an error or SIGTERM the writer
    # finishes the frame it is writing
    groups = _contiguous_groups(pending, chunk_length)
    group_chunks = [
        _chunks(group[0][1][0], group[-1][1][1], chunk_length)
        for group in groups
    ]
    reads = _read_ahead(
        lambda segment, start, end: _read_chunk(
            segment,
            strain_channel,
            witnesses,
            *engine.required_span(start, end),
        ),
        [
            (group[0][0], *chunk)
            for group, chunks in zip(groups, group_chunks, strict=True)
            for chunk in chunks
        ],
    )
    with ThreadPoolExecutor(1, thread_name_prefix="deepclean-write") as writer:
        writing = None
        try:
            for group, chunks in zip(groups, group_chunks, strict=True):
                series, flagged = _clean_span(
                    engine,
                    chunks,
                    reads,
                    strain_channel,
                    witnesses,
                    bar.update,
                    classical,
                )
                for _, (tile_start, tile_end), name in group:
                    flags[name] = [
                        flag
                        for flag in flagged
                        if tile_start <= flag[0] < tile_end
                    ]
                if writing is not None:
                    result.seconds_cleaned += writing.result()
                writing = writer.submit(write_tiles, group, series)
            if writing is not None:
                result.seconds_cleaned += writing.result()
        except BaseException:
            stopping.set()
            raise
        finally:
            reads.close()
    bar.close()

    for _, _, name in tiles:
        listing = result.reused_files if name in reused else result.files
        listing.append(str(name))
        result.flagged_frames.extend(flags[name])
    if result.flagged_frames:
        logger.warning(
            "%d frames hold the raw strain because it, the witnesses or the "
            "prediction were not finite (GPS %s)",
            len(result.flagged_frames),
            ", ".join(
                f"{gps_text(gps)}: {reason}"
                for gps, reason in result.flagged_frames[:10]
            ),
        )
    result.wall_seconds = time.perf_counter() - began
    summary = (
        Path(summary)
        if summary
        else output_dir / f"clean-{gps_text(start)}-{gps_text(end)}.json"
    )
    write_json_atomic(summary, asdict(result))
    return result
