"""NOMAD's streaming cost: its coupling-filter bank against ours.

Fits NOMAD (as the hybrid's classical stage does: the mains monitor as
noise witness, the other witnesses as modulation witnesses) on the first
256 s of the simulated H1 60 Hz problem (or takes the NOMAD model a
hybrid ``--model`` carries), then streams the next seconds and times:

- the coupling-filter bank alone, NOMAD's ``AdditiveSOSBank`` (one
  ``scipy.signal.sosfilt`` call per section) against
  ``deepclean_clean.biquads.SummedBiquads``, on 1 s chunks (the online
  cleaner) and on one long chunk (offline), with the largest difference
  of their outputs;
- NOMAD's estimate of one second as the cleaners get it
  (``deepclean_clean.nomad.NomadEstimates``), median and 99th percentile.

Usage: python benchmarks/nomad_stream.py [--model HYBRID_MODEL] [--seconds 60]
       [--data FILE]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from clean import STRAIN, demo_data

from deepclean.couplings import resolve
from deepclean_clean.biquads import SummedBiquads
from deepclean_clean.nomad import NomadEstimates, fit_nomad
from deepclean_io import read_timeseries

BANDS = [(55.0, 65.0)]
FIT_SECONDS = 256.0


def per_chunk_ms(bank, signals: np.ndarray, chunk: int) -> np.ndarray:
    """Milliseconds per call of ``bank.process_summed`` on consecutive
    chunks of ``chunk`` samples."""
    times = []
    for start in range(0, len(signals) - chunk + 1, chunk):
        began = time.perf_counter()
        bank.process_summed(signals[start : start + chunk])
        times.append(time.perf_counter() - began)
    return 1e3 * np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    from nomad.core.sosbank import AdditiveSOSBank

    problem = resolve("H1", "60Hz")
    witnesses = list(problem.witnesses)
    with tempfile.TemporaryDirectory() as tmp:
        data = demo_data(
            args.data, Path(tmp), FIT_SECONDS + args.seconds + 1, witnesses
        )
        series, t0, rate = read_timeseries(data, [STRAIN, *witnesses])
    strain = series[STRAIN]
    rows = np.stack([series[name] for name in witnesses])
    fit = round(FIT_SECONDS * rate)
    if args.model is None:
        began = time.perf_counter()
        model = fit_nomad(
            rows[:, :fit],
            strain[:fit],
            rate,
            BANDS,
            witnesses.index(problem.line_witness),
        )
        print(
            f"NOMAD fitted on {FIT_SECONDS:g} s in "
            f"{time.perf_counter() - began:.1f} s"
        )
    else:
        from deepclean_clean.classical import embedded_nomad

        model = embedded_nomad(args.model)
    signals_count, sections, _ = model.coupling_sos.shape
    print(
        f"{signals_count} modulated signals x {sections} sections at "
        f"{model.fs} Hz; {args.seconds} s streamed"
    )

    signals = np.random.default_rng(0).standard_normal(
        (args.seconds * model.fs, signals_count)
    )
    outputs = {}
    print(f"{'bank':>22} {'1 s chunks (ms)':>18} {'all at once (ms)':>17}")
    for name, make in (
        ("NOMAD AdditiveSOSBank", AdditiveSOSBank),
        ("SummedBiquads", SummedBiquads),
    ):
        chunks = per_chunk_ms(make(model.coupling_sos), signals, model.fs)
        bank = make(model.coupling_sos)
        began = time.perf_counter()
        outputs[name] = bank.process_summed(signals)
        whole = 1e3 * (time.perf_counter() - began)
        print(f"{name:>22} {np.median(chunks):>18.2f} {whole:>17.1f}")
    expected, computed = outputs.values()
    print(
        "largest difference / largest output: "
        f"{np.abs(computed - expected).max() / np.abs(expected).max():.1e}"
    )

    estimates = NomadEstimates(model, len(witnesses), rate, BANDS)
    second = round(rate)
    times = []
    for index in range(args.seconds):
        span = slice(fit + index * second, fit + (index + 1) * second)
        began = time.perf_counter()
        estimates.over(
            strain[span],
            rows[:, span],
            round(t0 * rate) + span.start,
        )
        times.append(time.perf_counter() - began)
    times = 1e3 * np.array(times[1:])
    print(
        f"NOMAD's estimate of one second (NomadEstimates): median "
        f"{np.median(times):.2f} ms, p99 {np.percentile(times, 99):.2f} ms"
    )


if __name__ == "__main__":
    main()
