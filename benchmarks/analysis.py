"""Speed of the witness analysis of a reference-size model.

Simulates a stretch of the default H1 60 Hz problem (21 witnesses and
the 2 decoys at 4096 Hz, or uses --data), exports an untrained model of
the chosen architecture (the analysis costs the same whatever the
weights) and runs ``deepclean-train analyze`` on one span of
``--duration`` s: saliency on 256 windows, linear and bilinear coherence,
and the ablation (two cleanings of the span's last 256 s per witness).
Prints the seconds of each part and of the whole command (reading and writing
included), quiet and next to a competing CPU-bound process, against the
target of 2 minutes for 1024 s on 2 CPU cores.

Usage: python benchmarks/analysis.py [--duration 1024] [--data FILE
       [--all-channels]] [--architecture reference|dilated|modulated]
       [--no-load]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clean import STRAIN, demo_data, export_untrained
from models import ARCHITECTURES
from online import LOAD, stop

from deepclean.couplings import resolve
from deepclean_engine import load_cleaning_engine
from deepclean_engine.threads import choose_threads
from deepclean_io.hdf5 import file_info
from deepclean_train.analysis import (
    AnalysisSettings,
    ModelInputs,
    ablate,
    span_tail,
    window_saliency,
    witness_coherence,
)
from deepclean_train.analyze import analyze, read_spans

TARGET = "target: 1024 s in under 2 minutes on 2 CPU cores"


def time_parts(model: Path, data: Path, span: tuple[float, float]) -> None:
    """Seconds of saliency, coherence and ablation on ``span``."""
    engine, metadata = load_cleaning_engine(model)
    inputs = ModelInputs.from_metadata(metadata)
    settings = AnalysisSettings()
    config = engine.config
    spans = {"span": span}
    (read,) = read_spans([data], inputs, spans, config.sample_rate).values()
    began = time.perf_counter()
    window_saliency(
        engine.model,
        read,
        config.kernel_size,
        config.sample_rate,
        config.bands,
        settings.windows,
        96.0,
    )
    saliency = time.perf_counter() - began
    began = time.perf_counter()
    fftlength = settings.span_fftlength(span[1] - span[0])
    witness_coherence(
        read, config.sample_rate, config.bands, fftlength, 10.0, None
    )
    coherence = time.perf_counter() - began
    began = time.perf_counter()
    tail = span_tail(read, settings.ablation_duration, config.sample_rate)
    ablate(engine, tail, None, fftlength, progress=False)
    ablation = time.perf_counter() - began
    print(
        f"  saliency {saliency:.1f} s, coherence {coherence:.1f} s, "
        f"ablation {ablation:.1f} s ({2 * len(inputs.witnesses)} cleanings "
        f"of {settings.ablation_duration:g} s)"
    )


def time_command(
    model: Path, data: Path, span: tuple[float, float], output: Path
) -> float:
    began = time.perf_counter()
    analyze(model, [data], output, spans={"span": span}, progress=False)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=1024.0)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument(
        "--architecture", choices=sorted(ARCHITECTURES), default="reference"
    )
    parser.add_argument(
        "--all-channels",
        action="store_true",
        help="with --data: every channel of the file besides strain is a "
        "witness (e.g. a file with the simulated candidate pool)",
    )
    parser.add_argument(
        "--no-load",
        action="store_true",
        help="skip the run next to a competing CPU-bound process",
    )
    args = parser.parse_args()
    threads = choose_threads()
    resolved = resolve("H1", "60Hz")
    witnesses = list(resolved.witnesses)
    if args.all_channels and args.data:
        channels = file_info(args.data).channels
        witnesses = [name for name in channels if name != STRAIN]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = demo_data(args.data, folder, args.duration, witnesses)
        model = export_untrained(args.architecture, witnesses, None, folder)
        start = file_info(data).t0
        span = (start, start + args.duration)
        print(
            f"{args.architecture} model, {len(witnesses)} witnesses, "
            f"{args.duration:g} s at 4096 Hz, {threads} threads"
        )
        time_parts(model, data, span)
        quiet = time_command(model, data, span, folder / "quiet")
        print(f"  deepclean-train analyze: {quiet:.1f} s ({TARGET})")
        if args.no_load:
            return
        competitor = subprocess.Popen(
            [sys.executable, "-c", LOAD],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            loaded = time_command(model, data, span, folder / "loaded")
        finally:
            stop(competitor)
        print(
            f"  next to a competing process: {loaded:.1f} s "
            f"({quiet / loaded:.0%} of the quiet speed)"
        )


if __name__ == "__main__":
    main()
