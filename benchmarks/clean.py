"""End-to-end offline cleaning speed: read, predict, stitch, filter, write.

Simulates a stretch of the default H1 60 Hz problem (or uses --data),
exports an untrained model of the chosen architecture (speed does not
depend on the weights) and times ``deepclean_clean.clean.clean`` writing
long GWF files and 1 s GWF files. Prints seconds of data cleaned per wall
second next to the earlier implementation's 58-65x real time on 2 CPU
cores (~180x without I/O).

Usage: python benchmarks/clean.py [--duration 512] [--architecture
       reference|dilated|modulated] [--network-sample-rate 512] [--device cpu]
       [--threads N] [--batch-size 32] [--kernel-length 4 --stride 3.5]
       [--file-length 4096] [--repeats 2]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from models import (
    ARCHITECTURES,
    add_network_rate_argument,
    configured,
    network_rate_options,
)

from deepclean.couplings import resolve
from deepclean_clean.clean import clean
from deepclean_data.simulate import simulate
from deepclean_engine.threads import choose_threads
from deepclean_train.export import export_model

GPS_START = 1_250_000_000
STRAIN = "H1:GDS-CALIB_STRAIN"
EARLIER = "earlier implementation: 58-65x real time on 2 CPU cores"


def demo_data(
    data: Path | None, folder: Path, duration: float, witnesses: list[str]
) -> Path:
    """``data``, or ``duration`` s of the simulated H1 60 Hz problem with
    ``witnesses`` written into ``folder/data``."""
    return data or simulate(
        folder / "data",
        GPS_START,
        duration,
        STRAIN,
        witnesses,
        resolve("H1", "60Hz").line_witness,
        progress=False,
    )


def export_untrained(
    architecture: str,
    witnesses: list[str],
    network_sample_rate: float | None,
    folder: Path,
) -> Path:
    model, _ = configured(
        architecture,
        folder / "unused.hdf5",
        STRAIN,
        witnesses,
        folder,
        *network_rate_options(network_sample_rate),
        line_witness=resolve("H1", "60Hz").line_witness,
    )
    return export_model(model, folder, (GPS_START, GPS_START))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=512.0)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument(
        "--architecture", choices=sorted(ARCHITECTURES), default="reference"
    )
    add_network_rate_argument(parser)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: the cores other processes leave free)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frame-seconds", type=float, default=64.0)
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="runs over the long files: the first includes TorchScript's "
        "warm-up (its first calls profile and optimise the model)",
    )
    parser.add_argument(
        "--file-length",
        type=float,
        default=4096.0,
        help="seconds per long output file (shorter ones show a long run's "
        "steady state: each file is written while the next is cleaned)",
    )
    parser.add_argument(
        "--kernel-length",
        type=float,
        default=None,
        help="window length instead of the model's (e.g. 5)",
    )
    parser.add_argument(
        "--stride",
        type=float,
        default=None,
        help="seconds between windows instead of the model's (e.g. 4)",
    )
    args = parser.parse_args()
    threads = choose_threads(args.threads)
    resolved = resolve("H1", "60Hz")
    witnesses = list(resolved.witnesses)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = demo_data(args.data, folder, args.duration, witnesses)
        model = export_untrained(
            args.architecture, witnesses, args.network_sample_rate, folder
        )
        metadata = json.loads(model.with_suffix(".json").read_text())
        print(
            f"{args.architecture} model at "
            f"{metadata['network_sample_rate']:g} Hz, {args.device}, "
            f"{threads} "
            f"threads, batch {args.batch_size}, windows "
            f"{args.kernel_length or metadata['kernel_length']:g} s every "
            f"{args.stride or metadata['stride']:g} s"
        )
        runs = [
            (f"{args.file_length:g} s files", args.file_length, None, run)
            for run in range(args.repeats)
        ]
        runs.append(("1 s files", 1.0, GPS_START + 2 + args.frame_seconds, 0))
        for label, file_length, end, run in runs:
            began = time.perf_counter()
            summary = clean(
                model,
                [data],
                folder / f"{label.replace(' ', '-')}-{run}",
                end=end,
                file_length=file_length,
                kernel_length=args.kernel_length,
                stride=args.stride,
                batch_size=args.batch_size,
                device=args.device,
                threads=threads,
                progress=False,
            )
            wall = time.perf_counter() - began
            print(
                f"{label:>12} (run {run + 1}): {summary.seconds_cleaned:g} s "
                f"cleaned in {wall:.2f} s = "
                f"{summary.seconds_cleaned / wall:,.0f}x real time "
                f"({len(summary.files)} files)"
            )
        print(EARLIER)


if __name__ == "__main__":
    main()
