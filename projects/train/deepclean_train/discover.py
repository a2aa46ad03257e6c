"""``deepclean-train discover``: find the witnesses that matter among many.

Three trainings on the same spans, each a ``deepclean-train fit`` in its
own folder under ``--output_dir``:

1. ``full``: every candidate channel; its post-training witness analysis
   (:mod:`deepclean_train.analysis`) ranks them (the later trainings'
   analyses skip the ablation, the costly part);
2. ``top``: the ``top_k`` most important candidates;
3. ``without-redundant``: every candidate except those with low saliency
   (below the median share) but high coherence (among the ``top_k`` by
   the larger of the linear and bilinear coherent fraction, and above
   :data:`NOISE_FLOOR` times the coherence of unrelated series): channels
   coherent with the strain because they echo a coupled witness that the
   model already uses. Does the same performance come back without them?

Each model then cleans the validation span (the whole seconds it can
clean without data around it) through the cleaning engine
(:func:`deepclean_engine.gate.model_ratios`); ``discover.json`` (last)
and ``discover.html`` report the in-band ASD ratios, whether each reduced
set recovers the full set's ratio within ``tolerance``, and what it saves:
training time, parameters and cleaning time per second of data.

A stage whose ``model.pt`` was written with the same options is reused
and a killed training resumes from its last checkpoint, so a discovery
stopped part-way continues where it stopped.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bokeh.embed import file_html
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div, Span
from bokeh.plotting import figure
from bokeh.resources import CDN

from deepclean_engine import load_cleaning_engine
from deepclean_engine.gate import cleanable_span, model_ratios
from deepclean_engine.threads import configure_threads
from deepclean_io.atomic import (
    check_writable,
    write_json_atomic,
    write_text_atomic,
)
from deepclean_io.commands import Terminated
from deepclean_io.hdf5 import contiguous_files
from deepclean_train.analysis import ANALYSIS_FOLDER, ANALYSIS_JSON

STAGES = ("full", "top", "without-redundant")
STAGE_RECORD = "stage.json"
DISCOVER_JSON = "discover.json"
DISCOVER_HTML = "discover.html"


def read_candidates(candidates: list[str] | Path) -> list[str]:
    """Channel names given directly or as a file of one per line (``#``
    starts a comment)."""
    if not isinstance(candidates, list):
        path = Path(candidates)
        if not path.is_file():
            raise FileNotFoundError(
                f"candidate list {path} does not exist; give a file with "
                "one channel name per line"
            )
        names = [
            line.split("#", 1)[0].strip()
            for line in path.read_text().splitlines()
        ]
        candidates = [name for name in names if name]
    duplicates = sorted({c for c in candidates if candidates.count(c) > 1})
    if duplicates:
        raise ValueError(f"candidates {duplicates} are listed twice")
    if not candidates:
        raise ValueError("the candidate list is empty")
    return list(candidates)


def check_candidates(
    candidates: list[str], fname: list[Path], strain_channel: str
) -> None:
    """Refuse candidates the data files do not hold, naming them."""
    for segment in contiguous_files(fname):
        path, available = segment.files[0], set(segment.infos[0].channels)
        unknown = [name for name in candidates if name not in available]
        if unknown:
            raise ValueError(
                f"candidates {unknown} are not channels of {path}; it "
                f"holds {len(available)} channels. Fix the names or fetch "
                "data with them"
            )
    if strain_channel in candidates:
        raise ValueError(
            f"the strain channel {strain_channel} is among the candidates; "
            "remove it"
        )


NOISE_FLOOR = 4.0
"""Coherent fractions below this many times ``1 / averages`` (the bias of
the coherence of unrelated series) do not count as high."""


def redundant_channels(
    ranking: list[dict[str, Any]], span: str, top_k: int, floor: float
) -> list[str]:
    """Candidates with a saliency share below the median but a coherence
    among the ``top_k`` highest and above ``floor``.

    Args:
        ranking: ``analysis.json``'s ranking.
        span: The analysed span whose numbers count.
        top_k: How many count as highly coherent.
        floor: Coherent fraction that unrelated channels stay below.
    """
    saliency = np.array([e["saliency"][span]["median"] for e in ranking])
    coherence = np.array(
        [
            max(
                e["linear_coherence"][span],
                e["bilinear_coherence"][span] or 0.0,
            )
            for e in ranking
        ]
    )
    coherent = set(np.argsort(-coherence, kind="stable")[:top_k].tolist())
    low = saliency < np.median(saliency)
    return [
        entry["channel"]
        for row, entry in enumerate(ranking)
        if low[row] and row in coherent and coherence[row] > floor
    ]


def _stage_options(
    fname: list[Path],
    fit_args: list[str],
    witnesses: list[str],
    product_witness: str | None,
) -> list[str]:
    files = ",".join(str(path) for path in fname)
    options = [
        *fit_args,
        f"--data.fname=[{files}]",
        f"--data.witnesses={json.dumps(witnesses)}",
    ]
    if product_witness is not None:
        options.append(f"--data.product_witness={product_witness}")
    return options


def train_stage(folder: Path, options: list[str]) -> float:
    """``deepclean-train fit`` into ``folder`` unless a finished run with
    the same options is there; resumes a killed one.

    Returns:
        Seconds the training took (when it ran, else as recorded).

    Raises:
        RuntimeError: the training failed.
        Terminated: it was stopped by SIGTERM.
    """
    record_path = folder / STAGE_RECORD
    model = folder / "model.pt"
    if model.is_file() and record_path.is_file():
        record = json.loads(record_path.read_text())
        if record["options"] == options:
            return record["train_seconds"]
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "deepclean_train.cli",
        "fit",
        *options,
        f"--trainer.default_root_dir={folder}",
    ]
    last = folder / "checkpoints" / "last.ckpt"
    if last.is_file():
        command.append(f"--ckpt_path={last}")
    began = time.perf_counter()
    status = subprocess.run(command).returncode
    if status == 143:
        raise Terminated()
    if status != 0 or not model.is_file():
        raise RuntimeError(
            f"training in {folder} failed (exit status {status}); see its "
            "output above"
        )
    seconds = time.perf_counter() - began
    write_json_atomic(
        record_path, {"options": options, "train_seconds": seconds}
    )
    return seconds


def assess_stage(
    folder: Path, fname: list[Path], span: tuple[float, float]
) -> dict[str, float]:
    """In-band and out-of-band ASD ratios of a stage's model on ``span``,
    its parameters and its cleaning seconds per second of data."""
    segment = contiguous_files(fname)[0]
    model = folder / "model.pt"
    began = time.perf_counter()
    ratios = model_ratios(model, segment.read, *span)
    seconds = time.perf_counter() - began
    engine, _ = load_cleaning_engine(model)
    parameters = sum(p.numel() for p in engine.model.parameters())
    return {
        **ratios,
        "parameters": int(parameters),
        "clean_seconds_per_second": seconds / (span[1] - span[0]),
    }


def _page(summary: dict[str, Any]) -> str:
    stages = [s for s in STAGES if s in summary["stages"]]
    ratios = [summary["stages"][s]["in_band"] for s in stages]
    labels = [
        f"{s} ({len(summary['stages'][s]['witnesses'])} witnesses)"
        for s in stages
    ]
    plot = figure(
        y_range=list(reversed(labels)),
        title="In-band ASD ratio on the validation span (lower is better)",
        x_axis_label="ASD cleaned / raw in the bands",
        width=900,
        height=120 + 40 * len(stages),
        tools="save",
    )
    plot.hbar(
        y="label",
        right="ratio",
        height=0.6,
        source=ColumnDataSource({"label": labels, "ratio": ratios}),
    )
    full = summary["stages"]["full"]["in_band"]
    plot.add_layout(
        Span(
            location=full + summary["tolerance"],
            dimension="height",
            line_dash="dashed",
            line_color="red",
        )
    )
    lines = [
        f"<li>{html.escape(text)}</li>" for text in summary["conclusions"]
    ]
    text = (
        "<h1>Witness discovery</h1><ul>"
        + "".join(lines)
        + "</ul><p>Dashed line: the full set's ratio plus the tolerance. "
        "The full model's witness analysis: full/analysis/analysis.html"
        "</p>"
    )
    return file_html(column(Div(text=text, width=900), plot), CDN, "Discover")


def _conclusion(
    name: str, stage: dict[str, Any], full: dict[str, Any], tolerance: float
) -> str:
    recovered = stage["in_band"] <= full["in_band"] + tolerance
    return (
        f"{name}: {len(stage['witnesses'])} of {len(full['witnesses'])} "
        f"witnesses, in-band ASD ratio {stage['in_band']:.4f} against "
        f"{full['in_band']:.4f} with all: "
        + ("recovered" if recovered else "not recovered")
        + f" within {tolerance:g}; training {stage['train_seconds']:.0f} s "
        f"({stage['train_seconds'] / full['train_seconds']:.0%} of the "
        f"full set's), cleaning {stage['clean_seconds_per_second'] * 1e3:.2f}"
        f" ms per s of data ({full['clean_seconds_per_second'] * 1e3:.2f})"
    )


def discover(
    fname: list[Path],
    output_dir: Path,
    fit_args: list[str],
    strain_channel: str,
    candidates: list[str] | Path | None = None,
    product_witness: str | None = None,
    top_k: int = 24,
    tolerance: float = 0.01,
) -> Path:
    """Train on many candidate witnesses, rank them, retrain on fewer.

    Args:
        fname: Back-to-back HDF5 files with the training and validation
            spans.
        output_dir: Folder of the three trainings and the report.
        fit_args: ``deepclean-train fit`` options besides the data files,
            witnesses and output folder (configs, strain channel, bands,
            sample rate, spans).
        strain_channel: The strain channel (as in ``fit_args``).
        candidates: Candidate witness channels, or a file listing them
            one per line; None: every channel of the data files besides
            the strain.
        product_witness: Witness whose products are network inputs; kept
            in every set.
        top_k: Witnesses of the ``top`` set, and how many of the most
            coherent count as highly coherent.
        tolerance: Largest rise of the in-band ASD ratio over the full
            set's that still counts as recovered.

    Returns:
        Path of ``discover.json``.

    Raises:
        ValueError: unknown or duplicate candidates, ``top_k`` not below
            the number of candidates.
    """
    output_dir = check_writable(output_dir, "--output_dir")
    configure_threads()
    fname = [Path(path) for path in fname]
    if candidates is None:
        channels = contiguous_files(fname)[0].infos[0].channels
        candidates = [name for name in channels if name != strain_channel]
    names = read_candidates(candidates)
    check_candidates(names, fname, strain_channel)
    if product_witness is not None and product_witness not in names:
        raise ValueError(
            f"product_witness {product_witness} is not among the candidates"
        )
    if not 0 < top_k < len(names):
        raise ValueError(
            f"top_k {top_k} must be between 1 and the {len(names)} "
            "candidates minus one"
        )
    sets = {"full": names}
    times = {
        "full": train_stage(
            output_dir / "full",
            _stage_options(fname, fit_args, names, product_witness),
        )
    }
    analysis = json.loads(
        (output_dir / "full" / ANALYSIS_FOLDER / ANALYSIS_JSON).read_text()
    )
    ranking = analysis["ranking"]
    span = analysis["ranked_span"]
    top = [entry["channel"] for entry in ranking[:top_k]]
    if product_witness is not None and product_witness not in top:
        top = [*top[:-1], product_witness]
    sets["top"] = [name for name in names if name in top]
    floor = NOISE_FLOOR / analysis["coherence_averages"][span]
    redundant = redundant_channels(ranking, span, top_k, floor)
    if product_witness in redundant:
        redundant.remove(product_witness)
    if redundant:
        sets["without-redundant"] = [n for n in names if n not in redundant]
    for stage in STAGES[1:]:
        if stage in sets:
            times[stage] = train_stage(
                output_dir / stage,
                [
                    *_stage_options(
                        fname, fit_args, sets[stage], product_witness
                    ),
                    "--analysis.ablation=false",
                ],
            )
    valid = cleanable_span(
        output_dir / "full" / "model.pt", *analysis["spans"][span]
    )
    stages = {}
    for stage, witnesses in sets.items():
        stages[stage] = {
            "witnesses": witnesses,
            "train_seconds": times[stage],
            **assess_stage(output_dir / stage, fname, valid),
        }
    full = stages["full"]
    conclusions = [
        _conclusion(stage, stages[stage], full, tolerance)
        for stage in STAGES[1:]
        if stage in stages
    ]
    if not redundant:
        conclusions.append(
            "no candidate has low saliency and high coherence: nothing to drop"
        )
    summary = {
        "candidates": names,
        "top_k": top_k,
        "tolerance": tolerance,
        "span": list(valid),
        "redundant": redundant,
        "stages": stages,
        "recovered": {
            stage: stages[stage]["in_band"] <= full["in_band"] + tolerance
            for stage in stages
            if stage != "full"
        },
        "conclusions": conclusions,
    }
    write_text_atomic(output_dir / DISCOVER_HTML, _page(summary))
    path = write_json_atomic(output_dir / DISCOVER_JSON, summary)
    for line in conclusions:
        print(line)
    return path
