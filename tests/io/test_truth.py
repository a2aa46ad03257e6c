"""Tests for deepclean_io.truth: the simulator's truth files, read back.

The files are written by the simulator (``deepclean_data.simulate``), so
these tests also check that writer and reader agree on the format.
"""

from pathlib import Path

import numpy as np
import pytest

from deepclean_data.simulate import simulate
from deepclean_data.simulation import InjectionConfig, SimulationConfig
from deepclean_io.hdf5 import read_timeseries, write_timeseries
from deepclean_io.truth import injection_template, read_truth, truth_paths
from deepclean_io.waveforms import SineGaussian, describe

SAMPLE_RATE = 512.0
START = 1_000_000_000.0


def test_truth_paths() -> None:
    data = Path("/data/run/deepclean-1000-8.hdf5")
    assert truth_paths(data) == (
        Path("/data/run/truth/deepclean-1000-8.hdf5"),
        Path("/data/run/truth/deepclean-1000-8.json"),
    )


class TestSimulationTruth:
    strain = "H1:GDS-CALIB_STRAIN"
    witnesses = [
        "H1:PEM-CS_MAINSMON_EBAY_1_DQ",
        "H1:ASC-CHARD_P_INMON",
        "H1:ASC-DHARD_Y_INMON",
    ]

    def test_truth_adds_up_to_the_data(self, tmp_path: Path) -> None:
        config = SimulationConfig(
            injections=InjectionConfig(
                sine_gaussian_spacing=16.0,
                chirp_spacing=32.0,
                chirp_frequency=(30.0, 200.0),
            )
        )
        data_path = simulate(
            tmp_path,
            START,
            128.0,
            self.strain,
            self.witnesses,
            mains_channel=self.witnesses[0],
            sample_rate=SAMPLE_RATE,
            config=config,
            progress=False,
        )
        start, end = START + 32.0, START + 96.0

        truth = read_truth(data_path, start, end)

        data, t0, _ = read_timeseries(data_path, [self.strain], start, end)
        assert truth is not None
        assert truth.start == t0 == start
        assert truth.sample_rate == SAMPLE_RATE
        np.testing.assert_array_equal(
            truth.background + truth.coupled + truth.injections,
            data[self.strain],
        )
        np.testing.assert_array_equal(
            truth.ideal, truth.background + truth.injections
        )
        kinds = {template.kind for template in truth.templates}
        assert kinds == {"sine_gaussian", "chirp"}
        injected = np.zeros_like(truth.injections)
        for template in truth.templates:
            first = round((template.start - start) * SAMPLE_RATE)
            assert first >= 0
            injected[first : first + template.waveform.size] += (
                template.waveform
            )
        np.testing.assert_allclose(
            injected, truth.injections, rtol=0, atol=1e-30
        )

    def test_real_data_has_no_truth(self, tmp_path: Path) -> None:
        data_path = write_timeseries(
            tmp_path / "H1-DATA-1000000000-16.hdf5",
            {self.strain: np.zeros(round(16 * SAMPLE_RATE))},
            START,
            SAMPLE_RATE,
        )
        assert read_truth(data_path) is None

    def test_unknown_injection_type(self) -> None:
        with pytest.raises(ValueError, match="unknown injection type"):
            injection_template(
                {"type": "ringdown"}, START, START + 1.0, SAMPLE_RATE
            )

    def test_templates_are_cut_to_the_span(self) -> None:
        injection = SineGaussian(
            time=START + 10.0, frequency=100.0, q=10.0, hrss=1.0, phase=0
        )
        description = describe(injection)
        assert (
            injection_template(description, START, START + 5, SAMPLE_RATE)
            is None
        )
        whole = injection_template(description, START, START + 16, SAMPLE_RATE)
        assert whole.start <= injection.span[0] < whole.start + 1 / SAMPLE_RATE
        cut = injection_template(
            description, START + 10, START + 16, SAMPLE_RATE
        )
        assert cut.kind == "sine_gaussian"
        assert cut.time == START + 10.0
        assert cut.start == START + 10.0
        np.testing.assert_array_equal(
            cut.waveform, whole.waveform[-cut.waveform.size :]
        )
        assert cut.parameters == {
            key: value for key, value in description.items() if key != "type"
        }
