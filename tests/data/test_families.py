"""The coupling-family presets of ``benchmarks/families.py`` load."""

from pathlib import Path

import pytest

from deepclean_data.simulation import SimulationConfig, load_simulation_config

PRESETS = Path(__file__).parents[2] / "benchmarks" / "families"


@pytest.mark.parametrize(
    "name",
    [
        "linear",
        "bilinear_drift",
        "nonlinear",
        "weak_band",
        "bilinear_drift_exact",
        "nonlinear_exact",
    ],
)
def test_presets_are_simulation_configs(name):
    config = load_simulation_config(PRESETS / f"{name}.yaml")
    assert isinstance(config, SimulationConfig)
    assert config.injections.sine_gaussian_spacing > 0
    low, high = config.coupling.band
    assert low <= min(config.injections.sine_gaussian_frequency)
    assert max(config.injections.sine_gaussian_frequency) <= high


def test_presets_are_what_their_names_say():
    linear, drift, nonlinear, weak = (
        load_simulation_config(PRESETS / f"{name}.yaml").coupling
        for name in ("linear", "bilinear_drift", "nonlinear", "weak_band")
    )
    assert linear.skirt_ratio == 1 and linear.nonlinear_fraction == 0
    assert drift.drift_witness and drift.drift_terms == ("linear",)
    assert drift.nonlinear_fraction == drift.rectified_fraction == 0
    assert nonlinear.rectified_fraction > 0 < nonlinear.nonlinear_fraction
    assert weak.band[1] - weak.band[0] == 4 and weak.num_uncoupled > 0


@pytest.mark.parametrize("name", ["bilinear_drift", "nonlinear"])
def test_exact_twins_differ_only_in_witness_noise(name):
    family = load_simulation_config(PRESETS / f"{name}.yaml")
    exact = load_simulation_config(PRESETS / f"{name}_exact.yaml")
    assert exact.angular.sensor_snr >= 1e6 * family.angular.sensor_snr
    exact.angular.sensor_snr = family.angular.sensor_snr
    assert exact == family


def test_a_bad_preset_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("coupling:\n  drift_terms: [quadratic]\n")
    with pytest.raises(ValueError, match="quadratic"):
        load_simulation_config(path)
