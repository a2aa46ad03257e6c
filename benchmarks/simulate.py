"""Speed and memory of the simulated detector writing one file.

Simulates the H1 60 Hz problem (strain, the mains monitor and 20 ASC
witnesses, plus the 2 decoys: 24 channels, and 6 truth channels) at
4096 Hz into a temporary folder, optionally with a pool of candidate
witnesses (``--candidates N``: 90 % uncoupled, 10 % correlated with the
coupled angular channels), then prints wall-clock seconds, seconds of
data per second, CPU seconds, peak resident memory and the bytes written.

Usage: python benchmarks/simulate.py [--duration 4096] [--sample-rate 4096]
       [--output-dir DIR] [--injections] [--candidates N]
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

from deepclean.couplings import resolve
from deepclean_data.simulate import simulate
from deepclean_data.simulation import (
    CandidateConfig,
    InjectionConfig,
    SimulationConfig,
)
from deepclean_io.truth import truth_paths

STRAIN = "H1:GDS-CALIB_STRAIN"
PROBLEM = resolve("H1", "60Hz")
WITNESSES = list(PROBLEM.witnesses)
GPS_START = 1_250_000_000


def run(
    output_dir: Path,
    duration: float,
    sample_rate: float,
    injections: bool,
    candidates: int,
) -> None:
    num_correlated = round(0.1 * candidates)
    config = SimulationConfig(
        injections=InjectionConfig(
            sine_gaussian_spacing=32.0 if injections else 0.0,
            chirp_spacing=256.0 if injections else 0.0,
        ),
        candidates=CandidateConfig(
            num_uncoupled=candidates - num_correlated,
            num_correlated=num_correlated,
        ),
    )
    began = time.perf_counter()
    path = simulate(
        output_dir,
        GPS_START,
        duration,
        STRAIN,
        WITNESSES,
        PROBLEM.line_witness,
        sample_rate=sample_rate,
        config=config,
    )
    seconds = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is in KiB on Linux.
    peak_gib = usage.ru_maxrss / 2**20
    written = sum(p.stat().st_size for p in (path, *truth_paths(path))) / 2**30
    print(
        f"simulated {duration:g} s of {len(WITNESSES) + 3 + candidates} "
        f"channels ({candidates} candidates) at {sample_rate:g} Hz "
        "(+6 truth channels)"
    )
    print(f"wall time        {seconds:8.1f} s")
    print(f"throughput       {duration / seconds:8.1f} s of data per s")
    print(
        f"CPU time         {usage.ru_utime + usage.ru_stime:8.1f} s "
        f"(all threads, start-up included; wall < CPU when cores are free)"
    )
    print(f"peak RSS         {peak_gib:8.2f} GiB")
    print(f"written          {written:8.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4096.0)
    parser.add_argument("--sample-rate", type=float, default=4096.0)
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="keep the files here (a temporary folder otherwise)",
    )
    parser.add_argument("--injections", action="store_true")
    parser.add_argument(
        "--candidates",
        type=int,
        default=0,
        help="candidate witnesses to add (10 %% of them correlated)",
    )
    args = parser.parse_args()
    settings = (args.duration, args.sample_rate, args.injections)
    if args.output_dir is not None:
        run(args.output_dir, *settings, args.candidates)
        return
    with tempfile.TemporaryDirectory() as folder:
        run(Path(folder), *settings, args.candidates)


if __name__ == "__main__":
    main()
