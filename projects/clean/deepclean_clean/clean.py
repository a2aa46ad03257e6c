"""Offline cleaning of archived data into GWF frames.

Data files (gwpy's HDF5 layout, one per contiguous segment) are cleaned
with an exported model by the same :class:`~deepclean_engine.CleaningEngine`
that validates models during training and that the online cleaner runs:
1 s frames (the model's ``frame_length``), stitched predictions,
band-passed with padding, subtracted from the raw strain.

Output files ``{obs}-{ifo}_DEEPCLEAN-{gps}-{duration}.gwf`` tile a GPS
grid of ``file_length`` seconds and hold the cleaned strain as
``{strain}{suffix}`` (optionally the predicted noise and the raw strain).
Each is written atomically; a file that exists is complete and is kept, so
an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger("deepclean_clean")

OUTPUT_TAG = "DEEPCLEAN"


@dataclass
class CleanSummary:
    """What a cleaning run did, as written to its JSON summary.

    Attributes:
        model: path of the exported model.
        start: requested GPS start, s.
        end: requested GPS end, s.
        files: output frame files covering the cleaned data, in GPS order.
        cleaned: ``[start, end)`` GPS spans that were cleaned.
        not_cleaned: ``[start, end, reason]`` spans of the request that
            were not: gaps between data files, and the edges of each file
            where the engine lacks the context to clean.
        flagged_frames: GPS starts of frames whose witnesses were not
            finite; raw strain was written there.
        seconds_cleaned: total duration cleaned in this run, s (skipped,
            already existing files excluded).
        wall_seconds: wall-clock time of this run, s.
    """

    model: str
    start: float
    end: float
    files: list[str] = field(default_factory=list)
    cleaned: list[list[float]] = field(default_factory=list)
    not_cleaned: list[list] = field(default_factory=list)
    flagged_frames: list[float] = field(default_factory=list)
    seconds_cleaned: float = 0.0
    wall_seconds: float = 0.0

    def describe(self) -> str:
        """One line for people: what was cleaned, how fast, what not."""
        speed = self.seconds_cleaned / max(self.wall_seconds, 1e-9)
        text = (
            f"cleaned {self.seconds_cleaned:g} s in {self.wall_seconds:.1f} "
            f"s ({speed:.0f}x real time) into {len(self.files)} files"
        )
        if self.not_cleaned:
            text += f"; {len(self.not_cleaned)} spans not cleaned"
        if self.flagged_frames:
            text += f"; {len(self.flagged_frames)} frames flagged"
        return text


def gps_text(gps: float) -> str:
    """GPS time without exponent or trailing zeros: ``1262304000.5``."""
    return np.format_float_positional(gps, trim="-")


def _check_writable(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as error:
        raise PermissionError(
            f"output directory {output_dir} is not writable ({error}); "
            "choose another --output_dir"
        ) from None


def _cleanable_span(
    engine, file_start: float, file_end: float
) -> tuple[float, float]:
    """First and last GPS frame edges ``engine`` can clean in a file."""
    frame = engine.config.frame_length
    before, after = engine.required_span(0.0, frame)
    first = math.ceil((file_start - before) / frame - 1e-9) * frame
    while engine.required_span(first, first + frame)[0] < file_start:
        first += frame
    last = math.floor((file_end - after) / frame + 1e-9) * frame + frame
    while engine.required_span(last - frame, last)[1] > file_end:
        last -= frame
    return first, last


def _output_tiles(start: float, end: float, file_length: float):
    """``[a, b)`` pieces of ``[start, end)`` on a ``file_length`` grid."""
    tiles = []
    edge = math.floor(start / file_length) * file_length
    while edge < end:
        tiles.append((max(edge, start), min(edge + file_length, end)))
        edge += file_length
    return tiles


def _contiguous_groups(
    tiles: list[tuple[tuple[float, float], Path]], length: float
) -> list[list[tuple[tuple[float, float], Path]]]:
    """Runs of back-to-back tiles, each at most ``length`` s long (or one
    tile), so that short output files are cleaned in long passes."""
    groups: list[list[tuple[tuple[float, float], Path]]] = []
    for tile in tiles:
        (start, end), _ = tile
        if (
            groups
            and groups[-1][-1][0][1] == start
            and end - groups[-1][0][0][0] <= length
        ):
            groups[-1].append(tile)
        else:
            groups.append([tile])
    return groups


def _clean_span(
    engine,
    path: Path,
    strain_channel: str,
    witnesses: list[str],
    start: float,
    end: float,
    chunk_length: float,
    advance,
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Clean ``[start, end)`` of one data file in chunks.

    Each chunk reads the context the engine needs around it
    (:meth:`~deepclean_engine.CleaningEngine.required_span`).

    Args:
        engine: the cleaning engine.
        path: data file (gwpy HDF5 layout) holding the span and context.
        strain_channel: raw strain channel.
        witnesses: witness channels in the model's order.
        start: GPS start, s, on the frame grid.
        end: GPS end, s, on the frame grid.
        chunk_length: seconds per engine call.
        advance: called with the seconds done after each chunk.

    Returns:
        ``cleaned``, ``noise`` and ``raw`` strain ``(time,)`` over the span,
        and the GPS starts of frames whose witnesses were not finite.
    """
    import torch

    from deepclean_io.hdf5 import read_timeseries

    rate = engine.config.sample_rate
    pieces: dict[str, list[np.ndarray]] = {
        "cleaned": [],
        "noise": [],
        "raw": [],
    }
    flagged: list[float] = []
    chunk_start = start
    while chunk_start < end:
        chunk_end = min(chunk_start + chunk_length, end)
        data_start, data_end = engine.required_span(chunk_start, chunk_end)
        data, t0, _ = read_timeseries(
            path, [strain_channel, *witnesses], data_start, data_end
        )
        strain = torch.from_numpy(data[strain_channel].astype(np.float64))
        witness = torch.from_numpy(
            np.stack([data[w] for w in witnesses]).astype(np.float32)
        )
        segment = engine.clean(strain, witness, t0)
        lo = round((chunk_start - segment.t0) * rate)
        hi = round((chunk_end - segment.t0) * rate)
        for key, values in pieces.items():
            values.append(getattr(segment, key)[lo:hi].cpu().numpy())
        frame_starts = segment.t0 + engine.config.frame_length * (
            torch.nonzero(segment.flagged).flatten().cpu().numpy()
        )
        flagged.extend(
            float(g) for g in frame_starts if chunk_start <= g < chunk_end
        )
        advance(chunk_end - chunk_start)
        chunk_start = chunk_end
    series = {key: np.concatenate(values) for key, values in pieces.items()}
    return series, flagged


def window_config(
    metadata: dict,
    kernel_length: float | None = None,
    stride: float | None = None,
):
    """The model's :class:`~deepclean_engine.CleaningConfig`, with its
    window geometry optionally replaced.

    Raises:
        ValueError: a replacement whose discarded window edges are
            shorter than half the model's receptive field (predictions
            there would see the window's zero padding), or a model whose
            metadata does not record its receptive field.
    """
    from deepclean_engine import CleaningConfig

    values = dict(metadata["cleaning"])
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
    batch_size: int = 32,
    device: str = "cpu",
    summary: Path | None = None,
    progress: bool = True,
) -> CleanSummary:
    """Clean ``[start, end)`` of data files with an exported model.

    Args:
        model: exported ``model.pt`` (from ``deepclean-train``).
        data_files: HDF5 files in gwpy's layout holding the model's strain
            and witness channels; each is one contiguous segment.
        output_dir: folder of the output GWF files (created).
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
        batch_size: model windows per forward pass.
        device: ``cpu`` or a CUDA device such as ``cuda:0``.
        summary: JSON summary path; ``{output_dir}/clean-{start}-{end}
            .json`` when None. Written last, atomically: its existence
            means the run finished.
        progress: show a progress bar.

    Returns:
        The run summary.

    Raises:
        ValueError: model channels missing from a file, a sample rate
            that differs from the model's, a span outside the files, or a
            file length that is not a whole number of frames.
        PermissionError: the output directory is not writable.
    """
    from tqdm.auto import tqdm

    from deepclean_engine import CleaningEngine, load_exported_model
    from deepclean_io.gwf import frame_name, write_gwf
    from deepclean_io.hdf5 import file_info

    began = time.perf_counter()
    output_dir = Path(output_dir)
    _check_writable(output_dir)
    module, metadata = load_exported_model(model, device)
    config = window_config(metadata, kernel_length, stride)
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

    segments = sorted(
        ((Path(f), file_info(f)) for f in data_files), key=lambda s: s[1].t0
    )
    if not segments:
        raise ValueError("no data files given; pass at least one")
    infos = [info for _, info in segments]
    for path, info in segments:
        missing = [c for c in channels if c not in info.channels]
        if missing:
            raise ValueError(
                f"{path} lacks the model's channels {missing}; fetch them "
                "or clean with a model trained on the available channels"
            )
        if info.sample_rate != config.sample_rate:
            raise ValueError(
                f"{path} is sampled at {info.sample_rate} Hz but the model "
                f"at {config.sample_rate} Hz; fetch the data at "
                f"{config.sample_rate} Hz (deepclean-data fetch "
                f"--sample_rate {config.sample_rate:g})"
            )
    start = infos[0].t0 if start is None else start
    end = infos[-1].end if end is None else end
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    if start >= infos[-1].end or end <= infos[0].t0:
        covered = ", ".join(
            f"[{gps_text(i.t0)}, {gps_text(i.end)})" for i in infos
        )
        raise ValueError(
            f"span [{gps_text(start)}, {gps_text(end)}) is outside the "
            f"data files, which cover {covered}"
        )

    result = CleanSummary(model=str(model), start=start, end=end)
    cursor = start
    work = []
    for path, info in segments:
        if info.t0 > cursor and cursor < end:
            result.not_cleaned.append([cursor, min(info.t0, end), "no data"])
        first, last = _cleanable_span(engine, info.t0, info.end)
        first, last = max(first, start), min(last, end)
        if last <= first:
            reason = "segment too short to clean"
            if info.t0 < end and info.end > start:
                result.not_cleaned.append(
                    [max(info.t0, start), min(info.end, end), reason]
                )
            cursor = max(cursor, info.end)
            continue
        if first > max(info.t0, start):
            result.not_cleaned.append(
                [max(info.t0, start), first, "segment edge (no context)"]
            )
        if last < min(info.end, end):
            result.not_cleaned.append(
                [last, min(info.end, end), "segment edge (no context)"]
            )
        work.append((path, first, last))
        result.cleaned.append([first, last])
        cursor = max(cursor, info.end)
    if cursor < end:
        result.not_cleaned.append([cursor, end, "no data"])
    for span in result.not_cleaned:
        logger.warning(
            "not cleaned: [%s, %s) %s",
            gps_text(span[0]),
            gps_text(span[1]),
            span[2],
        )

    total = sum(last - first for _, first, last in work)
    bar = tqdm(
        total=total, unit="s", desc="clean", disable=not progress, smoothing=0
    )
    group_length = max(chunk_length, file_length)
    for path, first, last in work:
        tiles = _output_tiles(first, last, file_length)
        names = [
            frame_name(output_dir, ifo, OUTPUT_TAG, a, b - a) for a, b in tiles
        ]
        result.files.extend(str(name) for name in names)
        pending = []
        for tile, name in zip(tiles, names, strict=True):
            if name.exists():
                bar.update(tile[1] - tile[0])
            else:
                pending.append((tile, name))
        for group in _contiguous_groups(pending, group_length):
            group_start, group_end = group[0][0][0], group[-1][0][1]
            series, flagged = _clean_span(
                engine,
                path,
                strain_channel,
                witnesses,
                group_start,
                group_end,
                chunk_length,
                bar.update,
            )
            result.flagged_frames.extend(flagged)
            for (tile_start, tile_end), name in group:
                lo = round((tile_start - group_start) * config.sample_rate)
                hi = round((tile_end - group_start) * config.sample_rate)
                out = {f"{strain_channel}{channel_suffix}": series["cleaned"]}
                if write_noise:
                    out[f"{strain_channel}{channel_suffix}_NOISE"] = series[
                        "noise"
                    ]
                if write_raw:
                    out[strain_channel] = series["raw"]
                write_gwf(
                    name,
                    {
                        channel: values[lo:hi]
                        for channel, values in out.items()
                    },
                    tile_start,
                    config.sample_rate,
                    units=dict.fromkeys(out, "strain"),
                )
                result.seconds_cleaned += tile_end - tile_start
    bar.close()
    if result.flagged_frames:
        logger.warning(
            "%d frames had non-finite witnesses; raw strain was written "
            "there (GPS %s)",
            len(result.flagged_frames),
            ", ".join(gps_text(g) for g in result.flagged_frames[:10]),
        )
    result.wall_seconds = time.perf_counter() - began
    summary = (
        Path(summary)
        if summary
        else output_dir / f"clean-{gps_text(start)}-{gps_text(end)}.json"
    )
    partial = summary.with_name(f".{summary.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(asdict(result), indent=2) + "\n")
    os.replace(partial, summary)
    return result
