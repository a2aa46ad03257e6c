"""Look-ahead against quality: band-pass padding, online latency, cleaning.

The online cleaner emits a second once its band-pass padding and the
model's kept window edge are covered by input: with 1 s frames the
latency is that look-ahead rounded up to whole seconds. The padding is a
property of the zero-phase band-pass alone
(``bandpass_settling_time``: the half-width holding a fraction
``energy`` of its kernel's energy; relative RMS error about
``sqrt(1 - energy)``). This prints, per band, the padding and the online
latency with the reference model's windows (2 s every 1 s, 0.5 s kept
edge) at several energies; then, for the trained 55-65 Hz model of the
pipeline, the cleaning quality at each energy on a stretch of simulated
data with known truth: in-band ASD ratio, excess over ideal, coupled
power removed, and the RMS difference of the subtracted noise from the
model's own padding (energy 0.99999). Earlier implementations needed
1-2 s and budgeted 4 s.

Usage: python benchmarks/latency.py [--model runs/default/train/RUN/model.pt]
       [--data runs/default/data/RUN/deepclean-1262308096-2048.hdf5]
       [--duration 512]
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from deepclean_clean.clean import window_config
from deepclean_clean.evaluate import (
    asd_ratios,
    coupled_power_removed,
    excess_over_ideal,
    welch_asd,
)
from deepclean_engine import CleaningEngine, load_exported_model
from deepclean_engine.filters import bandpass_settling_time
from deepclean_io.hdf5 import file_info, read_timeseries
from deepclean_io.truth import read_truth

ENERGIES = (0.99999, 0.9999, 0.9995, 0.999, 0.995)
BANDS = ((55.0, 65.0), (58.0, 62.0), (10.0, 13.0), (176.0, 184.0))
SAMPLE_RATE = 4096.0
REFERENCE_KEPT_EDGE = 0.5
"""Seconds a 2 s window every 1 s discards after its kept second."""
RUNS = Path(__file__).parents[1] / "runs" / "default"


def latency(look_ahead: float) -> int:
    """Seconds after a 1 s frame's end until it can be emitted."""
    return int(np.ceil(look_ahead - 1e-9))


def filter_table() -> list[str]:
    rows = ["band (Hz)   energy    padding (s)   online latency (s)"]
    for low, high in BANDS:
        for energy in ENERGIES:
            pad = bandpass_settling_time(
                [(low, high)], SAMPLE_RATE, energy=energy
            )
            rows.append(
                f"{low:>5g}-{high:<5g} {energy:<9g} {pad:>10.3f}"
                f" {latency(pad + REFERENCE_KEPT_EDGE):>16d}"
            )
    return rows


def newest(pattern: str) -> Path:
    found = sorted(RUNS.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(
            f"no {pattern} under {RUNS}: run `make run` first or pass "
            "--model and --data"
        )
    return found[-1]


def quality_table(model_path: Path, data: Path, duration: float) -> list[str]:
    module, metadata = load_exported_model(model_path)
    strain_channel = metadata["strain_channel"]
    witnesses = list(metadata["witnesses"])
    info = file_info(data)
    start, end = info.t0, min(info.end, info.t0 + duration)
    series, t0, rate = read_timeseries(
        data, [strain_channel, *witnesses], start, end
    )
    ideal_full = read_truth(data, start, end).ideal
    strain = torch.from_numpy(series[strain_channel].astype(np.float64))
    witness = torch.from_numpy(
        np.stack([series[w] for w in witnesses]).astype(np.float32)
    )
    rows = [
        "energy    padding (s)  latency (s)  in-band ratio  excess over "
        "ideal  coupled removed  noise RMS diff"
    ]
    reference_noise = None
    for energy in ENERGIES:
        config = window_config(metadata, filter_energy=energy)
        engine = CleaningEngine(module, config, batch_size=32)
        segment = engine.clean(strain, witness, t0)
        lo = round((segment.t0 - t0) * rate)
        hi = lo + segment.cleaned.shape[-1]
        raw = segment.raw.numpy()
        cleaned = segment.cleaned.numpy()
        noise = segment.noise.numpy()
        ideal = ideal_full[lo:hi]
        if reference_noise is None:
            reference_noise = noise
            span = (lo, hi)
        common = slice(max(lo, span[0]) - lo, min(hi, span[1]) - lo)
        reference = reference_noise[
            max(lo, span[0]) - span[0] : min(hi, span[1]) - span[0]
        ]
        difference = np.sqrt(
            np.mean((noise[common] - reference) ** 2) / np.mean(reference**2)
        )
        frequencies, raw_asd = welch_asd(raw, rate, 8.0)
        _, cleaned_asd = welch_asd(cleaned, rate, 8.0)
        _, ideal_asd = welch_asd(ideal, rate, 8.0)
        bands = config.bands
        ratios = asd_ratios(frequencies, raw_asd, cleaned_asd, bands)
        excess = excess_over_ideal(frequencies, cleaned_asd, ideal_asd, bands)
        removed = coupled_power_removed(raw, cleaned, ideal, rate, bands)
        rows.append(
            f"{energy:<9g} {config.filter_pad:>10.3f}"
            f" {config.streaming_latency:>12g}"
            f" {ratios.in_band:>14.4f}"
            f" {excess:>18.4f} {removed:>16.4f}"
            f" {difference:>15.2e}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--duration", type=float, default=512.0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("\n".join(filter_table()))
    model = args.model or newest("train/*/model.pt")
    data = args.data or newest("data/*/deepclean-1262308096-*.hdf5")
    print(f"\nquality, {args.duration:g} s of {data.name}, {model}")
    print("\n".join(quality_table(model, data, args.duration)))
    print("earlier implementations: 1-2 s latency, 4 s budgeted")


if __name__ == "__main__":
    main()
