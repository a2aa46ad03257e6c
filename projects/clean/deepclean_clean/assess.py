"""Judge a cleaning run: DeepClean against classical peers and the truth.

:func:`assess` reads the raw strain and witnesses of a test stretch, the
cleaned strain from the GWF files that :func:`~deepclean_clean.clean.clean`
wrote, fits both Wiener baselines and NOMAD
(:mod:`deepclean_clean.nomad`) on a training span, adds the simulator's
truth when the data are simulated, and writes the report of
:func:`~deepclean_clean.report.write_report`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from deepclean_clean.clean import OUTPUT_TAG, gps_text
from deepclean_clean.nomad import NomadSettings
from deepclean_tracking import WandbSettings, log_run


def _covering_frames(
    cleaned_dir: Path, start: float, end: float
) -> tuple[list[tuple[Path, float, float]], float]:
    """Cleaned GWF files covering ``[start, end)`` without a gap.

    Returns:
        ``(frames, covered)``: ``(path, first, last)`` of each file and
        the part of it inside the span, in GPS order, and the end of the
        gap-free coverage from ``start`` (``start`` when none).
    """
    from deepclean_io.gwf import parse_frame_name

    frames, cursor = [], start
    for path in sorted(
        Path(cleaned_dir).glob(f"*_{OUTPUT_TAG}-*.gwf"),
        key=lambda p: parse_frame_name(p).gps,
    ):
        name = parse_frame_name(path)
        if name.gps + name.duration <= cursor or name.gps >= end:
            continue
        if name.gps > cursor:
            break
        last = min(end, name.gps + name.duration)
        frames.append((path, cursor, last))
        cursor = last
    return frames, cursor


def cleaned_coverage(cleaned_dir: Path, start: float, end: float) -> float:
    """End of the cleaned frames' gap-free coverage of ``[start, end)``
    from ``start``, GPS s (``start`` when nothing covers it)."""
    return _covering_frames(cleaned_dir, start, end)[1]


def read_cleaned(
    cleaned_dir: Path, channel: str, start: float, end: float
) -> np.ndarray:
    """Cleaned strain ``(time,)`` over ``[start, end)`` from GWF files.

    Raises:
        ValueError: the files do not cover the span without a gap.
    """
    from deepclean_io.gwf import read_gwf

    frames, cursor = _covering_frames(cleaned_dir, start, end)
    if not math.isclose(cursor, end):
        raise ValueError(
            f"cleaned frames in {cleaned_dir} cover [{gps_text(start)}, "
            f"{gps_text(cursor)}) of [{gps_text(start)}, {gps_text(end)}); "
            "run deepclean-clean clean over the whole span first"
        )
    pieces = []
    for path, first, last in frames:
        data, t0, rate = read_gwf(path, [channel])
        lo = round((first - t0) * rate)
        hi = round((last - t0) * rate)
        pieces.append(data[channel][lo:hi])
    return np.concatenate(pieces)


def deepclean_label(metadata: dict) -> str:
    """DeepClean's row in the report: ``"DeepClean"``, or
    ``"NOMAD + DeepClean"`` for a model trained after a classical stage
    (its cleaned frames hold the hybrid's output)."""
    subtracted = metadata.get("subtracted")
    return "DeepClean" if subtracted is None else f"{subtracted} + DeepClean"


def check_out_of_sample(
    start: float,
    end: float,
    fitted: dict[str, tuple[float, float] | list[float] | None],
    remedy: str,
) -> None:
    """Refuse to evaluate on data a method was fitted on.

    A method scores better on its own training data than on new data
    (on the simulated nonlinear coupling family one carrier-modulation
    network's excess over ideal is several times smaller there, see
    ``benchmarks/families.py --in-sample``), so a report over such a
    stretch would overstate it.

    Args:
        start: GPS start of the evaluated stretch, s.
        end: GPS end, s.
        fitted: GPS ``(start, end)`` of each span a method was fitted or
            validated on, by what it is (``None``: not recorded).
        remedy: What the user can do instead, for the error message.

    Raises:
        ValueError: the stretch overlaps one of them.
    """
    for what, span in fitted.items():
        if span is None:
            continue
        first, last = span
        if start < last and first < end:
            raise ValueError(
                f"the evaluated stretch [{gps_text(start)}, {gps_text(end)})"
                f" overlaps {what} [{gps_text(first)}, {gps_text(last)}): "
                "a method scores better on the data it was fitted on, so "
                f"the report would overstate it; {remedy}"
            )


def assess(
    model: Path,
    data_file: Path,
    cleaned_dir: Path,
    output_dir: Path,
    start: float,
    end: float,
    train_file: Path,
    mains_channel: str,
    train_start: float | None = None,
    train_end: float | None = None,
    channel_suffix: str = "_DC",
    fftlength: float = 4.0,
    wiener_fftlength: float = 2.0,
    nomad: NomadSettings = NomadSettings(),
    wandb: WandbSettings | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluate DeepClean on ``[start, end)`` and write the report.

    Args:
        model: the exported ``model.pt`` that cleaned the data (its
            metadata gives channels and bands).
        data_file: raw data (gwpy HDF5) holding the stretch, also for a
            hybrid model (the classical stage's residual files are
            refused); a simulated file's truth beside it adds the ideal
            and the injections.
        cleaned_dir: folder of the ``*_DEEPCLEAN-*.gwf`` files.
        output_dir: folder of ``report.html``, PNGs and
            ``evaluation.json``.
        start: GPS start of the evaluated stretch, s.
        end: GPS end, s.
        train_file: data on which the Wiener and NOMAD baselines are
            fitted (normally the model's training data).
        mains_channel: the mains monitor among the model's witnesses
            (the couplings registry's line witness), whose products with
            every other witness are the inputs the ``Wiener + products``
            baseline adds, and NOMAD's noise witness (the others are its
            modulation witnesses).
        train_start: GPS start of the baselines' training span; file
            start when None.
        train_end: GPS end of that span; file end when None. Neither
            that span nor the model's training and validation spans (its
            metadata's) may overlap ``[start, end)``.
        channel_suffix: cleaned strain is ``{strain}{suffix}``.
        fftlength: Welch segment length of the evaluation ASDs, s.
        wiener_fftlength: Welch segment length of the Wiener fit, s.
        nomad: how the NOMAD baseline is trained
            (:class:`~deepclean_clean.nomad.NomadSettings`).
        wandb: log the headline numbers and the HTML report as a W&B run
            (job type ``evaluate``) when enabled.

    Returns:
        The headline numbers per version (in-band ASD ratio, range gain,
        excess over ideal ...), also in ``evaluation.json``.

    Raises:
        ValueError: the stretch overlaps a span the model or the
            baselines were fitted on, or the mains channel is not one of
            the model's witnesses.
    """
    from deepclean_clean.evaluate import evaluate
    from deepclean_clean.nomad import nomad_baseline
    from deepclean_clean.report import write_report
    from deepclean_clean.wiener import find_mains, wiener_baselines
    from deepclean_engine.exported import load_exported_model
    from deepclean_io.hdf5 import check_subtracted, file_info, read_timeseries
    from deepclean_io.truth import read_truth

    infos = {path: file_info(path) for path in (data_file, train_file)}
    for path, info in infos.items():
        check_subtracted(
            path,
            info,
            None,
            "the evaluation (it measures every method against the raw strain)",
            "pass the fetched files, not a classical stage's residuals",
        )
    _, metadata = load_exported_model(model)
    outside = "evaluate a stretch outside it (--start, --end)"
    check_out_of_sample(
        start,
        end,
        {
            "the model's training span": metadata.get("train_span"),
            "the model's validation span": metadata.get("valid_span"),
        },
        outside,
    )
    train_info = infos[train_file]
    check_out_of_sample(
        start,
        end,
        {
            "the baselines' training span": (
                train_info.t0 if train_start is None else train_start,
                train_info.end if train_end is None else train_end,
            )
        },
        f"{outside} or fit the baselines elsewhere (--train_file, "
        "--train_start, --train_end)",
    )
    strain_channel = metadata["strain_channel"]
    witnesses = list(metadata["witnesses"])
    bands = metadata["bands"]
    mains_index = find_mains(witnesses, mains_channel)
    data, t0, sample_rate = read_timeseries(
        data_file, [strain_channel, *witnesses], start, end, dtype=np.float64
    )
    train, _, _ = read_timeseries(
        train_file,
        [strain_channel, *witnesses],
        train_start,
        train_end,
        dtype=np.float64,
    )
    cleaned = {
        deepclean_label(metadata): read_cleaned(
            cleaned_dir, f"{strain_channel}{channel_suffix}", start, end
        )
    }
    spans = (
        np.stack([train[w] for w in witnesses]),
        train[strain_channel],
        np.stack([data[w] for w in witnesses]),
        data[strain_channel],
    )
    cleaned.update(
        wiener_baselines(
            *spans,
            sample_rate,
            bands,
            mains_index,
            fftlength=wiener_fftlength,
        )
    )
    cleaned.update(
        nomad_baseline(*spans, sample_rate, bands, mains_index, nomad)
    )
    truth = read_truth(data_file, start, end)
    evaluation = evaluate(
        data[strain_channel],
        cleaned,
        sample_rate,
        bands,
        start=t0,
        ideal=None if truth is None else truth.ideal,
        injections=() if truth is None else truth.templates,
        fftlength=fftlength,
    )
    report = write_report(
        output_dir,
        evaluation,
        title=f"DeepClean {strain_channel} {gps_text(start)}-{gps_text(end)}",
    )
    headline = evaluation.headline()
    log_run(
        wandb or WandbSettings(),
        output_dir,
        "evaluate",
        {
            f"{version}/{metric}": value
            for version, numbers in headline.items()
            for metric, value in numbers.items()
            if value is not None and math.isfinite(value)
        },
        html={"report": report},
    )
    print(f"report: {report}")
    print(json.dumps(headline, indent=2))
    return headline
