"""Validation spectra and their bokeh page."""

import numpy as np
import pytest
import torch

from deepclean_engine import CleanedSegment
from deepclean_train.plots import validation_page, validation_spectra

SAMPLE_RATE = 256.0


@pytest.fixture
def segment() -> CleanedSegment:
    raw = torch.randn(64 * 256, dtype=torch.float64)
    return CleanedSegment(
        t0=0.0,
        sample_rate=SAMPLE_RATE,
        frame_length=1.0,
        cleaned=0.5 * raw,
        noise=0.5 * raw,
        raw=raw,
        flagged=torch.zeros(64, dtype=torch.bool),
    )


def test_percentiles_over_chunks(segment: CleanedSegment) -> None:
    spectra = validation_spectra(segment, 2.0, 8.0, (40.0, 80.0))
    assert spectra.frequencies[0] == 40.0
    assert spectra.frequencies[-1] == 80.0
    assert spectra.raw.shape == (3, len(spectra.frequencies))
    np.testing.assert_allclose(spectra.ratio, 0.5)
    np.testing.assert_allclose(spectra.cleaned, 0.5 * spectra.raw)
    assert (spectra.raw[0] <= spectra.raw[1]).all()
    assert (spectra.raw[1] <= spectra.raw[2]).all()
    # white noise of unit variance: one-sided PSD 2 / sample_rate
    assert np.median(spectra.raw[1]) == pytest.approx(
        np.sqrt(2 / SAMPLE_RATE), rel=0.1
    )


def test_page(segment: CleanedSegment) -> None:
    spectra = validation_spectra(segment, 2.0, 8.0, (40.0, 80.0))
    page = validation_page(spectra, [(55.0, 65.0)], "Validation, epoch 3")
    assert page.startswith("<!DOCTYPE html>")
    assert "Validation, epoch 3" in page


def test_span_shorter_than_a_chunk(segment: CleanedSegment) -> None:
    with pytest.raises(ValueError, match="lower chunk_length"):
        validation_spectra(segment, 2.0, 128.0, (40.0, 80.0))
