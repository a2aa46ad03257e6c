"""Classical stage of the hybrid: NOMAD first, DeepClean on what it leaves.

:func:`subtract_classical` (``deepclean-clean classical``) fits NOMAD
(:mod:`deepclean_clean.nomad`) on a training span, streams every data
file through it and writes, for each, a residual file in gwpy's HDF5
layout: the same GPS span, the strain channel with NOMAD's band-passed
noise estimate subtracted, and the witnesses unchanged. DeepClean then
trains on these files as it would on raw data.

Residual files carry the root attributes
:data:`deepclean_io.hdf5.SUBTRACTED_ATTRIBUTE` (``"NOMAD"``) and
:data:`~deepclean_io.hdf5.SUBTRACTED_MODEL_ATTRIBUTE` (``nomad.h5``, the
fitted model beside them). A model trained on them records the first in
its metadata (``subtracted``) and carries the fitted model inside
``model.pt`` (:func:`embedded_nomad`): it cleans raw strain, offline and
online, with NOMAD's estimate as the cleaning engine's prior, so the
output is ``raw - bandpass(NOMAD estimate + DeepClean prediction)``.

Back-to-back files are one stream: NOMAD's filter state and the
zero-phase band-pass carry across their boundaries, so cutting a segment
into files does not change the residual. Each segment starts with zero
filter state (NOMAD's filters settle within a fraction of a second).

Resuming: every residual file records a fingerprint of what made it
(data file, channels, bands, training span, NOMAD settings). A re-run
keeps the files whose fingerprint matches and recomputes the others; a
segment is streamed again from its start when any of its files is
missing, so the kept files and the new ones come from the same stream.
Files are written atomically and the JSON summary last.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deepclean_clean.nomad import NomadSettings

# What the residual files' strain has had subtracted.
METHOD = "NOMAD"
# NOMAD's fitted model beside the residual files (NOMAD's HDF5 format).
MODEL_NAME = "nomad.h5"
# Root attribute of a residual file: the fingerprint of what made it.
FINGERPRINT_ATTRIBUTE = "deepclean_subtracted_fingerprint"
# Seconds of data read and streamed at once (bounds memory).
CHUNK_LENGTH = 64.0


@dataclass
class ClassicalSummary:
    """What a classical-stage run did.

    Attributes:
        method: The classical method (``"NOMAD"``).
        files: Residual files written by this run.
        reused_files: Residual files kept from an earlier run.
        train_span: GPS ``[start, end)`` NOMAD was fitted on, s.
        asd_ratios: Per residual file, the in-band and out-of-band ASD
            ratios of its strain to the raw strain (as the evaluation
            report defines them, 4 s Welch segments).
        fit_seconds: Wall time of NOMAD's fit, s.
        subtract_seconds: Wall time of streaming and writing, s.
    """

    method: str
    train_span: list[float]
    files: list[str] = field(default_factory=list)
    reused_files: list[str] = field(default_factory=list)
    asd_ratios: dict[str, dict[str, float]] = field(default_factory=dict)
    fit_seconds: float = 0.0
    subtract_seconds: float = 0.0

    def describe(self) -> str:
        """One line for the terminal."""
        ratios = ", ".join(
            f"{Path(name).name}: {value['in_band']:.4f}"
            for name, value in self.asd_ratios.items()
        )
        return (
            f"{self.method} residuals: {len(self.files)} written, "
            f"{len(self.reused_files)} kept; in-band ASD ratio residual / "
            f"raw: {ratios or 'none written'}"
        )


def embedded_nomad(model_path: Path):
    """The NOMAD model a hybrid ``model.pt`` carries (stored by
    ``deepclean-train fit`` from the residual files it trained on), or
    None when it carries none."""
    import tempfile

    from nomad.model.format import read_model

    from deepclean_engine.exported import CLASSICAL_NAME, read_extra_file

    content = read_extra_file(model_path, CLASSICAL_NAME)
    if content is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / MODEL_NAME
        path.write_bytes(content)
        try:
            return read_model(str(path))
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(
                f"{model_path} carries an unreadable {METHOD} model "
                f"({error}); retrain it from the classical stage's residual "
                "files"
            ) from error


def _fingerprint(settings: dict) -> str:
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def subtract_classical(
    data_files: list[Path],
    output_dir: Path,
    strain_channel: str,
    witnesses: list[str],
    mains_channel: str,
    bands: list[tuple[float, float]],
    train_start: float,
    train_end: float,
    nomad: NomadSettings = NomadSettings(),
    summary: Path | None = None,
    progress: bool = True,
) -> ClassicalSummary:
    """Fit NOMAD and write the residual of every data file.

    Args:
        data_files: Raw data files in gwpy's HDF5 layout; back-to-back
            files are one segment.
        output_dir: Folder of the residual files (same names as the data
            files), ``nomad.h5`` (the fitted model, NOMAD's format) and
            the summary.
        strain_channel: Strain channel.
        witnesses: Witness channels; written unchanged into the residual
            files.
        mains_channel: The mains monitor among ``witnesses``: NOMAD's
            noise witness (the others are its modulation witnesses).
        bands: Bands NOMAD fits and subtracts in, ``(low, high)`` Hz.
        train_start: GPS start of NOMAD's training span, s (inside one
            segment of the data files).
        train_end: GPS end, s.
        nomad: How NOMAD is fitted and run.
        summary: JSON summary path; ``{output_dir}/classical.json`` when
            None. Written last, atomically.
        progress: Show a progress bar.

    Returns:
        The summary.

    Raises:
        ValueError: no or unreadable data files, a missing channel, a
            file that already holds a residual, a training span outside
            one segment, or a mains channel not among the witnesses.
    """
    from nomad.model.format import write_model
    from tqdm.auto import tqdm

    from deepclean_clean.clean import data_segments
    from deepclean_clean.nomad import fit_nomad
    from deepclean_clean.wiener import find_mains
    from deepclean_io.atomic import (
        atomic_output,
        check_writable,
        remove_stale_partials,
        write_json_atomic,
    )
    from deepclean_io.hdf5 import (
        SUBTRACTED_ATTRIBUTE,
        SUBTRACTED_MODEL_ATTRIBUTE,
        file_info,
    )

    began = time.perf_counter()
    output_dir = Path(output_dir)
    witnesses = list(witnesses)
    bands = [tuple(band) for band in bands]
    channels = [strain_channel, *witnesses]
    mains_index = find_mains(witnesses, mains_channel)
    segments = data_segments(
        data_files,
        channels,
        "the classical stage",
        None,
        "pass the fetched files, not residual files",
    )
    training = next(
        (s for s in segments if s.t0 <= train_start and train_end <= s.end),
        None,
    )
    if training is None or train_end <= train_start:
        covered = ", ".join(f"[{s.t0}, {s.end})" for s in segments)
        raise ValueError(
            f"NOMAD's training span [{train_start}, {train_end}) must lie "
            f"inside one segment of the data files, which cover {covered}"
        )

    check_writable(output_dir, "--output_dir")
    remove_stale_partials(output_dir)
    result = ClassicalSummary(
        method=METHOD, train_span=[float(train_start), float(train_end)]
    )
    settings = {
        "strain_channel": strain_channel,
        "witnesses": witnesses,
        "mains_channel": mains_channel,
        "bands": [list(band) for band in bands],
        "train_span": result.train_span,
        "train_files": [str(Path(p).resolve()) for p in training.files],
        "nomad": asdict(nomad),
    }

    def fingerprint(path: Path) -> str:
        return _fingerprint({**settings, "file": str(path.resolve())})

    def is_current(path: Path) -> bool:
        target = output_dir / path.name
        if not target.exists():
            return False
        attrs = file_info(target).attrs
        return (
            attrs.get(FINGERPRINT_ATTRIBUTE) == fingerprint(path)
            and attrs.get(SUBTRACTED_MODEL_ATTRIBUTE) == MODEL_NAME
        )

    pending = [
        segment
        for segment in segments
        if not all(is_current(path) for path in segment.files)
    ]
    result.reused_files = [
        str(output_dir / path.name)
        for segment in segments
        if segment not in pending
        for path in segment.files
    ]
    if pending:
        fitted = time.perf_counter()
        data, _, sample_rate = training.read(
            channels, train_start, train_end, np.float64
        )
        model = fit_nomad(
            np.stack([data[w] for w in witnesses]),
            data[strain_channel],
            sample_rate,
            bands,
            mains_index,
            nomad,
        )
        del data
        with atomic_output(output_dir / MODEL_NAME) as temporary:
            write_model(model, str(temporary))
        result.fit_seconds = time.perf_counter() - fitted
        bar = tqdm(
            total=sum(s.end - s.t0 for s in pending),
            unit="s",
            desc="NOMAD",
            disable=not progress,
            smoothing=0,
        )
        for segment in pending:
            for path, strain, residual in _residuals(
                model, segment, channels, bands, nomad, bar.update
            ):
                target = output_dir / path.name
                _write_residual(
                    path,
                    target,
                    channels,
                    residual,
                    {
                        SUBTRACTED_ATTRIBUTE: METHOD,
                        SUBTRACTED_MODEL_ATTRIBUTE: MODEL_NAME,
                        FINGERPRINT_ATTRIBUTE: fingerprint(path),
                    },
                )
                result.files.append(str(target))
                result.asd_ratios[str(target)] = _asd_ratios(
                    strain, residual, segment.sample_rate, bands
                )
        bar.close()
    result.subtract_seconds = time.perf_counter() - began - result.fit_seconds
    write_json_atomic(
        Path(summary) if summary else output_dir / "classical.json",
        asdict(result),
    )
    return result


def _residuals(model, segment, channels, bands, nomad, advance):
    """``(data file, raw strain, residual strain)`` of each file of a
    segment, in order: NOMAD streamed over the whole segment, its estimate
    band-passed with padding taken from the neighbouring files."""
    import torch

    from deepclean_clean.nomad import NomadStream
    from deepclean_engine import BandpassFilter
    from deepclean_engine.filters import bandpass_settling_time

    sample_rate = segment.sample_rate
    stream = NomadStream(
        model, len(channels) - 1, sample_rate, bands, nomad.stride
    )
    bandpass = BandpassFilter(bands, sample_rate).to(torch.float64)
    pad = round(bandpass_settling_time(bands, sample_rate) * sample_rate)
    chunk = max(stream.hold, round(CHUNK_LENGTH * sample_rate))
    chunk -= chunk % stream.hold

    def estimate(path, info):
        """NOMAD's estimate and the raw strain over one file."""
        noise, strain = [], []
        for first in range(0, info.num_samples, chunk):
            last = min(first + chunk, info.num_samples)
            data, _, _ = segment.read(
                channels,
                info.t0 + first / sample_rate,
                info.t0 + last / sample_rate,
                np.float64,
            )
            rows = np.stack([data[c] for c in channels[1:]])
            size = last - first
            padded = -(-size // stream.hold) * stream.hold
            noise.append(
                stream.estimate(
                    np.pad(data[channels[0]], (0, padded - size)),
                    np.pad(rows, ((0, 0), (0, padded - size))),
                )[:size]
            )
            strain.append(data[channels[0]])
            advance(size / sample_rate)
        return np.concatenate(noise), np.concatenate(strain)

    def residual(strain, noise, before, after):
        extended = np.concatenate([before, noise, after])
        filtered = bandpass(torch.from_numpy(extended)).numpy()
        return strain, strain - filtered[
            before.size : before.size + noise.size
        ]

    files = list(zip(segment.files, segment.infos, strict=True))
    previous = None  # (path, noise, strain, tail of the file before it)
    tail = np.zeros(0)
    for path, info in files:
        noise, strain = estimate(path, info)
        if previous is not None:
            last_path, last_noise, last_strain, last_tail = previous
            yield (
                last_path,
                *residual(last_strain, last_noise, last_tail, noise[:pad]),
            )
            tail = last_noise[-pad:]
        previous = (path, noise, strain, tail)
    last_path, last_noise, last_strain, last_tail = previous
    yield last_path, *residual(last_strain, last_noise, last_tail, np.zeros(0))


def _write_residual(source, target, channels, residual, attrs) -> None:
    """Copy ``channels`` of ``source`` into ``target`` with the strain
    (the first channel, stored dtype kept) replaced by ``residual``,
    chunk by chunk."""
    from deepclean_io.hdf5 import TimeSeriesWriter, file_info, read_timeseries

    info = file_info(source)
    chunk = round(CHUNK_LENGTH * info.sample_rate)
    with TimeSeriesWriter(
        target,
        channels,
        info.t0,
        info.sample_rate,
        info.num_samples,
        units={c: info.units.get(c, "") for c in channels},
        attrs=attrs,
    ) as writer:
        for first in range(0, info.num_samples, chunk):
            last = min(first + chunk, info.num_samples)
            data, _, _ = read_timeseries(
                source,
                channels,
                info.t0 + first / info.sample_rate,
                info.t0 + last / info.sample_rate,
            )
            strain = data[channels[0]]
            data[channels[0]] = residual[first:last].astype(strain.dtype)
            writer.write(data)


def _asd_ratios(strain, residual, sample_rate, bands) -> dict[str, float]:
    """In-band and out-of-band ASD ratios of ``residual`` to ``strain``
    (both ``(time,)``), 4 s Welch segments (shorter for short files)."""
    from deepclean_clean.evaluate import asd_ratios, welch_asd

    fftlength = min(4.0, strain.size / sample_rate / 2)
    frequencies, raw = welch_asd(strain, sample_rate, fftlength)
    _, left = welch_asd(residual, sample_rate, fftlength)
    ratios = asd_ratios(frequencies, raw, left, bands)
    return {"in_band": ratios.in_band, "out_of_band": ratios.out_of_band}
