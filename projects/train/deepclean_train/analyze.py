"""``deepclean-train analyze``: witness analysis of an exported model.

``deepclean-train analyze --model RUN/model.pt --fname F [...]
--output_dir D`` reads the model's strain and witnesses from the data
files (back-to-back HDF5 files as Fetch writes them) over its training
and validation spans (from the model's metadata) or over the spans
given with ``--spans '{"valid": [START, END]}'``, and writes into ``D``
(:mod:`deepclean_train.analysis` for what is computed):

- ``analysis.h5``: the spectra (saliency per witness and frequency,
  linear and bilinear coherence) by span, and the ablation's ratios;
- ``analysis.html``: the report (importance, saliency bars, coherence
  ridge plot, saliency spectrum, table);
- ``analysis.json``: the ranking and its numbers, written last: it
  exists only when the analysis finished.

``deepclean-train fit`` calls :func:`write_analysis` on its own spans
before it exports the model. With ``--wandb.enabled true`` the report and
the top of the ranking are logged to W&B.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from deepclean_engine import CleaningEngine, load_cleaning_engine
from deepclean_engine.threads import configure_threads
from deepclean_io.atomic import (
    atomic_output,
    check_writable,
    write_json_atomic,
    write_text_atomic,
)
from deepclean_io.hdf5 import check_subtracted, contiguous_files
from deepclean_tracking import WandbSettings, log_run
from deepclean_train.analysis import (
    ANALYSIS_FOLDER,
    ANALYSIS_H5,
    ANALYSIS_HTML,
    ANALYSIS_JSON,
    PERCENTILES,
    AnalysisSettings,
    ModelInputs,
    WitnessAnalysis,
    analyze_spans,
    check_channels,
)
from deepclean_train.analysis_report import analysis_page
from deepclean_train.data import Span, read_span

if TYPE_CHECKING:
    from lightning.pytorch.loggers import WandbLogger

    from deepclean_train.data import DeepCleanDataModule
    from deepclean_train.model import DeepCleanModel

LOGGED = 10
"""Top witnesses whose importance is logged to W&B as numbers."""


def _write_h5(path: Path, analysis: WitnessAnalysis) -> None:
    with atomic_output(path) as partial, h5py.File(partial, "w") as h5:
        h5.attrs["strain_channel"] = analysis.inputs.strain_channel
        h5.attrs["percentiles"] = np.array(PERCENTILES)
        h5.attrs["bands"] = np.array(analysis.bands)
        h5.create_dataset(
            "witnesses",
            data=np.array(analysis.inputs.witnesses, dtype=object),
            dtype=h5py.string_dtype(),
        )
        for name, result in analysis.saliency.items():
            group = h5.create_group(f"saliency/{name}")
            group.attrs["num_windows"] = result.num_windows
            group["share"] = result.share
            group["frequencies"] = result.frequencies
            group["frequencies"].attrs["unit"] = "Hz"
            group["spectrum"] = result.spectrum
        for name, result in analysis.coherence.items():
            group = h5.create_group(f"coherence/{name}")
            group.attrs["num_averages"] = result.num_averages
            group.attrs["fftlength"] = result.fftlength
            group.attrs["line_witness"] = analysis.inputs.witnesses[
                result.line_witness
            ]
            group["frequencies"] = result.frequencies
            group["frequencies"].attrs["unit"] = "Hz"
            group["linear"] = result.linear
            group["bilinear"] = result.bilinear
        if analysis.ablation is not None:
            group = h5.create_group("ablation")
            group.attrs["span"] = analysis.ablation.span
            group.attrs["baseline"] = analysis.ablation.baseline
            group.attrs["shift"] = analysis.ablation.shift
            group["mean"] = analysis.ablation.mean
            group["shifted"] = analysis.ablation.shifted


def write_analysis(
    analysis: WitnessAnalysis, output_dir: str | Path, title: str
) -> Path:
    """Write ``analysis.h5``, ``analysis.html``, then ``analysis.json``.

    Returns:
        Path of ``analysis.json``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    _write_h5(output_dir / ANALYSIS_H5, analysis)
    write_text_atomic(
        output_dir / ANALYSIS_HTML, analysis_page(analysis, title)
    )
    return write_json_atomic(output_dir / ANALYSIS_JSON, analysis.summary())


def wandb_numbers(analysis: WitnessAnalysis) -> dict[str, float]:
    """The numbers logged to W&B: the top witnesses' importance."""
    return {
        f"analysis/importance/{entry['channel']}": entry["importance"]
        for entry in analysis.ranking()[:LOGGED]
    }


def _model_spans(
    metadata: Mapping, spans: Mapping[str, tuple[float, float]] | None
) -> dict[str, tuple[float, float]]:
    """The spans to analyse: given, or the model's own."""
    if spans:
        return {name: (float(a), float(b)) for name, (a, b) in spans.items()}
    found = {
        name: tuple(metadata[key])
        for name, key in (("train", "train_span"), ("valid", "valid_span"))
        if metadata.get(key)
    }
    if not found:
        raise ValueError(
            "the model's metadata records no training or validation span; "
            "give the spans to analyse with --spans "
            "'{\"valid\": [START, END]}'"
        )
    return found


def read_spans(
    fname: Sequence[str | Path],
    inputs: ModelInputs,
    spans: Mapping[str, tuple[float, float]],
    sample_rate: float,
    subtracted: str | None = None,
) -> dict[str, Span]:
    """A model's strain and witnesses over named spans of data files.

    Args:
        fname: Back-to-back HDF5 files of one segment.
        inputs: The model's channels.
        spans: GPS ``(start, end)`` by name.
        sample_rate: The model's sample rate, Hz.
        subtracted: The classical stage the model was trained after (its
            metadata's ``subtracted``): its network models that stage's
            residual, so the files must hold it; None for raw strain.

    Raises:
        ValueError: files of several segments, without the model's
            channels, at another rate, of the other kind of strain, not
            covering a span, or with NaN or inf samples in one.
    """
    segments = contiguous_files([Path(path) for path in fname])
    if len(segments) > 1:
        raise ValueError(
            f"the data files belong to {len(segments)} segments; pass "
            "back-to-back files of one segment"
        )
    segment = segments[0]
    for path, info in zip(segment.files, segment.infos, strict=True):
        check_channels(inputs, list(info.channels), str(path))
        check_subtracted(
            path,
            info,
            subtracted,
            "the model's network",
            "analyse a hybrid model on its classical stage's residual "
            "files and any other model on fetched files",
        )
    if not math.isclose(segment.sample_rate, sample_rate):
        raise ValueError(
            f"the data are sampled at {segment.sample_rate:g} Hz but the "
            f"model at {sample_rate:g} Hz; analyse data at the model's rate"
        )
    source = ", ".join(str(path) for path in segment.files)
    return {
        name: read_span(
            segment,
            name,
            inputs.strain_channel,
            inputs.witnesses,
            start,
            end,
            source=source,
            fix="analyse spans without gaps",
        )
        for name, (start, end) in spans.items()
    }


def analyze(
    model: Path,
    fname: list[Path],
    output_dir: Path,
    spans: dict[str, tuple[float, float]] | None = None,
    settings: AnalysisSettings = AnalysisSettings(),
    wandb: WandbSettings = WandbSettings(),
    progress: bool = True,
) -> Path:
    """Analyse which witnesses an exported model relies on.

    Args:
        model: Exported ``model.pt``.
        fname: Back-to-back HDF5 data files holding the spans.
        output_dir: Folder of the outputs (created).
        spans: Named GPS ``[start, end]`` spans, analysed in order, the
            last one ranked; default the model's training and
            validation spans.
        settings: How to analyse (``--settings.fftlength 8`` ...).
        wandb: W&B logging (job type ``analysis``).
        progress: Show progress bars.

    Returns:
        Path of ``analysis.json``.

    Raises:
        ValueError: data that lack the model's channels or the spans,
            spans too short for the settings.
    """
    output_dir = check_writable(output_dir, "--output_dir")
    configure_threads()
    engine, metadata = load_cleaning_engine(model)
    inputs = ModelInputs.from_metadata(metadata)
    if not math.isclose(metadata["sample_rate"], engine.config.sample_rate):
        raise ValueError(f"{model}: its metadata disagree on the sample rate")
    read = read_spans(
        fname,
        inputs,
        _model_spans(metadata, spans),
        engine.config.sample_rate,
        metadata.get("subtracted"),
    )
    analysis = analyze_spans(engine, inputs, read, settings, progress)
    path = write_analysis(analysis, output_dir, f"Witness analysis of {model}")
    log_run(
        wandb,
        output_dir,
        "analysis",
        wandb_numbers(analysis),
        {"analysis": output_dir / ANALYSIS_HTML},
    )
    top = analysis.ranking()[:5]
    print(
        f"analysed {len(inputs.witnesses)} witnesses into {output_dir}; "
        "most important: "
        + ", ".join(f"{e['channel']} {e['importance']:.3f}" for e in top)
    )
    return path


def analyse_trained_model(
    model: DeepCleanModel,
    data: DeepCleanDataModule,
    settings: AnalysisSettings,
    output_dir: str | Path,
    wandb_loggers: Sequence[WandbLogger] = (),
) -> Path:
    """The analysis ``deepclean-train fit`` runs before exporting.

    Analyses a CPU copy of the trained predictor in eval mode (what
    ``model.pt`` will hold) on the training and validation spans already
    in memory, writes ``{output_dir}/analysis/`` and logs the report and
    the top importances to each W&B logger.

    Returns:
        Path of ``analysis.json``.
    """
    predictor = copy.deepcopy(model.predictor).cpu().eval()
    hparams = model.hparams
    inputs = ModelInputs(
        hparams.strain_channel,
        tuple(hparams.witnesses),
        data.network_sample_rate,
        hparams.product_witness,
    )
    spans = {
        name: data.spans[name]
        for name in ("train", "valid")
        if name in data.spans
    }
    analysis = analyze_spans(
        CleaningEngine(predictor, model.cleaning_config),
        inputs,
        spans,
        settings,
    )
    folder = Path(output_dir) / ANALYSIS_FOLDER
    path = write_analysis(
        analysis, folder, f"Witness analysis of {output_dir}"
    )
    if wandb_loggers:
        import wandb

        page = (folder / ANALYSIS_HTML).read_text()
        for logger in wandb_loggers:
            logger.experiment.log(
                {"witness_analysis": wandb.Html(page, inject=False)}
                | wandb_numbers(analysis)
            )
    return path
