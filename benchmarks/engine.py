"""Throughput of the cleaning engine alone (no I/O), on CPU by default.

The reference model as ``projects/train/configs/reference.yaml`` builds it
(deepclean_train's DeepCleanAutoencoder with witness and strain scaling,
21 witnesses, ~43k parameters, the network at 256 Hz between the
resampling filters unless ``--network-sample-rate`` says otherwise),
untrained, on 4096 Hz data with the config's 2 s windows every 1 s.
Prints seconds of data cleaned per wall-clock second for the offline
path (whole span, through the model's span entry point) and the
streaming path (1 s frames), plus the model's forward pass on window
copies alone for comparison.

Usage: python benchmarks/engine.py [--duration 256] [--threads 2]
       [--batch-size 64] [--device cpu] [--network-sample-rate 256]
"""

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from models import add_network_rate_argument, configured, network_rate_options

from deepclean_engine import CleaningEngine
from deepclean_train.model import DeepCleanModel

NUM_WITNESSES = 21
GPS_START = 1_000_000_000


def reference_model(network_sample_rate: float | None) -> DeepCleanModel:
    """The reference-size DeepClean model, untrained, in eval mode."""
    with tempfile.TemporaryDirectory() as folder:
        model, _ = configured(
            "reference",
            Path(folder) / "unused.hdf5",
            "H1:GDS-CALIB_STRAIN",
            [f"H1:WITNESS_{index}" for index in range(NUM_WITNESSES)],
            Path(folder),
            *network_rate_options(network_sample_rate),
        )
    return model.eval()


def timed(function: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls, seconds.

    Also prints the process CPU time of that call: far below ``threads x
    wall`` means other processes competed for the cores.
    """
    best, best_cpu = float("inf"), 0.0
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        if wall < best:
            best, best_cpu = wall, time.process_time() - start_cpu
    print(f"  (wall {best:.3f} s, process CPU {best_cpu:.3f} s)")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=256.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    add_network_rate_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    trained = reference_model(args.network_sample_rate)
    config = trained.cleaning_config
    model = trained.predictor.to(device)
    parameters = sum(p.numel() for p in model.parameters())
    size = int(args.duration * config.sample_rate)
    strain = 1e-21 * torch.randn(size, dtype=torch.float64, device=device)
    witnesses = torch.randn(NUM_WITNESSES, size, device=device)
    engine = CleaningEngine(model, config, args.batch_size, device)
    print(
        f"device {device}, {args.threads} threads, model {parameters} "
        f"parameters, {args.duration:g} s span, batch {args.batch_size}, "
        f"filter_pad {config.filter_pad:.3f} s"
    )

    segment = engine.clean(strain, witnesses, GPS_START)
    offline = timed(
        lambda: engine.clean(strain, witnesses, GPS_START), args.repeats
    )
    print(
        f"offline clean: {segment.duration:g} s cleaned in {offline:.3f} s "
        f"= {segment.duration / offline:,.0f} s/s "
        f"({args.duration / offline:,.0f} s of input per s)"
    )

    num_windows = int((args.duration - 1) * config.inference_sampling_rate)
    batch = (
        witnesses[:, : config.kernel_size]
        .expand(args.batch_size, -1, -1)
        .contiguous()
    )

    def forward_only() -> None:
        with torch.no_grad():
            for _ in range(0, num_windows, args.batch_size):
                model(batch)

    forward = timed(forward_only, args.repeats)
    print(
        f"model forward alone: {num_windows} windows in {forward:.3f} s "
        f"= {args.duration / forward:,.0f} s of data per s"
    )

    frame = config.frame_size
    seconds = min(int(args.duration), 64)

    def stream() -> None:
        cleaner = engine.stream()
        for second in range(seconds):
            cleaner.push(
                strain[second * frame : (second + 1) * frame],
                witnesses[:, second * frame : (second + 1) * frame],
                GPS_START + second,
            )

    streaming = timed(stream, 1)
    print(
        f"streaming 1 s frames: {1e3 * streaming / seconds:.1f} ms per "
        f"frame = {seconds / streaming:,.0f} s/s, latency "
        f"{config.streaming_latency:g} s"
    )


if __name__ == "__main__":
    main()
