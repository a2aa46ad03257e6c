"""Cost of the classical baselines, the evaluation and the report, on CPU.

Synthetic data of the reference size (the earlier DeepClean's 60 Hz
problem: 21 witnesses, the mains monitor first, 4096 Hz): white
witnesses, strain = white background + a witness band-passed to the
cleaning band, and one sine-Gaussian injection every 32 s. Both Wiener
filters and NOMAD are fitted on a training span and clean the evaluated
span; then the evaluation and the report run on it. Prints wall seconds
of each step and seconds of data handled per wall second.

Usage: python benchmarks/evaluate.py [--train 1024] [--test 512]
       [--sample-rate 4096] [--witnesses 21] [--threads 2]
"""

import argparse
import tempfile
import time

import numpy as np
import scipy.signal
import torch

from deepclean_clean.evaluate import evaluate
from deepclean_clean.nomad import nomad_baseline
from deepclean_clean.report import write_report
from deepclean_clean.wiener import wiener_baselines
from deepclean_io.truth import injection_template

GPS_START = 1_000_000_000.0
BANDS = [(55.0, 65.0)]
BACKGROUND_ASD = 1e-23  # strain / sqrt(Hz)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=float, default=1024.0, help="s")
    parser.add_argument("--test", type=float, default=512.0, help="s")
    parser.add_argument("--sample-rate", type=float, default=4096.0)
    parser.add_argument("--witnesses", type=int, default=21)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rate = args.sample_rate
    rng = np.random.default_rng(0)
    size = round((args.train + args.test) * rate)
    witnesses = rng.standard_normal((args.witnesses, size))
    sigma = BACKGROUND_ASD * np.sqrt(rate / 2)
    background = sigma * rng.standard_normal(size)
    coupling = scipy.signal.butter(
        4, BANDS[0], btype="bandpass", output="sos", fs=rate
    )
    strain = background + 3 * sigma * scipy.signal.sosfilt(
        coupling, witnesses[1]
    )
    split = round(args.train * rate)
    test_start = GPS_START + args.train
    templates = []
    for time_offset in np.arange(16.0, args.test - 16.0, 32.0):
        template = injection_template(
            {
                "type": "sine_gaussian",
                "time": test_start + time_offset,
                "frequency": 60.0,
                "q": 10.0,
                "hrss": 20 * BACKGROUND_ASD,
                "phase": 0.0,
            },
            test_start,
            test_start + args.test,
            rate,
        )
        first = round((template.start - test_start) * rate) + split
        strain[first : first + template.waveform.size] += template.waveform
        background[first : first + template.waveform.size] += template.waveform
        templates.append(template)

    spans = (
        witnesses[:, :split],
        strain[:split],
        witnesses[:, split:],
        strain[split:],
    )
    began = time.perf_counter()
    cleaned = wiener_baselines(*spans, rate, BANDS, mains_index=0)
    wiener_seconds = time.perf_counter() - began
    began = time.perf_counter()
    cleaned.update(nomad_baseline(*spans, rate, BANDS, mains_index=0))
    nomad_seconds = time.perf_counter() - began

    began = time.perf_counter()
    evaluation = evaluate(
        strain[split:],
        cleaned,
        rate,
        BANDS,
        start=test_start,
        ideal=background[split:],
        injections=templates,
    )
    evaluate_seconds = time.perf_counter() - began

    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        write_report(folder, evaluation)
    report_seconds = time.perf_counter() - began

    handled = args.train + args.test
    print(
        f"{args.witnesses} witnesses at {rate:g} Hz, train {args.train:g} s, "
        f"test {args.test:g} s, {args.threads} threads"
    )
    print(
        f"Wiener fit + clean, both variants: {wiener_seconds:.1f} s "
        f"({handled / wiener_seconds:.0f} s of data / s)"
    )
    print(
        f"NOMAD fit + clean: {nomad_seconds:.1f} s "
        f"({handled / nomad_seconds:.0f} s of data / s)"
    )
    print(
        f"evaluate ({len(templates)} injections): {evaluate_seconds:.1f} s "
        f"({args.test / evaluate_seconds:.0f} s of data / s)"
    )
    print(f"write_report: {report_seconds:.1f} s")
    for name, numbers in evaluation.headline().items():
        print(f"  {name}: {numbers}")


if __name__ == "__main__":
    main()
