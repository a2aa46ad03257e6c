"""CleaningConfig: defaults, derived pad, serialisation, bad input."""

import json

import pytest

from deepclean_engine import CleaningConfig, bandpass_settling_time


class TestCleaningConfig:
    def test_defaults_follow_reference_geometry(self) -> None:
        config = CleaningConfig()
        assert config.sample_rate == 4096
        assert config.bands == ((55.0, 65.0),)
        assert config.kernel_size == 4096
        assert config.stride_size == 2048
        assert config.frame_size == 4096
        assert config.keep_offset == 0.25
        assert config.stitch_support == (1024, 3072)

    @pytest.mark.parametrize(
        ("band", "expected"), [((55.0, 65.0), 0.78), ((58.0, 62.0), 1.93)]
    )
    def test_pad_is_derived_from_the_band(
        self, band: tuple[float, float], expected: float
    ) -> None:
        config = CleaningConfig(bands=(band,))
        assert config.filter_pad == pytest.approx(expected, abs=0.01)
        assert config.filter_pad == bandpass_settling_time(
            [band], config.sample_rate
        )

    def test_looser_energy_needs_less_pad(self) -> None:
        short = bandpass_settling_time([(55, 65)], 4096, energy=0.999)
        assert short == pytest.approx(0.39, abs=0.01)

    def test_dict_round_trip_through_json(self) -> None:
        config = CleaningConfig(
            bands=[(58, 62), (10, 13)],
            kernel_length=2.0,
            inference_sampling_rate=4.0,
            edge_handling="overlap_add",
            frame_length=0.5,
        )
        values = json.loads(json.dumps(config.to_dict()))
        assert values["bands"] == [[10.0, 13.0], [58.0, 62.0]]
        assert CleaningConfig.from_dict(values) == config

    @pytest.mark.parametrize(
        ("keep_offset", "latency"), [(None, 2.0), (0.3125, 1.0)]
    )
    def test_streaming_latency(
        self, keep_offset: float | None, latency: float
    ) -> None:
        config = CleaningConfig(keep_offset=keep_offset)
        assert config.streaming_latency == latency

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"bands": [(60, 70), (55, 65)]}, "overlap"),
            ({"bands": [(55, 3000)]}, "Nyquist"),
            ({"bands": []}, "no frequency bands"),
            ({"kernel_length": 1 / 3}, "whole number of samples"),
            ({"inference_sampling_rate": 0.5}, "stride"),
            ({"filter_pad": 0.3}, "whole number of samples"),
            ({"filter_pad": -1.0}, "filter_pad"),
            ({"edge_handling": "crop"}, "edge_handling"),
            ({"keep_offset": 0.75}, "keep_offset"),
            (
                {"edge_handling": "overlap_add", "keep_offset": 0.25},
                "edge_pad",
            ),
            (
                {"edge_handling": "overlap_add", "inference_sampling_rate": 1},
                "overlap at least twice",
            ),
        ],
    )
    def test_bad_input_is_refused_with_reason(
        self, arguments: dict, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            CleaningConfig(**arguments)

    def test_unknown_metadata_keys_are_named(self) -> None:
        values = CleaningConfig().to_dict() | {"stride": 0.5}
        with pytest.raises(ValueError, match="stride"):
            CleaningConfig.from_dict(values)
