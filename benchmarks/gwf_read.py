"""Speed of ``deepclean_io.gwf.read_gwf`` on an online cleaner's frame.

Writes one 1 s frame like those the online cleaner reads every second
(float64 strain, uint32 state vector and float32 witnesses, all at
4096 Hz; 23 channels by default) with ``write_gwf`` and prints the median
and 90th percentile of the wall time of ``read_gwf`` reading every
channel, in ms, next to the online budget of 20 ms per cleaned frame.

Usage: python benchmarks/gwf_read.py [--witnesses 21] [--repeats 50]
       [--sample-rate 4096]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from deepclean_io.gwf import (
    frame_name,
    read_gwf,
    state_vector_channel,
    write_gwf,
)

GPS_START = 1_262_304_000
STRAIN = "H1:GDS-CALIB_STRAIN"
BUDGET = "online budget: 20 ms to clean a 1 s frame on 2 CPU cores"


def write_frame(
    folder: Path, num_witnesses: int, sample_rate: int
) -> tuple[Path, list[str]]:
    """Write a 1 s frame of noise; return its path and channel names."""
    rng = np.random.default_rng(0)
    data: dict[str, np.ndarray] = {
        STRAIN: 1e-21 * rng.standard_normal(sample_rate),
        state_vector_channel("H1"): np.full(sample_rate, 3, dtype=np.uint32),
    }
    for index in range(num_witnesses):
        data[f"H1:PEM-WITNESS_{index:02d}"] = rng.standard_normal(
            sample_rate, dtype=np.float32
        )
    fname = frame_name(folder, "H1", "llhoft", GPS_START, 1)
    write_gwf(fname, data, GPS_START, sample_rate)
    return fname, list(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--witnesses", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--sample-rate", type=int, default=4096)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        fname, channels = write_frame(
            Path(tmp), args.witnesses, args.sample_rate
        )
        read_gwf(fname, channels)  # imports and first-touch costs
        times_ms = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            read_gwf(fname, channels)
            times_ms.append(1e3 * (time.perf_counter() - began))
    print(
        f"read_gwf, {len(channels)} channels x {args.sample_rate} samples "
        f"(1 s frame): median {np.median(times_ms):.2f} ms, 90th "
        f"percentile {np.percentile(times_ms, 90):.2f} ms over "
        f"{args.repeats} reads"
    )
    print(BUDGET)


if __name__ == "__main__":
    main()
