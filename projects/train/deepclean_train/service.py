"""Retraining service beside the online cleaner: ``deepclean-train service``.

Every ``cadence`` s the service takes the most recent ``train_duration +
valid_duration`` s of the 1 s low-latency frames the online cleaner reads,
fine-tunes the published model on them (``deepclean-train fit`` with
``--model.init_from`` in a child process), gates the candidate against
the published model on the held-out last ``valid_duration`` s
(:mod:`deepclean_engine.gate`) and, if it wins, publishes it into the
cleaner's model folder (:func:`~deepclean_train.publish.publish`:
atomically, a new version), from which the cleaner switches at a frame
boundary. Each step keeps its model and ``gate.json`` in
``{output_dir}/gps-{GPS}/`` (the assembled training file is removed) and
prints one JSON line. A step whose span misses frames, or whose training
fails, is skipped and says why; the live model stays.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from deepclean_engine.exported import published_model
from deepclean_engine.gate import cleanable_span, judge
from deepclean_io.atomic import check_writable, write_json_atomic
from deepclean_io.gwf import (
    LLDETCHAR_TAG,
    LLHOFT_TAG,
    frame_name,
    newest_frame,
    read_gwf,
)
from deepclean_io.hdf5 import contiguous_files, write_timeseries
from deepclean_train.publish import publish

FRAME_LENGTH = 1
DATA_NAME = "data.hdf5"
# seconds of later strain frames after which a second's frames count as
# lost (the online cleaner's default wait limit)
LOST_AFTER = 5


@dataclass(frozen=True)
class ServiceStep:
    """One retraining step of the service.

    Attributes:
        gps: GPS second the step's data end at (exclusive).
        status: ``promoted``, ``kept`` (the gate kept the live model) or
            ``skipped``.
        reason: Why, with the numbers.
        version: Version of the published model after the step.
    """

    gps: int
    status: str
    reason: str
    version: int


def read_frames(
    strain_dir: Path,
    witness_dir: Path,
    strain_channel: str,
    witnesses: list[str],
    start: int,
    end: int,
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Strain and witnesses over ``[start, end)`` from 1 s frames.

    Returns:
        ``(data, missing)``: one array per channel (NaN where a frame is
        missing or unreadable) and the GPS seconds of those frames.
    """
    ifo = strain_channel.split(":")[0]
    pieces: dict[str, list[np.ndarray]] = {
        name: [] for name in [strain_channel, *witnesses]
    }
    missing = []
    size = None
    for gps in range(start, end):
        frames = (
            (
                frame_name(strain_dir, ifo, LLHOFT_TAG, gps, FRAME_LENGTH),
                [strain_channel],
            ),
            (
                frame_name(witness_dir, ifo, LLDETCHAR_TAG, gps, FRAME_LENGTH),
                witnesses,
            ),
        )
        second: dict[str, np.ndarray] = {}
        try:
            for path, channels in frames:
                data, _, rate = read_gwf(path, channels)
                second.update(data)
            size = round(rate * FRAME_LENGTH)
        except (OSError, ValueError):
            missing.append(gps)
            second = {}
        for name, values in pieces.items():
            values.append(second.get(name))
    if size is None:
        raise ValueError(
            f"no readable frame in [{start}, {end}) in {strain_dir}"
        )
    data = {
        name: np.concatenate(
            [np.full(size, np.nan) if v is None else v for v in values]
        )
        for name, values in pieces.items()
    }
    return data, missing


def _second_passed(
    strain_dir: Path, witness_dir: Path, ifo: str, gps: int
) -> bool:
    """Whether second ``gps`` is over: both its frames are there, or
    strain frames :data:`LOST_AFTER` s later are (its own were lost;
    reading the span reports them missing)."""
    arrived = (
        frame_name(strain_dir, ifo, LLHOFT_TAG, gps, FRAME_LENGTH).exists()
        and frame_name(
            witness_dir, ifo, LLDETCHAR_TAG, gps, FRAME_LENGTH
        ).exists()
    )
    newest = newest_frame(strain_dir, ifo, LLHOFT_TAG) or 0
    return arrived or newest >= gps + LOST_AFTER


def service(
    strain_dir: Path,
    model_dir: Path,
    output_dir: Path,
    fit_args: list[str],
    cadence: float = 2048.0,
    train_duration: float = 3584.0,
    valid_duration: float = 512.0,
    witness_dir: Path | None = None,
    start: int | None = None,
    end: int | None = None,
    out_of_band_tolerance: float = 0.005,
    poll_interval: float = 1.0,
    device: str = "cpu",
    summary: Path | None = None,
) -> list[ServiceStep]:
    """Retrain the published model at a cadence on the latest frames.

    Args:
        strain_dir: Folder of ``llhoft`` frames (what the cleaner reads).
        model_dir: The cleaner's model folder; a model must be published
            there first (``deepclean-train publish``).
        output_dir: Folder of the steps' records and models.
        fit_args: ``deepclean-train fit`` options besides the data:
            ``--config`` YAMLs of model and optimiser (a fine-tuning
            overlay last). Channels, bands and sample rate come from the
            published model.
        cadence: Seconds between steps.
        train_duration: Training span, s.
        valid_duration: Held-out span after it, s (validation and gate).
        witness_dir: Folder of ``lldetchar`` frames; ``strain_dir`` when
            None.
        start: GPS second the first step's data end at; None: the second
            after the newest frame at startup.
        end: Stop after the last step at or before this GPS second; None
            runs until stopped (SIGTERM exits with status 143).
        out_of_band_tolerance: The gate's largest ``|out-of-band ratio -
            1|``.
        poll_interval: Seconds between looks for the step's last frame.
        device: Torch device of the gate.
        summary: Write the steps here as JSON (atomically) when the
            service ends at ``end``.

    Returns:
        The steps done (with ``end``).

    Raises:
        ValueError: no published model, a published hybrid model, or
            settings that cannot work.
    """
    if not cadence >= valid_duration > 0 or train_duration <= 0:
        raise ValueError(
            f"need cadence >= valid_duration > 0 and train_duration > 0, "
            f"got {cadence:g}, {valid_duration:g} and {train_duration:g} s"
        )
    published = published_model(model_dir)
    if published is None:
        raise ValueError(
            f"no model is published in {model_dir}; publish the first one "
            "with deepclean-train publish MODEL --model_dir "
            f"{model_dir}"
        )
    _, record = published
    if record.get("subtracted") is not None:
        raise ValueError(
            f"the model published in {model_dir} was trained after "
            f"{record['subtracted']} (a hybrid model); the service "
            "fine-tunes on raw frames, so retrain hybrid models offline "
            "(law run deepclean.tasks.Retrain --classical-stage nomad)"
        )
    output_dir = check_writable(output_dir, "--output_dir")
    witness_dir = witness_dir or strain_dir
    ifo = record["strain_channel"].split(":")[0]
    strain_channel = record["strain_channel"]
    witnesses = list(record["witnesses"])
    history = round(train_duration + valid_duration)
    if start is None:
        newest = newest_frame(strain_dir, ifo, LLHOFT_TAG)
        if newest is None:
            raise ValueError(f"no llhoft frame in {strain_dir}")
        start = newest + 1
    steps = []
    gps = int(start)
    while end is None or gps <= end:
        while not _second_passed(strain_dir, witness_dir, ifo, gps - 1):
            time.sleep(poll_interval)
        folder = output_dir / f"gps-{gps}"
        folder.mkdir(exist_ok=True)
        live, record = published_model(model_dir)
        version = record["version"]
        data, missing = read_frames(
            strain_dir,
            witness_dir,
            strain_channel,
            witnesses,
            gps - history,
            gps,
        )
        if missing:
            step = ServiceStep(
                gps,
                "skipped",
                f"{len(missing)} frames missing in [{gps - history}, {gps})"
                f", the first at {missing[0]}",
                version,
            )
        else:
            step = _retrain_step(
                gps,
                data,
                folder,
                live,
                version,
                [
                    *fit_args,
                    f"--data.strain_channel={strain_channel}",
                    f"--data.witnesses={json.dumps(witnesses)}",
                    f"--data.sample_rate={record['sample_rate']}",
                    f"--data.bands={json.dumps(record['bands'])}",
                    f"--data.train_duration={train_duration}",
                    f"--data.valid_duration={valid_duration}",
                    "--data.train_offset=0",
                ],
                float(record["sample_rate"]),
                valid_duration,
                out_of_band_tolerance,
                device,
                model_dir,
            )
        steps.append(step)
        print(json.dumps(asdict(step)), flush=True)
        gps += round(cadence)
    if summary is not None:
        write_json_atomic(summary, [asdict(step) for step in steps])
    return steps


def _retrain_step(
    gps: int,
    data: dict[str, np.ndarray],
    folder: Path,
    live: Path,
    version: int,
    fit_args: list[str],
    sample_rate: float,
    valid_duration: float,
    tolerance: float,
    device: str,
    model_dir: Path,
) -> ServiceStep:
    """Fine-tune the live model on ``data`` (ending at ``gps``), gate it
    and publish it if it wins; the data file is removed afterwards."""
    duration = next(iter(data.values())).size / sample_rate
    live_copy = folder / "live.pt"
    shutil.copyfile(live, live_copy)
    fname = folder / DATA_NAME
    try:
        write_timeseries(fname, data, gps - duration, sample_rate)
        training = subprocess.run(
            [
                sys.executable,
                "-m",
                "deepclean_train.cli",
                "fit",
                *fit_args,
                f"--data.fname={fname}",
                f"--model.init_from={live_copy}",
                f"--trainer.default_root_dir={folder}",
                "--trainer.enable_progress_bar=false",
            ],
            capture_output=True,
            text=True,
        )
        candidate = folder / "model.pt"
        if training.returncode != 0 or not candidate.exists():
            last = (training.stderr or training.stdout).strip().splitlines()
            return ServiceStep(
                gps,
                "skipped",
                f"training exited {training.returncode}: "
                f"{last[-1] if last else 'no output'}",
                version,
            )
        (segment,) = contiguous_files([fname])
        start, end = cleanable_span(candidate, gps - valid_duration, gps)
        decision = judge(
            candidate,
            live_copy,
            segment.read,
            start,
            end,
            label=f"gps-{gps}",
            live_label=f"version {version}",
            out_of_band_tolerance=tolerance,
            device=device,
        )
    finally:
        fname.unlink(missing_ok=True)
    write_json_atomic(folder / "gate.json", decision.to_dict())
    if not decision.promoted:
        return ServiceStep(gps, "kept", decision.reason, version)
    published = publish(candidate, model_dir)
    return ServiceStep(gps, "promoted", decision.reason, published["version"])
