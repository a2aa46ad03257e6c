"""The noise predictor's span entry point gives the noise of its windows.

Offline cleaning and validation give the cleaning engine whole spans
(``NoisePredictor.forward_span``: decimated once), the online cleaner and
models exported before the entry point existed give it windows
(``forward``); both must clean alike.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deepclean_engine import (
    CleaningConfig,
    CleaningEngine,
    load_exported_model,
    save_exported_model,
)
from deepclean_train.architectures import DeepCleanAutoencoder
from deepclean_train.predictor import NoisePredictor

SAMPLE_RATE = 4096.0
GPS_START = 1_250_000_000
NUM_CHANNELS = 3
FACTOR = 16
# relative to the largest predicted noise: float32 rounding of blocks
# that add in another order; a one-sample error is ~10 % (see below)
TOLERANCE = 1e-5
WINDOWS = {
    "2 s every 1 s": {"kernel_length": 2.0, "inference_sampling_rate": 1.0},
    "5 s every 4 s": {"kernel_length": 5.0, "inference_sampling_rate": 0.25},
    "overlap-add": {
        "kernel_length": 2.0,
        "inference_sampling_rate": 1.0,
        "edge_handling": "overlap_add",
    },
}


class WindowsOnly(torch.nn.Module):
    """A model as exported before ``forward_span``: windows -> noise."""

    def __init__(self, predictor: NoisePredictor) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        return self.predictor(witnesses)


def make_predictor(
    factor: int = FACTOR, line_index: int | None = None
) -> NoisePredictor:
    """Random reference network between fitted-looking scalers, eval;
    with ``line_index``, witness products as extra inputs."""
    inputs = NUM_CHANNELS if line_index is None else 2 * NUM_CHANNELS - 1
    predictor = NoisePredictor(
        DeepCleanAutoencoder(inputs), NUM_CHANNELS, factor, line_index
    )
    predictor.witness_scaler.mean.fill_(0.5)
    predictor.witness_scaler.std.fill_(2.0)
    predictor.strain_scaler.scale.fill_(1e-21)
    return predictor.eval()


def simulate(duration: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Strain ~1e-21 and witnesses (60 Hz line, slow motion, noise)."""
    rng = np.random.default_rng(3)
    size = round(duration * SAMPLE_RATE)
    time = np.arange(size) / SAMPLE_RATE
    witnesses = rng.standard_normal((NUM_CHANNELS, size))
    witnesses[0] += 20 * np.sin(2 * math.pi * 60.1 * time)
    witnesses[1] += 5 * np.sin(2 * math.pi * 3.3 * time)
    strain = 1e-21 * rng.standard_normal(size)
    return torch.from_numpy(strain), torch.from_numpy(
        witnesses.astype(np.float32)
    )


@pytest.mark.parametrize(
    ("factor", "line_index"), [(FACTOR, None), (1, None), (FACTOR, 0)]
)
def test_forward_span_is_forward_on_the_windows(
    factor: int, line_index: int | None
) -> None:
    predictor = make_predictor(factor, line_index)
    _, witnesses = simulate(12.0)
    kernel, stride = 8192, 4096
    with torch.no_grad():
        windows = witnesses.unfold(-1, kernel, stride).transpose(0, 1)
        expected = predictor(windows.contiguous())
        scripted = torch.jit.script(predictor)
        for model in (predictor, scripted):
            span = model.forward_span(witnesses, kernel, stride)
            torch.testing.assert_close(
                span,
                expected,
                rtol=0,
                atol=TOLERANCE * expected.abs().max().item(),
            )


@pytest.mark.parametrize("windows", WINDOWS.values(), ids=list(WINDOWS))
def test_span_and_window_paths_clean_alike(
    windows: dict, tmp_path: Path
) -> None:
    """The exported model through the engine: spans (new exports) and
    windows (earlier exports) give the same cleaned strain."""
    config = CleaningConfig(sample_rate=SAMPLE_RATE, **windows)
    # a few batches of windows
    strain, witnesses = simulate(12 + 6 * windows["kernel_length"])
    predictor = make_predictor()
    new, _ = load_exported_model(
        save_exported_model(predictor, {}, tmp_path / "new" / "model.pt")
    )
    old, _ = load_exported_model(
        save_exported_model(
            WindowsOnly(predictor), {}, tmp_path / "old" / "model.pt"
        )
    )
    assert hasattr(new, "forward_span")
    assert not hasattr(old, "forward_span")
    span = CleaningEngine(new, config, batch_size=4).clean(
        strain, witnesses, GPS_START
    )
    window = CleaningEngine(old, config, batch_size=4).clean(
        strain, witnesses, GPS_START
    )
    assert span.t0 == window.t0 and span.num_frames == window.num_frames
    scale = window.noise.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(
        span.noise, window.noise, rtol=0, atol=TOLERANCE * scale
    )
    torch.testing.assert_close(
        span.cleaned, window.cleaned, rtol=0, atol=TOLERANCE * scale
    )
    assert not span.flagged.any()

    # the tolerance sees witnesses (so decimation) one sample off
    shifted = CleaningEngine(new, config, batch_size=4).clean(
        strain, witnesses.roll(1, dims=-1), GPS_START
    )
    difference = (shifted.noise - window.noise).abs().max()
    assert difference > 100 * TOLERANCE * scale
