"""Tests for the evaluation report on a simulated stretch.

A short simulation (512 s training, 256 s evaluated, 512 Hz) is cleaned
by both Wiener baselines, evaluated against its truth and reported; the
report's JSON must hold the numbers the metric functions give.
"""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from deepclean_clean.evaluate import (
    IDEAL,
    RAW,
    Evaluation,
    asd_ratios,
    bns_range,
    coupled_power_removed,
    evaluate,
    excess_over_ideal,
    ratio_spectrogram,
    welch_asd,
)
from deepclean_clean.injections import injection_recovery
from deepclean_clean.report import (
    HTML_NAME,
    JSON_NAME,
    PNG_NAMES,
    write_report,
)
from deepclean_clean.wiener import wiener_baselines
from deepclean_data.simulate import simulate
from deepclean_data.simulation import (
    CouplingConfig,
    InjectionConfig,
    SimulationConfig,
)
from deepclean_io.hdf5 import read_timeseries
from deepclean_io.truth import SimulationTruth, read_truth

SAMPLE_RATE = 512.0
START = 1_000_000_000.0
TRAIN = 512.0
TEST = 256.0
BANDS = [(55.0, 65.0)]
STRAIN = "H1:GDS-CALIB_STRAIN"
WITNESSES = [
    "H1:PEM-CS_MAINSMON_EBAY_1_DQ",
    "H1:ASC-CHARD_P_INMON",
    "H1:ASC-DHARD_Y_INMON",
    "H1:ASC-MICH_P_INMON",
]
STRIDE = 64.0


@dataclasses.dataclass
class Stretch:
    raw: np.ndarray
    cleaned: dict[str, np.ndarray]
    truth: SimulationTruth
    evaluation: Evaluation
    report: Path


def read_span(path: Path, start: float, end: float) -> tuple:
    data, _, _ = read_timeseries(
        path, [STRAIN, *WITNESSES], start, end, dtype=np.float64
    )
    return np.stack([data[name] for name in WITNESSES]), data[STRAIN]


@pytest.fixture(scope="module")
def stretch(tmp_path_factory: pytest.TempPathFactory) -> Stretch:
    folder = tmp_path_factory.mktemp("report")
    config = SimulationConfig(
        coupling=CouplingConfig(drift_depth=0.0),
        injections=InjectionConfig(sine_gaussian_spacing=32.0),
    )
    data_path = simulate(
        folder / "data",
        START,
        TRAIN + TEST,
        STRAIN,
        WITNESSES,
        mains_channel=WITNESSES[0],
        sample_rate=SAMPLE_RATE,
        config=config,
        progress=False,
    )
    test_start = START + TRAIN
    train_witnesses, train_strain = read_span(data_path, START, test_start)
    witnesses, raw = read_span(data_path, test_start, test_start + TEST)
    cleaned = wiener_baselines(
        train_witnesses,
        train_strain,
        witnesses,
        raw,
        SAMPLE_RATE,
        BANDS,
        mains_index=0,
    )
    truth = read_truth(data_path, test_start, test_start + TEST)
    evaluation = evaluate(
        raw,
        cleaned,
        SAMPLE_RATE,
        BANDS,
        start=test_start,
        ideal=truth.ideal,
        injections=truth.templates,
        stride=STRIDE,
    )
    report = write_report(folder / "report", evaluation, title="Test report")
    return Stretch(raw, cleaned, truth, evaluation, report)


@pytest.fixture(scope="module")
def numbers(stretch: Stretch) -> dict:
    return json.loads((stretch.report.parent / JSON_NAME).read_text())


def test_report_files(stretch: Stretch) -> None:
    folder = stretch.report.parent
    assert stretch.report == folder / HTML_NAME
    for name in [HTML_NAME, JSON_NAME, *PNG_NAMES.values()]:
        assert (folder / name).stat().st_size > 0
    for name in PNG_NAMES.values():
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained(stretch: Stretch) -> None:
    page = stretch.report.read_text()
    tags = re.findall(r"<(?:script|link)\b[^>]*>", page)
    assert tags
    assert not [tag for tag in tags if re.search(r"\b(src|href)=", tag)]
    for text in ("Test report", "Wiener + products", "Injection recovery"):
        assert text in page


def test_json_holds_the_numbers_of_the_metric_functions(
    stretch: Stretch, numbers: dict
) -> None:
    raw, ideal = stretch.raw, stretch.truth.ideal
    frequencies, raw_asd = welch_asd(raw, SAMPLE_RATE, 4.0)
    _, ideal_asd = welch_asd(ideal, SAMPLE_RATE, 4.0)
    approx = {"rel": 1e-12, "abs": 1e-300}
    assert numbers["ranges"][RAW] == pytest.approx(
        bns_range(frequencies, raw_asd), **approx
    )
    assert numbers["ranges"][IDEAL] == pytest.approx(
        bns_range(frequencies, ideal_asd), **approx
    )
    for name, cleaned in stretch.cleaned.items():
        _, asd = welch_asd(cleaned, SAMPLE_RATE, 4.0)
        np.testing.assert_allclose(numbers["asds"][name], asd, rtol=1e-12)
        ratios = asd_ratios(frequencies, raw_asd, asd, BANDS)
        reported_ratios = numbers["ratios"][name]
        for key in ("in_band", "out_of_band"):
            assert reported_ratios[key] == pytest.approx(
                getattr(ratios, key), **approx
            )
        for band, expected in zip(
            reported_ratios["bands"], ratios.bands, strict=True
        ):
            assert tuple(band["band"]) == expected.band
            assert band["in_band"] == pytest.approx(expected.in_band, **approx)
            assert band["out_of_band"] == pytest.approx(
                expected.out_of_band, **approx
            )
        assert numbers["ranges"][name] == pytest.approx(
            bns_range(frequencies, asd), **approx
        )
        assert numbers["range_gains"][name] == pytest.approx(
            numbers["ranges"][name] / numbers["ranges"][RAW] - 1, **approx
        )
        assert numbers["excess_over_ideal"][name] == pytest.approx(
            excess_over_ideal(frequencies, asd, ideal_asd, BANDS), **approx
        )
        assert numbers["coupled_power_removed"][name] == pytest.approx(
            coupled_power_removed(raw, cleaned, ideal, SAMPLE_RATE, BANDS),
            **approx,
        )
        spectrogram = ratio_spectrogram(
            raw, cleaned, SAMPLE_RATE, STRIDE, 4.0, (35.0, 85.0)
        )
        np.testing.assert_allclose(
            numbers["spectrograms"][name]["ratio"],
            spectrogram.ratio,
            rtol=1e-12,
        )
        recoveries = injection_recovery(
            raw,
            cleaned,
            START + TRAIN,
            SAMPLE_RATE,
            stretch.truth.templates,
            frequencies,
            raw_asd,
            asd,
            pad=16.0,
        )
        assert recoveries
        reported = numbers["injections"][name]
        assert len(reported) == len(recoveries)
        for got, recovery in zip(reported, recoveries, strict=True):
            expected = dataclasses.asdict(recovery)
            assert got.keys() == expected.keys()
            for key, value in expected.items():
                if isinstance(value, float):
                    assert got[key] == pytest.approx(value, **approx)
                else:
                    assert got[key] == value
        headline = numbers["headline"][name]
        assert headline["in_band_asd_ratio"] == reported_ratios["in_band"]


def test_baselines_on_the_simulation(numbers: dict) -> None:
    """Both filters help and harm nothing; products help more."""
    removed = numbers["coupled_power_removed"]
    assert 0 < removed["Wiener"] < removed["Wiener + products"] < 1
    for name in ("Wiener", "Wiener + products"):
        assert numbers["ratios"][name]["in_band"] < 1
        assert numbers["ratios"][name]["out_of_band"] == pytest.approx(
            1.0, abs=1e-3
        )
        assert numbers["range_gains"][name] > -1e-3
        for recovery in numbers["injections"][name]:
            assert recovery["within_noise"]


def test_output_directory_that_is_a_file(
    stretch: Stretch, tmp_path: Path
) -> None:
    blocker = tmp_path / "report"
    blocker.write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        write_report(blocker, stretch.evaluation)
