"""Retraining: the promotion gate and the report over a retraining run.

Production DeepClean fine-tunes its model at a fixed cadence. A freshly
fine-tuned model goes live only through :func:`gate`: the candidate and
the live model clean the most recent held-out span with the cleaning
engine (the code of offline and online cleaning), and the candidate is
promoted only if its in-band ASD ratio is lower than the live model's and
its out-of-band ratio stays within ``out_of_band_tolerance`` of 1.
Hybrid models (trained after a classical stage) clean the raw strain
with the NOMAD they carry, as the offline and online cleaners run them.

:func:`retrain_report` scores every cadence step of a run: the data each
live model cleaned against the same span cleaned by the first model alone
("no retraining"), as time series of in-band ASD ratio, BNS range gain
and (with a simulation's truth) excess over ideal, with the gate's
decisions.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepclean_clean.clean import gps_text
from deepclean_engine.gate import GateDecision, Prior
from deepclean_tracking import WandbSettings, log_run

GATE_NAME = "gate.json"
MODEL_NAME = "model.pt"
REPORT_JSON = "retrain.json"
REPORT_PNG = "retrain.png"
REPORT_HTML = "report.html"
RETRAINED = "retrained"
FIRST_ONLY = "first model only"


def _live_label(live: Path) -> str:
    """Label of a model a gate put live, from its ``gate.json``."""
    record = live.parent / GATE_NAME
    if record.is_file():
        return json.loads(record.read_text())["live_model"]
    return str(live)


def classical_prior(model: Path) -> Prior | None:
    """The classical stage a hybrid model runs, as the gate's prior: NOMAD
    streamed from the first sample read; None for a model trained on raw
    strain.

    Raises:
        ValueError: a hybrid model without a usable classical stage.
    """
    from deepclean_clean.clean import classical_stage
    from deepclean_clean.nomad import NomadEstimates
    from deepclean_engine import CleaningConfig, load_exported_model

    metadata = load_exported_model(model)[1]
    classical = classical_stage(model, metadata)
    if classical is None:
        return None
    config = CleaningConfig.from_dict(metadata["cleaning"])
    rate = config.sample_rate

    def prior(strain: np.ndarray, witnesses: np.ndarray, t0: float):
        estimates = NomadEstimates(
            classical, len(witnesses), rate, config.bands
        )
        return estimates.over(strain, witnesses, round(t0 * rate))

    return prior


def gate(
    candidate: Path,
    data_files: list[Path],
    start: float,
    end: float,
    output_dir: Path,
    live: Path | None = None,
    label: str = "",
    out_of_band_tolerance: float = 0.005,
    fftlength: float = 4.0,
    device: str = "cpu",
) -> GateDecision:
    """Decide whether a fine-tuned model replaces the live one.

    Both models clean ``[start, end)`` (the most recent data, held out
    from training; :func:`deepclean_engine.gate.judge`), a hybrid model
    with the NOMAD it carries (:func:`classical_prior`), and the winner is
    copied to ``{output_dir}/model.pt`` beside ``gate.json`` with the
    decision, both written atomically: the model folder of each retraining
    step holds the model that was live from then on.

    Args:
        candidate: The new exported ``model.pt``.
        data_files: gwpy-layout HDF5 files of raw strain covering the
            span and context (not a classical stage's residual files).
        start: GPS start of the held-out span, s.
        end: GPS end, s.
        output_dir: Folder of ``model.pt`` and ``gate.json``.
        live: The live ``model.pt`` (written by an earlier gate, whose
            ``gate.json`` beside it names it); None for the first model,
            which goes live when its out-of-band ratio is within the
            tolerance.
        label: Name of the candidate in the records (e.g. ``step-003``);
            its path when empty.
        out_of_band_tolerance: Largest allowed ``|out-of-band ratio - 1|``.
        fftlength: Welch segment length of the ASDs, s.
        device: Torch device of the models.

    Returns:
        The :class:`~deepclean_engine.gate.GateDecision`, also in
        ``gate.json``.

    Raises:
        ValueError: a hybrid model without a usable classical stage,
            residual files, a span shorter than two ASD segments, files
            that do not hold it with its context, or a first model that
            fails the out-of-band check (nothing could go live).
    """
    from deepclean_clean.clean import data_segments
    from deepclean_engine.gate import judge
    from deepclean_io.atomic import atomic_output, write_json_atomic

    priors = {
        model: classical_prior(model)
        for model in (candidate, live)
        if model is not None
    }
    segments = data_segments(
        data_files,
        [],
        "the gate",
        None,
        "pass the fetched files (a hybrid model runs its classical stage "
        "itself)",
    )

    def read(channels, first, last):
        segment = next(
            (s for s in segments if s.t0 <= first and last <= s.end), None
        )
        if segment is None:
            raise ValueError(
                f"no run of back-to-back files among {len(data_files)} "
                f"holds [{gps_text(first)}, {gps_text(last)}), the span "
                f"[{gps_text(start)}, {gps_text(end)}) with the model's "
                "context; give the files around the span"
            )
        return segment.read(channels, first, last)

    decision = judge(
        candidate,
        live,
        read,
        start,
        end,
        label=label or str(candidate),
        live_label="" if live is None else _live_label(live),
        out_of_band_tolerance=out_of_band_tolerance,
        fftlength=fftlength,
        device=device,
        priors=priors.get,
    )
    if live is None and not decision.promoted:
        raise ValueError(
            f"the first model {candidate} cannot go live: "
            f"{decision.reason}; check its training"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(output_dir / MODEL_NAME) as partial:
        shutil.copyfile(candidate if decision.promoted else live, partial)
    write_json_atomic(output_dir / GATE_NAME, decision.to_dict())
    verdict = "promoted" if decision.promoted else "kept the live model"
    print(f"gate: {verdict}: {decision.reason}")
    return decision


@dataclass(frozen=True)
class ReportStep:
    """One cadence step of a retraining run.

    Attributes:
        start: GPS start of the span the step's live model cleaned, s.
        end: GPS end, s.
        gate_dir: Folder of the step's ``gate.json`` and live model.
        cleaned_dir: Folder of the GWF frames it cleaned.
    """

    start: float
    end: float
    gate_dir: Path
    cleaned_dir: Path


def _plot(path: Path, steps: list[dict[str, Any]]) -> None:
    from matplotlib.figure import Figure

    from deepclean_io.atomic import atomic_output

    metrics = [
        ("in_band_asd_ratio", "in-band ASD ratio"),
        ("range_gain", "BNS range gain"),
        ("excess_over_ideal", "excess over ideal"),
    ]
    metrics = [m for m in metrics if steps[0][RETRAINED].get(m[0]) is not None]
    figure = Figure(figsize=(10, 2.8 * len(metrics)), layout="constrained")
    axes = figure.subplots(len(metrics), 1, squeeze=False)[:, 0]
    origin = steps[0]["start"]
    hours = [(s["start"] - origin) / 3600 for s in steps]
    for axis, (key, title) in zip(axes, metrics, strict=True):
        for version, style in ((RETRAINED, "o-"), (FIRST_ONLY, "s--")):
            axis.plot(
                hours,
                [s[version][key] for s in steps],
                style,
                label=version,
                drawstyle="steps-post",
            )
        for hour, step in zip(hours, steps, strict=True):
            if not step["gate"]["promoted"]:
                axis.axvline(hour, color="red", alpha=0.3, linestyle=":")
        axis.set_ylabel(title)
        axis.legend()
    axes[0].set_title(
        "Live model against the first model per step "
        "(red dotted: the gate kept the live model)",
        fontsize="medium",
    )
    axes[-1].set_xlabel(f"hours after GPS {gps_text(origin)}")
    with atomic_output(path) as partial:
        figure.savefig(partial, dpi=100, format="png")


def _html(steps: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The report page: the verdict, the plot and a table per step."""
    header = [
        "step",
        "GPS span",
        "live model",
        "gate",
        *(
            f"{title} ({version})"
            for title in ("in-band ratio", "range gain", "excess")
            for version in (RETRAINED, FIRST_ONLY)
        ),
    ]

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    rows = []
    for step in steps:
        cells = [
            str(step["step"]),
            f"{gps_text(step['start'])}-{gps_text(step['end'])}",
            step["gate"]["live_model"],
            step["gate"]["reason"],
        ]
        for key in ("in_band_asd_ratio", "range_gain", "excess_over_ideal"):
            for version in (RETRAINED, FIRST_ONLY):
                cells.append(number(step[version].get(key)))
        rows.append(cells)
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<title>DeepClean retraining</title><style>"
        "td,th{padding:2px 8px;border-bottom:1px solid #ccc}"
        "</style></head><body><h1>DeepClean retraining</h1>"
        f"<p>{html.escape(summary['verdict'])}</p>"
        f"<img src='{REPORT_PNG}' alt='metrics per cadence step'>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{table}</tbody>"
        "</table></body></html>\n"
    )


def retrain_report(
    steps: list[ReportStep],
    first_only_dir: Path,
    data_files: list[Path],
    output_dir: Path,
    channel_suffix: str = "_DC",
    fftlength: float = 4.0,
    wandb: WandbSettings | None = None,
) -> dict[str, Any]:
    """Score every step of a retraining run against no retraining.

    Args:
        steps: The cadence steps in GPS order.
        first_only_dir: GWF frames of the same spans cleaned by the first
            model alone.
        data_files: Raw data (gwpy HDF5) holding the spans; a simulated
            file's truth beside it adds the excess over ideal.
        output_dir: Folder of ``retrain.json``, ``retrain.png`` and
            ``report.html``.
        channel_suffix: Cleaned strain is ``{strain}{suffix}``.
        fftlength: Welch segment length of the ASDs, s.
        wandb: log every step's numbers, the gate's decisions and the
            HTML report as a W&B run (job type ``retrain``) when enabled,
            so that retraining runs compare run against run.

    Returns:
        The report's content (also ``retrain.json``): per step its span,
        the end of its evaluated part (``evaluated_end``: the cleaner
        leaves its look-ahead at a segment's end uncleaned), the gate's
        decision and the headline numbers of both versions;
        and a summary saying in how many later steps (after the first)
        retraining beat the first model on the in-band ASD ratio.
    """
    from deepclean_clean.assess import cleaned_coverage, read_cleaned
    from deepclean_clean.evaluate import DEFAULT_STRIDE, evaluate
    from deepclean_engine import load_exported_model
    from deepclean_io.atomic import write_json_atomic, write_text_atomic
    from deepclean_io.hdf5 import contiguous_files
    from deepclean_io.truth import read_truth

    if not steps:
        raise ValueError("no steps to report on; the schedule is empty")
    segments = contiguous_files(data_files)
    rows = []
    for index, step in enumerate(steps):
        gate_record = json.loads((step.gate_dir / GATE_NAME).read_text())
        _, metadata = load_exported_model(step.gate_dir / MODEL_NAME)
        strain_channel = metadata["strain_channel"]
        # the cleaner leaves its look-ahead at a segment's end uncleaned
        end = min(
            cleaned_coverage(folder, step.start, step.end)
            for folder in (step.cleaned_dir, first_only_dir)
        )
        if end - step.start < 2 * fftlength:
            raise ValueError(
                f"step {index}'s span [{gps_text(step.start)}, "
                f"{gps_text(step.end)}) is cleaned only up to "
                f"{gps_text(end)} in {step.cleaned_dir} or "
                f"{first_only_dir}; clean it first"
            )
        segment = next(
            (s for s in segments if s.t0 <= step.start and end <= s.end),
            None,
        )
        if segment is None:
            raise ValueError(
                f"no data file holds step {index}'s span "
                f"[{gps_text(step.start)}, {gps_text(end)})"
            )
        data, t0, rate = segment.read(
            [strain_channel], step.start, end, np.float64
        )
        channel = f"{strain_channel}{channel_suffix}"
        cleaned = {
            RETRAINED: read_cleaned(
                step.cleaned_dir, channel, step.start, end
            ),
            FIRST_ONLY: read_cleaned(first_only_dir, channel, step.start, end),
        }
        # the truth of the file that holds the whole span (simulations)
        truth = next(
            (
                read_truth(path, step.start, end)
                for path, info in zip(
                    segment.files, segment.infos, strict=True
                )
                if info.t0 <= step.start and end <= info.end
            ),
            None,
        )
        evaluation = evaluate(
            data[strain_channel],
            cleaned,
            rate,
            metadata["bands"],
            start=t0,
            ideal=None if truth is None else truth.ideal,
            fftlength=fftlength,
            stride=min(DEFAULT_STRIDE, end - step.start),
        )
        headline = evaluation.headline()
        rows.append(
            {
                "step": index,
                "start": step.start,
                "end": step.end,
                "evaluated_end": end,
                "gate": gate_record,
                RETRAINED: headline[RETRAINED],
                FIRST_ONLY: headline[FIRST_ONLY],
            }
        )
    later = rows[1:]
    better = sum(
        r[RETRAINED]["in_band_asd_ratio"] < r[FIRST_ONLY]["in_band_asd_ratio"]
        for r in later
    )
    promoted = sum(r["gate"]["promoted"] for r in later)
    verdict = (
        f"{len(rows)} steps; after the first, retraining beat the first "
        f"model on the in-band ASD ratio in {better} of {len(later)} "
        f"steps; the gate promoted {promoted} of {len(later)} candidates"
    )
    summary = {
        "steps": len(rows),
        "later_steps": len(later),
        "later_steps_retraining_better": better,
        "promoted": promoted,
        "verdict": verdict,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    _plot(output_dir / REPORT_PNG, rows)
    content = {"steps": rows, "summary": summary}
    write_text_atomic(output_dir / REPORT_HTML, _html(rows, summary))
    log_run(
        wandb or WandbSettings(),
        output_dir,
        "retrain",
        {
            **{
                f"step{row['step']:03d}/{version}/{metric}": value
                for row in rows
                for version in (RETRAINED, FIRST_ONLY)
                for metric, value in row[version].items()
                if value is not None and math.isfinite(value)
            },
            **{
                f"step{row['step']:03d}/promoted": float(
                    row["gate"]["promoted"]
                )
                for row in rows
            },
            "later_steps_retraining_better": better,
            "promoted": promoted,
        },
        html={"report": output_dir / REPORT_HTML},
    )
    write_json_atomic(output_dir / REPORT_JSON, content)
    print(f"report: {output_dir / REPORT_HTML}")
    print(verdict)
    return content
