"""The promotion gate of retraining: does a new model beat the live one?

Both models clean the same recent span through the cleaning engine (the
code of validation, offline and online cleaning); the candidate goes live
only if its in-band ASD ratio is lower than the live model's and its
out-of-band ratio (10-20 Hz either side of each band) stays within a
tolerance of 1. Offline retraining (``deepclean-clean gate``) and the
online retraining service (``deepclean-train service``) both decide here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepclean_engine.engine import load_cleaning_engine
from deepclean_engine.spectral import (
    DEFAULT_SIDEBAND,
    asd_ratio,
    sideband_windows,
)

Reader = Callable[
    [Sequence[str], float, float],
    tuple[dict[str, np.ndarray], float, float],
]
"""Reads channels over a GPS span: ``(data by channel, GPS of the first
sample, sample rate)``, as
:meth:`deepclean_io.hdf5.ContiguousFiles.read` does."""

Prior = Callable[[np.ndarray, np.ndarray, float], np.ndarray]
"""A classical stage's noise estimate over the data read for a model:
``(strain (time,), witnesses (channels, time), GPS of the first sample)
-> (time,)`` in strain units, the engine's ``prior`` (a hybrid model
subtracts it together with its own prediction)."""


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided and why.

    Attributes:
        promoted: Whether the candidate went live.
        reason: One sentence with the numbers behind the decision.
        live_model: Label of the model that is live after the decision.
        start: GPS start of the span both models cleaned, s.
        end: GPS end, s.
        candidate: In-band and out-of-band ASD ratios of the candidate.
        live: The same for the model that was live before; None for the
            first model.
    """

    promoted: bool
    reason: str
    live_model: str
    start: float
    end: float
    candidate: dict[str, float]
    live: dict[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    candidate: dict[str, float],
    live: dict[str, float] | None,
    out_of_band_tolerance: float,
) -> tuple[bool, str]:
    """The gate's rule on the two models' ASD ratios.

    Args:
        candidate: ``in_band`` and ``out_of_band`` ASD ratios of the
            candidate.
        live: The same for the live model; None when nothing is live yet.
        out_of_band_tolerance: Largest allowed ``|out_of_band - 1|``.

    Returns:
        ``(promoted, reason)``.
    """
    outside = candidate["out_of_band"]
    inside = candidate["in_band"]
    if not (math.isfinite(inside) and math.isfinite(outside)):
        return False, "the candidate's ASD ratios are not finite"
    if abs(outside - 1) > out_of_band_tolerance:
        return False, (
            f"the candidate's out-of-band ASD ratio {outside:.4f} is "
            f"not within {out_of_band_tolerance:g} of 1"
        )
    if live is None:
        return True, (
            f"first model (in-band ASD ratio {inside:.4f}, out-of-band "
            f"{outside:.4f})"
        )
    if inside >= live["in_band"]:
        return False, (
            f"the candidate's in-band ASD ratio {inside:.4f} does not beat "
            f"the live model's {live['in_band']:.4f}"
        )
    return True, (
        f"in-band ASD ratio {inside:.4f} beats the live model's "
        f"{live['in_band']:.4f} (out-of-band {outside:.4f})"
    )


def cleanable_span(
    model: Path, data_start: float, data_end: float
) -> tuple[float, float]:
    """The longest span a model can clean from data over
    ``[data_start, data_end)``: its windows and band-pass need context
    either side. Whole seconds.

    Raises:
        ValueError: the data are too short for any second.
    """
    engine, _ = load_cleaning_engine(model, "cpu")
    first, last = engine.required_span(data_start, data_start + 1)
    before = math.ceil(data_start - first)
    after = math.ceil(last - (data_start + 1))
    start, end = math.ceil(data_start) + before, math.floor(data_end) - after
    if end <= start:
        raise ValueError(
            f"[{data_start:.0f}, {data_end:.0f}) is too short to clean any "
            f"second: the model needs {before} s before and {after} s after"
        )
    return float(start), float(end)


def model_ratios(
    model: Path,
    read: Reader,
    start: float,
    end: float,
    fftlength: float = 4.0,
    device: str = "cpu",
    prior: Prior | None = None,
) -> dict[str, float]:
    """In-band and out-of-band ASD ratios of a model cleaning a span.

    Args:
        model: Exported ``model.pt``.
        read: Reads the span and the context the engine needs.
        start: GPS start, s.
        end: GPS end, s.
        fftlength: Welch segment length, s.
        device: Torch device of the model.
        prior: The classical stage of a hybrid model, run over the data
            read; None for a model trained on raw strain.

    Returns:
        ``{"in_band": ..., "out_of_band": ...}``: means over the bands'
        bins and over the bins 10-20 Hz either side of each band of
        ``ASD(cleaned) / ASD(raw)``.
    """
    engine, metadata = load_cleaning_engine(model, device)
    witnesses = list(metadata["witnesses"])
    strain_channel = metadata["strain_channel"]
    data, t0, _ = read(
        [strain_channel, *witnesses], *engine.required_span(start, end)
    )
    strain = np.asarray(data[strain_channel], np.float64)
    rows = np.stack([data[w] for w in witnesses], dtype=np.float32)
    cleaned = engine.clean(
        torch.from_numpy(strain),
        torch.from_numpy(rows),
        t0,
        None if prior is None else torch.from_numpy(prior(strain, rows, t0)),
    )
    rate = engine.config.sample_rate
    lo = round((start - cleaned.t0) * rate)
    hi = round((end - cleaned.t0) * rate)
    raw, clean = cleaned.raw[lo:hi].cpu(), cleaned.cleaned[lo:hi].cpu()
    bands = [list(band) for band in engine.config.bands]
    outside = [
        window
        for band in bands
        for window in sideband_windows(band, DEFAULT_SIDEBAND, rate / 2)
    ]
    return {
        "in_band": float(asd_ratio(clean, raw, rate, bands, fftlength)),
        "out_of_band": float(asd_ratio(clean, raw, rate, outside, fftlength)),
    }


def judge(
    candidate: Path,
    live: Path | None,
    read: Reader,
    start: float,
    end: float,
    label: str,
    live_label: str,
    out_of_band_tolerance: float = 0.005,
    fftlength: float = 4.0,
    device: str = "cpu",
    priors: Callable[[Path], Prior | None] | None = None,
) -> GateDecision:
    """Clean ``[start, end)`` with both models and decide.

    Args:
        candidate: The new exported ``model.pt``.
        live: The live one; None for the first model.
        read: Reads the span and its context.
        start: GPS start of the held-out span, s.
        end: GPS end, s.
        label: Name of the candidate in the records.
        live_label: Name of the live model.
        out_of_band_tolerance: Largest allowed ``|out-of-band ratio - 1|``.
        fftlength: Welch segment length, s.
        device: Torch device of the models.
        priors: The classical stage a model runs (see
            :func:`model_ratios`), or None, for each model; None: both
            models were trained on raw strain.

    Raises:
        ValueError: a span shorter than two ASD segments.
    """
    if end - start < 2 * fftlength:
        raise ValueError(
            f"the gate's span [{start:.0f}, {end:.0f}) is shorter than two "
            f"{fftlength:g} s ASD segments; hold out more data"
        )
    models = {"candidate": candidate, "live": live}
    numbers = {
        name: model_ratios(
            model,
            read,
            start,
            end,
            fftlength,
            device,
            None if priors is None else priors(model),
        )
        for name, model in models.items()
        if model is not None
    }
    promoted, reason = decide(
        numbers["candidate"], numbers.get("live"), out_of_band_tolerance
    )
    return GateDecision(
        promoted=promoted,
        reason=reason,
        live_model=label if promoted else live_label,
        start=start,
        end=end,
        candidate=numbers["candidate"],
        live=numbers.get("live"),
    )
