"""DeepClean against the classical baselines on four coupling families.

Each family is a simulation preset (``benchmarks/families/{name}.yaml``,
read with :func:`deepclean_data.simulation.load_simulation_config`, the
fields of ``SimulationConfig``):

- ``linear``: (a) the mains line only, through a transfer function;
- ``bilinear_drift``: (b) exactly bilinear mains x angular motion, with a
  slow drift of the linear gain that a witness channel records;
- ``nonlinear``: (c) mains x motion x motion and mains x ``|motion|``;
- ``weak_band``: (d) a weak coupling in 58-62 Hz with 16 uncoupled
  angular witnesses besides the decoys.

Per family and seed, 1536 s of H1 strain, the mains monitor, 20 ASC
witnesses and the simulator's extra channels (decoys, drift witness) are
simulated at 4096 Hz, with in-band sine-Gaussian injections every 32 s.
DeepClean trains with the reference config
(``projects/train/configs/reference.yaml``, through ``deepclean-train
fit``) on the first 896 s and validates on the next 128 s; the Wiener
filters (``deepclean_clean.wiener.wiener_baselines``) and NOMAD
(``deepclean_clean.nomad.nomad_baseline``) are fitted on the same first
1024 s. Every method cleans the last 512 s given 8 s of context either
side; the evaluation (``deepclean_clean.evaluate.evaluate``, ideal =
background + injections from the truth) scores the 504 s whose look-ahead
lies inside the file.

The ``witness floor`` row is the best any method can do: strain minus the
coupled noise as the recorded witnesses predict it for a cleaner that
knows the coupling exactly
(``deepclean_data.simulation.floor.simulated_file_floor``, its smoothers
fitted against the true motion on the first 1024 s), kept in the band.
What a method leaves beyond it is estimation error, not missing
information.

Prints one table, means over seeds, per family and method:

- ``excess``: median in-band ASD(cleaned) / ASD(ideal) - 1;
- ``removed``: share of the in-band coupled power removed, %;
- ``range``: BNS range gain over raw as a fraction of the gain of the
  in-band ideal (the ideal's ASD in the band, the raw ASD elsewhere);
- ``OOB``: ASD(cleaned) / ASD(raw) 10-20 Hz either side of the band;
- ``inj``: the largest, over injections, residual projected onto an
  injection as a fraction of its amplitude: ``|mf_c / opt_c - mf_i /
  opt_i|`` with the matched-filter and optimal SNRs ``mf``, ``opt`` that
  ``evaluate`` computes in the cleaned (``c``) and ideal (``i``) strain
  (``mf / opt`` is the amplitude the template measures, 1 for the
  injection alone);
- ``train s``, ``clean s``: wall seconds; the baselines' functions fit
  and clean together (both Wiener variants in one call), shown as
  ``train s``;

each metric marked against the issue's targets (first row), and whether
DeepClean beats Wiener + products and NOMAD on the excess.

Usage: python benchmarks/families.py [--families linear ...] [--seeds 2]
       [--epochs N] [--threads N] [--products] [--quick]
       [--ablation "NAME=--model.fftlength 2.0" ...] [--no-baselines]
       [--hybrid] [--spans 896 128 512] [--first-seed 0] [--plot PNG]
       [--in-sample]

``--products`` adds a row for DeepClean trained with the mains monitor x
every other witness as extra inputs (``data.product_witness``);
``--ablation`` adds a row for DeepClean trained with further
``deepclean-train fit`` options (repeatable); ``--hybrid`` adds the
classical-then-DeepClean row of every DeepClean version ("NOMAD + ..."):
NOMAD, fitted on the first 1024 s, cleans the whole file (the pipeline's
``classical_stage = nomad``), and DeepClean trains on and cleans what it
leaves;
``--no-baselines`` skips the Wiener filters and NOMAD (to compare
DeepClean variants quickly). ``--spans`` replaces the training,
validation and test durations (s): more training data shrinks the
estimation error of the methods it limits, which tells a method's limit
from the data's (witness sensor noise; the ``*_exact`` presets remove
it).

``--in-sample`` also scores every DeepClean version on the last
``TEST - 8`` s of its own training span and prints, after the table,
its excess over ideal there against the test span's: a gap is
overfitting, both high is underfitting.

``--plot PNG`` also draws the table as bars, a row of panels per
family (excess, coupled power left, range gain, each against its
target, the witness floor in grey).

``--quick`` is a smoke run: one seed, a quarter of every span, one short
epoch. The full run takes 20-40 min on 2 CPU cores.
"""

import argparse
import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deepclean.couplings import resolve
from deepclean_clean.classical import subtract_classical
from deepclean_clean.evaluate import (
    IDEAL,
    RAW,
    Evaluation,
    band_mask,
    bns_range,
    evaluate,
)
from deepclean_clean.nomad import nomad_baseline
from deepclean_clean.wiener import find_mains, wiener_baselines
from deepclean_data.simulate import simulate
from deepclean_data.simulation import load_simulation_config
from deepclean_data.simulation.floor import simulated_file_floor
from deepclean_engine import load_cleaning_engine
from deepclean_engine.threads import THREADS_VARIABLE, configure_threads
from deepclean_io import file_info, read_timeseries
from deepclean_io.truth import read_truth
from deepclean_train.cli import run as train

PRESETS = Path(__file__).parent / "families"
FAMILIES = ("linear", "bilinear_drift", "nonlinear", "weak_band")
# twins with noiseless angular witnesses, run only when named
DIAGNOSTICS = ("bilinear_drift_exact", "nonlinear_exact")
TRAIN_CONFIG = (
    Path(__file__).parents[1] / "projects" / "train" / "configs"
) / "reference.yaml"
STRAIN = "H1:GDS-CALIB_STRAIN"
PROBLEM = resolve("H1", "60Hz")
WITNESSES = list(PROBLEM.witnesses)
MAINS = PROBLEM.line_witness
SAMPLE_RATE = 4096.0
GPS_START = 1_250_000_000
# Training, validation and test spans, s.
SPANS = (896.0, 128.0, 512.0)
# Seconds of data each method sees either side of the evaluated span.
CONTEXT = 8.0
# DeepClean trained as it ships, and the ablations --products adds.
VARIANTS = {"DeepClean": []}
PRODUCTS = {"DeepClean + products": ["--data.product_witness", MAINS]}
# Each DeepClean version trained on, and cleaning, the strain NOMAD leaves
# (--hybrid) is named with this prefix.
HYBRID_PREFIX = "NOMAD + "
HYBRID = f"{HYBRID_PREFIX}DeepClean"
# Strain minus the coupled noise as well as the recorded witnesses
# predict it, knowing the coupling exactly: what no method can beat.
FLOOR = "witness floor"
METHODS = (
    *VARIANTS,
    *PRODUCTS,
    "Wiener",
    "Wiener + products",
    "NOMAD",
    HYBRID,
    FLOOR,
)


@dataclasses.dataclass(frozen=True)
class Target:
    """A target of the issue on one metric.

    Attributes:
        name: Column heading.
        text: The target as printed.
        met: Whether a value meets it.
        scale: Factor from the metric to the printed value.
    """

    name: str
    text: str
    met: Callable[[float], bool]
    scale: float = 1.0


TARGETS = {
    "excess": Target("excess", "<= 0.03", lambda v: v <= 0.03),
    "removed": Target(
        "removed %", ">= 99.9", lambda v: v >= 0.999, scale=100.0
    ),
    "range": Target("range/ideal", ">= 0.95", lambda v: v >= 0.95),
    "oob": Target("OOB", "1 +- 0.005", lambda v: abs(v - 1) <= 0.005),
    "injection": Target("inj", "<= 0.05", lambda v: v <= 0.05),
}


def injection_residual(evaluation: Evaluation, name: str) -> float:
    """Largest residual projected onto an injection, per unit amplitude.

    ``|mf / opt (name) - mf / opt (ideal)|`` over the injections that
    :func:`evaluate` measured (``mf / opt`` is the template's amplitude
    estimate, whitened by each version's own PSD); NaN without
    injections.
    """
    pairs = zip(
        evaluation.injections.get(name, []),
        evaluation.injections.get(IDEAL, []),
        strict=True,
    )
    residuals = [
        abs(
            cleaned.matched_filter_snr_cleaned / cleaned.optimal_snr_cleaned
            - ideal.matched_filter_snr_cleaned / ideal.optimal_snr_cleaned
        )
        for cleaned, ideal in pairs
    ]
    return max(residuals, default=math.nan)


def range_fraction(evaluation: Evaluation) -> dict[str, float]:
    """Range gain of every version over that of the in-band ideal."""
    inside = band_mask(evaluation.frequencies, evaluation.bands)
    in_band_ideal = np.where(
        inside, evaluation.asds[IDEAL], evaluation.asds[RAW]
    )
    best = (
        bns_range(evaluation.frequencies, in_band_ideal, evaluation.fmin)
        / evaluation.ranges[RAW]
        - 1
    )
    return {name: gain / best for name, gain in evaluation.range_gains.items()}


def train_deepclean(
    fname: Path,
    witnesses: list[str],
    band: tuple[float, float],
    spans: tuple[float, float, float],
    output_dir: Path,
    options: list[str],
) -> Path:
    """Train the reference model with ``deepclean-train fit``.

    Args:
        fname: Simulated data file.
        witnesses: Witness channels, in the order the model sees them.
        band: Cleaning band, Hz.
        spans: Training, validation and test durations, s.
        output_dir: The run's folder.
        options: Further ``deepclean-train fit`` options.

    Returns:
        The exported ``model.pt``.
    """
    train(
        [
            "fit",
            "--config",
            str(TRAIN_CONFIG),
            "--data.fname",
            str(fname),
            "--data.strain_channel",
            STRAIN,
            "--data.witnesses",
            json.dumps(witnesses),
            "--data.sample_rate",
            str(SAMPLE_RATE),
            "--data.bands",
            json.dumps([band]),
            "--data.train_duration",
            str(spans[0]),
            "--data.valid_duration",
            str(spans[1]),
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            str(output_dir),
            *options,
        ]
    )
    return output_dir / "model.pt"


def clean_deepclean(
    model: Path, strain: np.ndarray, witnesses: np.ndarray, t0: float
) -> tuple[np.ndarray, float]:
    """Clean strain with an exported model and the cleaning engine.

    Args:
        model: Exported ``model.pt``.
        strain: Raw strain, ``(time,)``.
        witnesses: Witnesses in the model's order, ``(channels, time)``.
        t0: GPS time of the first sample, s.

    Returns:
        ``(cleaned, t0)``: the cleaned whole frames, ``(time,)``, and the
        GPS time of their first sample, s.
    """
    engine, _ = load_cleaning_engine(model)
    segment = engine.clean(
        torch.from_numpy(strain), torch.from_numpy(witnesses), t0
    )
    return segment.cleaned.numpy(), segment.t0


def in_sample_excess(
    model: Path,
    fname: Path,
    source: Path,
    witnesses: list[str],
    band: tuple[float, float],
    start: float,
    end: float,
) -> float:
    """Excess over ideal of a model on a stretch of its training data.

    Args:
        model: Exported ``model.pt``.
        fname: Simulated data file (raw strain and truth).
        source: The file the model trained on and cleans (``fname``, or
            the classical stage's residual file for a hybrid).
        witnesses: Witness channels, in the model's order.
        band: Cleaning band, Hz.
        start: GPS start of the scored stretch, s (inside the training
            span, with :data:`CONTEXT` of data either side in the file).
        end: Its GPS end, s.
    """
    data, t0, _ = read_timeseries(
        source,
        [STRAIN, *witnesses],
        start - CONTEXT,
        end + CONTEXT,
        dtype=np.float64,
    )
    cleaned, cleaned_t0 = clean_deepclean(
        model,
        data[STRAIN],
        np.stack([data[w] for w in witnesses]).astype(np.float32),
        t0,
    )
    raw, _, _ = read_timeseries(fname, [STRAIN], start, end, dtype=np.float64)
    first = round((start - cleaned_t0) * SAMPLE_RATE)
    truth = read_truth(fname, start, end)
    evaluation = evaluate(
        raw[STRAIN],
        {"in-sample": cleaned[first : first + raw[STRAIN].size]},
        SAMPLE_RATE,
        [band],
        start=start,
        ideal=truth.ideal,
    )
    return evaluation.excess_over_ideal["in-sample"]


def nomad_residual_file(
    fname: Path,
    witnesses: list[str],
    band: tuple[float, float],
    fit_end: float,
    folder: Path,
) -> Path:
    """The classical stage's residual of a simulated file.

    NOMAD is fitted on the file's start up to ``fit_end`` (the span the
    other methods train on) and cleans the whole file
    (:func:`deepclean_clean.classical.subtract_classical`, as
    ``classical_stage = nomad`` does in the pipeline), so DeepClean
    trains on, and later cleans, what the classical filter leaves.

    Args:
        fname: Simulated data file.
        witnesses: Witness channels, in the order the model sees them.
        band: Cleaning band, Hz.
        fit_end: GPS end of NOMAD's training span, s.
        folder: Where the residual goes (same file name).

    Returns:
        The residual file: the strain cleaned by NOMAD, the witnesses
        unchanged.
    """
    subtract_classical(
        [fname],
        folder,
        STRAIN,
        witnesses,
        MAINS,
        [band],
        file_info(fname).t0,
        fit_end,
        progress=False,
    )
    return folder / fname.name


def floor_coupled(
    fname: Path, band: tuple[float, float], fit_end: float
) -> np.ndarray:
    """The coupled strain as well as a simulated file's witnesses allow.

    :func:`deepclean_data.simulation.floor.simulated_file_floor`, its
    smoothers fitted on the file's start up to ``fit_end`` (the span the
    other methods train on), kept in the cleaning band (an FFT mask over
    the file) as every method cleans only there.

    Args:
        fname: The simulated file.
        band: Cleaning band, Hz.
        fit_end: GPS end of the fit, s.

    Returns:
        The estimate of the coupled strain over the file, ``(time,)``.
    """
    coupled, _ = simulated_file_floor(fname, fit_end)
    spectrum = np.fft.rfft(coupled)
    frequencies = np.fft.rfftfreq(coupled.size, 1 / SAMPLE_RATE)
    spectrum[~band_mask(frequencies, [band])] = 0
    return np.fft.irfft(spectrum, n=coupled.size)


def run_family(
    name: str,
    seed: int,
    spans: tuple[float, float, float],
    options: list[str],
    variants: dict[str, list[str]],
    folder: Path,
    baselines: bool = True,
    hybrid: bool = False,
    in_sample: bool = False,
) -> dict[str, dict[str, float]]:
    """Simulate, train, clean and evaluate one family for one seed.

    Args:
        name: Family preset.
        seed: Simulation seed.
        spans: Training, validation and test durations, s.
        options: Further ``deepclean-train fit`` options.
        variants: DeepClean versions to train, by name: their own
            ``deepclean-train fit`` options (ablations).
        folder: Scratch folder.
        baselines: Also fit and clean with the Wiener filters and NOMAD.
        hybrid: Also train and clean every DeepClean version after NOMAD
            (:func:`nomad_residual_file`), the rows named with
            :data:`HYBRID_PREFIX`; their ``train`` seconds include
            NOMAD's fit and cleaning.
        in_sample: Also score every DeepClean version on the last
            ``spans[2] - CONTEXT`` s of its training span
            (:func:`in_sample_excess`), metric ``"in_sample"``.

    Returns:
        Per version (methods and ``"ideal"``), each metric of
        :data:`TARGETS` (those that apply), ``"in_sample"`` (DeepClean
        versions, with ``in_sample``) and the wall seconds ``"train"``
        and ``"clean"``.
    """
    config = load_simulation_config(PRESETS / f"{name}.yaml")
    band = config.coupling.band
    train_end = GPS_START + spans[0] + spans[1]
    end = train_end + spans[2]
    fname = simulate(
        folder,
        GPS_START,
        end - GPS_START,
        STRAIN,
        WITNESSES,
        MAINS,
        sample_rate=SAMPLE_RATE,
        seed=seed,
        config=config,
        progress=False,
    )
    witnesses = [c for c in file_info(fname).channels if c != STRAIN]
    channels = [STRAIN, *witnesses]
    train, _, _ = read_timeseries(
        fname, channels, GPS_START, train_end, dtype=np.float64
    )
    test, t0, _ = read_timeseries(
        fname, channels, train_end - CONTEXT, end, dtype=np.float64
    )
    train_witnesses = np.stack([train.pop(w) for w in witnesses])
    test_witnesses = np.stack([test[w] for w in witnesses])
    times = {}
    # DeepClean versions' excess in their own training span (in_sample)
    fitted = {}

    versions = {}
    sources = {"": (fname, test[STRAIN])}
    if hybrid:
        began = time.perf_counter()
        residual_fname = nomad_residual_file(
            fname, witnesses, band, train_end, folder / "nomad-residual"
        )
        classical_seconds = time.perf_counter() - began
        residual, _, _ = read_timeseries(
            residual_fname, [STRAIN], train_end - CONTEXT, end
        )
        sources[HYBRID_PREFIX] = (residual_fname, residual[STRAIN])
    for prefix, (data_fname, strain) in sources.items():
        for variant, variant_options in variants.items():
            version = f"{prefix}{variant}"
            began = time.perf_counter()
            model = train_deepclean(
                data_fname,
                witnesses,
                band,
                spans,
                folder / version.replace(" ", "").replace("+", "-"),
                [*options, *variant_options],
            )
            seconds = time.perf_counter() - began
            if prefix:
                seconds += classical_seconds
            times[version] = {"train": seconds}
            began = time.perf_counter()
            cleaned, cleaned_t0 = clean_deepclean(
                model, strain, test_witnesses.astype(np.float32), t0
            )
            times[version]["clean"] = time.perf_counter() - began
            versions[version] = cleaned
            if in_sample:
                fitted[version] = in_sample_excess(
                    model,
                    fname,
                    data_fname,
                    witnesses,
                    band,
                    GPS_START + spans[0] - (spans[2] - CONTEXT),
                    GPS_START + spans[0],
                )

    # where DeepClean's cleaned span starts in the test arrays
    offset = round((cleaned_t0 - t0) * SAMPLE_RATE)
    for baseline in (wiener_baselines, nomad_baseline) if baselines else ():
        began = time.perf_counter()
        results = baseline(
            train_witnesses,
            train[STRAIN],
            test_witnesses,
            test[STRAIN],
            SAMPLE_RATE,
            [band],
            find_mains(witnesses, MAINS),
        )
        seconds = time.perf_counter() - began
        for key, series in results.items():
            versions[key] = series[offset : offset + cleaned.size]
            times[key] = {"train": seconds}

    began = time.perf_counter()
    coupled = floor_coupled(fname, band, train_end)
    test_coupled = coupled[round((t0 - GPS_START) * SAMPLE_RATE) :]
    versions[FLOOR] = (test[STRAIN] - test_coupled)[
        offset : offset + cleaned.size
    ]
    times[FLOOR] = {"train": time.perf_counter() - began}

    first = round((train_end - cleaned_t0) * SAMPLE_RATE)
    last = round((end - CONTEXT - cleaned_t0) * SAMPLE_RATE)
    if first < 0 or last > cleaned.size:
        raise RuntimeError(
            f"DeepClean cleaned [{cleaned_t0}, "
            f"{cleaned_t0 + cleaned.size / SAMPLE_RATE}), not the "
            f"evaluated span [{train_end}, {end - CONTEXT}); raise CONTEXT"
        )
    truth = read_truth(fname, train_end, end - CONTEXT)
    raw = test[STRAIN][
        round((train_end - t0) * SAMPLE_RATE) : round(
            (end - CONTEXT - t0) * SAMPLE_RATE
        )
    ]
    evaluation = evaluate(
        raw,
        {key: series[first:last] for key, series in versions.items()},
        SAMPLE_RATE,
        [band],
        start=train_end,
        ideal=truth.ideal,
        injections=truth.templates,
    )
    fractions = range_fraction(evaluation)
    metrics = {
        IDEAL: {
            "range": fractions[IDEAL],
            "oob": evaluation.ratios[IDEAL].out_of_band,
        }
    }
    for key in versions:
        metrics[key] = {
            "excess": evaluation.excess_over_ideal[key],
            "removed": evaluation.coupled_power_removed[key],
            "range": fractions[key],
            "oob": evaluation.ratios[key].out_of_band,
            "injection": injection_residual(evaluation, key),
            **times[key],
        }
        if key in fitted:
            metrics[key]["in_sample"] = fitted[key]
    return metrics


def mean_over_seeds(
    results: list[dict[str, dict[str, float]]],
) -> dict[str, dict[str, float]]:
    """Each metric of each version averaged over seeds."""
    return {
        version: {
            metric: float(np.mean([seed[version][metric] for seed in results]))
            for metric in numbers
        }
        for version, numbers in results[0].items()
    }


def cell(metrics: dict[str, float], key: str, mark: bool) -> str:
    """One value with its pass/fail mark, or ``-`` when absent."""
    if key not in metrics or math.isnan(metrics[key]):
        return "-"
    target = TARGETS[key]
    text = f"{metrics[key] * target.scale:.4f}"
    if mark:
        text += " ok" if target.met(metrics[key]) else " NO"
    return text


def print_table(table: dict[str, dict[str, dict[str, float]]]) -> None:
    """The one table: targets, then every family's methods and ideal."""
    widths = (15, 18, 12, 12, 12, 12, 12, 8, 8)
    heading = ("family", "method", *(t.name for t in TARGETS.values()))
    heading += ("train s", "clean s")
    targets = ("target", "", *(t.text for t in TARGETS.values()), "", "")

    def line(cells: tuple[str, ...]) -> str:
        return " ".join(
            f"{text:>{width}}"
            for text, width in zip(cells, widths, strict=True)
        )

    print(line(heading))
    print(line(targets))
    for family, versions in table.items():
        extra = [v for v in versions if v not in (*METHODS, IDEAL)]
        for version in (*VARIANTS, *extra, *METHODS[len(VARIANTS) :], IDEAL):
            if version not in versions:
                continue
            metrics = versions[version]
            values = tuple(
                cell(metrics, key, version != IDEAL) for key in TARGETS
            )
            seconds = tuple(
                f"{metrics[key]:.0f}" if key in metrics else "-"
                for key in ("train", "clean")
            )
            print(line((family, version, *values, *seconds)))
        rivals = [v for v in ("Wiener + products", "NOMAD") if v in versions]
        if not rivals:
            continue
        for learned in ("DeepClean", HYBRID):
            if learned not in versions:
                continue
            ahead = all(
                versions[learned]["excess"] < versions[v]["excess"]
                for v in rivals
            )
            print(
                f"{family:>15} {learned} ahead of {' and '.join(rivals)} "
                f"on excess: {'ok' if ahead else 'NO'}"
            )


def print_in_sample(table: dict[str, dict[str, dict[str, float]]]) -> None:
    """Each DeepClean version's excess in its training span against the
    test span's (``--in-sample``)."""
    print("\nexcess over ideal, in-sample (training span) / test span")
    for family, versions in table.items():
        for version, metrics in versions.items():
            if "in_sample" in metrics:
                print(
                    f"{family:>15} {version:>24} {metrics['in_sample']:.4f} "
                    f"/ {metrics['excess']:.4f}"
                )


def plot_table(
    table: dict[str, dict[str, dict[str, float]]], path: Path
) -> None:
    """The table as bars: one row of panels per family.

    Panels: excess over ideal, the coupled power left (100 % minus
    removed; both on log axes, values below 1e-4 drawn at 1e-4) and the
    range gain over the ideal's, each with its target as a dashed line;
    the witness floor in grey.
    """
    from matplotlib.figure import Figure

    from deepclean_io.atomic import atomic_output

    panels = (
        ("excess", "excess over ideal", lambda v: v, 0.03, True),
        (
            "removed",
            "coupled power left, %",
            lambda v: 100 * (1 - v),
            0.1,
            True,
        ),
        ("range", "range gain / ideal's", lambda v: v, 0.95, False),
    )
    figure = Figure(
        figsize=(13, 0.4 * sum(len(v) for v in table.values()) + 2),
        layout="constrained",
    )
    axes = figure.subplots(len(table), len(panels), squeeze=False)
    for row, (family, versions) in zip(axes, table.items(), strict=True):
        methods = [v for v in versions if v != IDEAL]
        for axis, (key, title, value, target, log) in zip(
            row, panels, strict=True
        ):
            numbers = [value(versions[m][key]) for m in methods]
            if log:
                numbers = [max(n, 1e-4) for n in numbers]
                axis.set_xscale("log")
            axis.barh(
                methods,
                numbers,
                color=["grey" if m == FLOOR else "C0" for m in methods],
            )
            axis.axvline(target, color="red", linestyle="--")
            axis.invert_yaxis()
            axis.set_title(f"{family}: {title}", fontsize="medium")
            if axis is not row[0]:
                axis.set_yticklabels([])
    with atomic_output(path) as partial:
        figure.savefig(partial, dpi=100, format="png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--families",
        nargs="+",
        choices=FAMILIES + DIAGNOSTICS,
        default=list(FAMILIES),
    )
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="simulation seeds are FIRST_SEED, FIRST_SEED + 1, ...",
    )
    parser.add_argument(
        "--spans",
        type=float,
        nargs=3,
        default=SPANS,
        metavar=("TRAIN", "VALID", "TEST"),
        help="training, validation and test durations, s (DeepClean "
        "trains on TRAIN and validates on VALID, the baselines fit on both)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs (default: the reference config's)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: the cores other processes leave free)",
    )
    parser.add_argument(
        "--products",
        action="store_true",
        help="also train DeepClean with the mains x every other witness "
        "products as inputs (an ablation row)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: one seed, spans / 4, one epoch of 16 batches",
    )
    parser.add_argument(
        "--ablation",
        action="append",
        default=[],
        metavar="NAME=OPTIONS",
        help="also train DeepClean with these deepclean-train fit options, "
        'shown as row NAME, e.g. "fft 2s=--model.fftlength 2.0"',
    )
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the Wiener filters and NOMAD",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        help="also draw the table as bars, one row of panels per family, "
        "into this PNG",
    )
    parser.add_argument(
        "--hybrid",
        action="store_true",
        help=f"also train DeepClean on the strain NOMAD leaves and clean "
        f"after NOMAD (row {HYBRID!r})",
    )
    parser.add_argument(
        "--in-sample",
        action="store_true",
        help="also score every DeepClean version on the end of its own "
        "training span (over- or underfitting)",
    )
    arguments = parser.parse_args()
    ablations = {}
    for ablation in arguments.ablation:
        name, separator, text = ablation.partition("=")
        if not separator or not name.strip() or name.strip() in METHODS:
            parser.error(
                f"--ablation {ablation!r}: write NAME=OPTIONS with a NAME "
                f"other than {', '.join(METHODS)}"
            )
        ablations[name.strip()] = text.split()
    if arguments.threads is not None:
        # deepclean-train fit reads it when training starts
        os.environ[THREADS_VARIABLE] = str(arguments.threads)
    threads = configure_threads(arguments.threads)
    spans, seeds, options = tuple(arguments.spans), arguments.seeds, []
    epochs = arguments.epochs
    if arguments.quick:
        spans, seeds, epochs = tuple(s / 4 for s in spans), 1, 1
        options = ["--data.batches_per_epoch", "16"]
    if epochs is not None:
        options += ["--trainer.max_epochs", str(epochs)]
    began = time.perf_counter()
    table = {}
    with tempfile.TemporaryDirectory() as scratch:
        for family in arguments.families:
            results = []
            for seed in range(
                arguments.first_seed, arguments.first_seed + seeds
            ):
                folder = Path(scratch) / f"{family}-{seed}"
                variants = VARIANTS | (PRODUCTS if arguments.products else {})
                results.append(
                    run_family(
                        family,
                        seed,
                        spans,
                        options,
                        variants | ablations,
                        folder,
                        baselines=not arguments.no_baselines,
                        hybrid=arguments.hybrid,
                        in_sample=arguments.in_sample,
                    )
                )
            table[family] = mean_over_seeds(results)
    print(
        f"\n{seeds} seed(s), spans {spans} s, {threads} threads, "
        f"{time.perf_counter() - began:.0f} s"
    )
    print_table(table)
    if arguments.in_sample:
        print_in_sample(table)
    if arguments.plot is not None:
        plot_table(table, arguments.plot)
        print(f"plot: {arguments.plot}")


if __name__ == "__main__":
    main()
