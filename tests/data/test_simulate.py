"""Tests for the simulated detector (deepclean_data.simulate)."""

import dataclasses
import json
from pathlib import Path

import lal
import lalsimulation
import numpy as np
import pytest
from gwpy.timeseries import TimeSeriesDict
from jsonargparse import ArgumentParser
from scipy import signal

from deepclean_data.simulate import simulate
from deepclean_data.simulation import (
    ChannelRoles,
    CouplingConfig,
    InjectionConfig,
    MainsConfig,
    SimulatedDetector,
    SimulationConfig,
    decoy_channels,
    drift_channel,
)
from deepclean_data.simulation.blocks import ColouredNoise, white_noise
from deepclean_io.hdf5 import read_timeseries
from deepclean_io.truth import truth_channels, truth_paths

STRAIN = "H1:GDS-CALIB_STRAIN"
MAINS = "H1:PEM-CS_MAINSMON_EBAY_1_DQ"
ANGULAR = [
    f"H1:ASC-{dof}_{axis}_INMON"
    for dof in ("INP1", "MICH", "DHARD", "CHARD")
    for axis in ("P", "Y")
]
WITNESSES = [MAINS, *ANGULAR]
SAMPLE_RATE = 2048.0
START = 1_250_000_000.0
TRUTH = truth_channels(STRAIN)
# Drift off, so in-band ratios hold at any GPS time.
STEADY = SimulationConfig(coupling=CouplingConfig(drift_depth=0.0))


def run(folder: Path, start: float, duration: float, **kwargs) -> Path:
    arguments = {
        "strain_channel": STRAIN,
        "witnesses": WITNESSES,
        "mains_channel": MAINS,
        "sample_rate": SAMPLE_RATE,
        "progress": False,
    } | kwargs
    return simulate(folder, start, duration, **arguments)


def read_all(path: Path) -> dict[str, np.ndarray]:
    data, _, _ = read_timeseries(path)
    truth, _, _ = read_timeseries(truth_paths(path)[0])
    return data | truth


def welch(x: np.ndarray, fftlength: float, **kwargs) -> np.ndarray:
    return signal.welch(
        x, fs=SAMPLE_RATE, nperseg=int(fftlength * SAMPLE_RATE), **kwargs
    )


@pytest.fixture(scope="module")
def steady(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """256 s of simulated data with the default couplings, no drift."""
    path = run(tmp_path_factory.mktemp("steady"), START, 256, config=STEADY)
    return path, read_all(path)


def lalsuite_o3_low_psd(frequencies: np.ndarray) -> np.ndarray:
    """The aLIGO O3-low PSD as lalsimulation computes it."""
    series = lal.CreateREAL8FrequencySeries(
        "psd", 0, 0, frequencies[1], lal.DimensionlessUnit, len(frequencies)
    )
    lalsimulation.SimNoisePSDaLIGOaLIGOO3LowT1800545(series, 9.0)
    return series.data.data


class TestStatistics:
    def test_background_follows_the_lalsuite_curve(self, steady):
        _, channels = steady
        background = channels[TRUTH["background"]]
        frequencies, psd = welch(background, 4.0, average="median")
        reference = lalsuite_o3_low_psd(frequencies)
        for low in range(20, 500, 10):
            band = (frequencies >= low) & (frequencies < low + 10)
            ratio = np.mean(psd[band] / reference[band])
            assert abs(ratio - 1) < 0.1, f"{low}-{low + 10} Hz: {ratio:.3f}"
        # Seismic wall below 10 Hz, values in strain, not normalised.
        asd = np.sqrt(psd)
        assert asd[frequencies == 5.0][0] > 100 * asd[frequencies == 30.0][0]
        assert 1e-20 < np.std(channels[STRAIN]) < 1e-16

    def test_line_and_skirt(self, steady):
        _, channels = steady
        background = channels[TRUTH["background"]]
        skirt_noise = (
            channels[TRUTH["bilinear"]] + channels[TRUTH["nonlinear"]]
        )
        # At the DeepClean loss resolution (1 s): line 10-50x, skirt 2-4x.
        frequencies, raw_psd = welch(channels[STRAIN], 1.0)
        _, background_psd = welch(background, 1.0)
        _, skirt_psd = welch(skirt_noise, 1.0)
        line_ratio = (raw_psd / background_psd)[frequencies == 60.0][0]
        assert 10 < line_ratio < 50
        band = (frequencies >= 55) & (frequencies <= 65)
        raised = 1 + skirt_psd[band] / background_psd[band]
        assert 2 < np.mean(raised) < 4
        off_line = band & (np.abs(frequencies - 60) > 1)
        assert np.mean(raw_psd[off_line] / background_psd[off_line]) > 1.5
        # In-band power matches the configured ratio.
        frequencies, background_psd = welch(background, 4.0)
        _, skirt_psd = welch(skirt_noise, 4.0)
        band = (frequencies >= 55) & (frequencies < 65)
        ratio = 1 + skirt_psd[band].sum() / background_psd[band].sum()
        assert ratio == pytest.approx(STEADY.coupling.skirt_ratio, rel=0.15)
        # Away from the mains lines the strain is background only.
        _, raw_psd = welch(channels[STRAIN], 4.0)
        far = (frequencies > 80) & (frequencies < 110)
        assert np.mean(raw_psd[far] / background_psd[far]) == pytest.approx(
            1, abs=0.02
        )

    def test_decoys_do_not_cohere_with_strain(self, steady):
        _, channels = steady
        for decoy in decoy_channels(STRAIN):
            frequencies, coherence = signal.coherence(
                channels[STRAIN], channels[decoy], fs=SAMPLE_RATE, nperseg=2048
            )
            band = (frequencies >= 55) & (frequencies <= 65)
            assert coherence[band].max() < 0.03
        _, mains_coherence = signal.coherence(
            channels[STRAIN], channels[MAINS], fs=SAMPLE_RATE, nperseg=2048
        )
        assert mains_coherence[frequencies == 60.0][0] > 0.3

    def test_the_named_mains_channel_carries_the_mains(self, tmp_path):
        """The mains monitor is the channel named, whatever its name."""
        mains, angular = ANGULAR[0], MAINS
        channels = read_all(
            run(
                tmp_path,
                START,
                16,
                witnesses=[angular, mains, ANGULAR[1]],
                mains_channel=mains,
                config=STEADY,
            )
        )
        frequencies, psd = welch(
            np.stack([channels[mains], channels[angular]]), 1.0
        )
        line = psd[:, frequencies == 60.0] / psd[:, frequencies == 50.0]
        assert line[0, 0] > 100
        assert line[1, 0] < 10

    def test_skirt_is_an_instantaneous_function_of_witnesses(self, steady):
        """Mains x angular witness products explain the bilinear noise."""
        _, channels = steady
        lowpass = signal.butter(8, 20, fs=SAMPLE_RATE, output="sos")
        bandpass = signal.butter(
            4, (58, 62), btype="band", fs=SAMPLE_RATE, output="sos"
        )
        carrier = signal.hilbert(
            signal.sosfiltfilt(bandpass, channels[MAINS].astype(float))
        )
        motions = signal.sosfiltfilt(
            lowpass, np.stack([channels[name] for name in ANGULAR])
        )
        features = np.concatenate(
            [motions * carrier.real, motions * carrier.imag]
        ).T
        target = channels[TRUTH["bilinear"]]
        trim = slice(4096, -4096)
        coefficients, *_ = np.linalg.lstsq(
            features[trim], target[trim], rcond=None
        )
        residual = target[trim] - features[trim] @ coefficients
        assert np.var(residual) < 0.1 * np.var(target[trim])

    def test_coupling_gains_drift_over_hours(self):
        roles = ChannelRoles.assign(STRAIN, WITNESSES, MAINS)
        steady_mains = MainsConfig(modulation_depth=0.0)

        def line_rms(config: SimulationConfig, index: int) -> float:
            detector = SimulatedDetector(roles, 512.0, 0, config)
            return np.std(detector.block(index)[TRUTH["linear"]])

        for depth, changes in ((0.0, False), (0.3, True)):
            config = SimulationConfig(
                mains=steady_mains,
                coupling=CouplingConfig(drift_depth=depth),
            )
            first = line_rms(config, 20_000_000)
            later = line_rms(config, 20_000_000 + 3 * 3600 // 64)
            assert bool(abs(later / first - 1) > 0.05) == changes


class TestOptionalCouplings:
    """Drift witness, rectified term, uncoupled witnesses: off by default."""

    RATE = 512.0
    BLOCK = 19_531_250  # GPS 1.25e9

    def blocks(
        self, config: SimulationConfig
    ) -> tuple[SimulatedDetector, dict[str, np.ndarray]]:
        """The detector and four blocks (256 s) of every channel."""
        roles = ChannelRoles.assign(STRAIN, WITNESSES, MAINS)
        detector = SimulatedDetector(roles, self.RATE, 0, config)
        blocks = [detector.block(self.BLOCK + k) for k in range(4)]
        return detector, {
            name: np.concatenate([block[name] for block in blocks])
            for name in blocks[0]
        }

    def unexplained(
        self,
        channels: dict[str, np.ndarray],
        inputs: np.ndarray,
        term: str = "nonlinear",
    ) -> float:
        """Share of a term's variance that carrier x inputs leave."""
        bandpass = signal.butter(
            4, (58, 62), btype="band", fs=self.RATE, output="sos"
        )
        carrier = signal.hilbert(
            signal.sosfiltfilt(bandpass, channels[MAINS].astype(float))
        )
        features = np.concatenate(
            [inputs * carrier.real, inputs * carrier.imag]
        )
        target = channels[TRUTH[term]]
        trim = slice(2048, -2048)
        coefficients, *_ = np.linalg.lstsq(
            features.T[trim], target[trim], rcond=None
        )
        residual = target[trim] - features.T[trim] @ coefficients
        return float(np.var(residual) / np.var(target[trim]))

    def test_default_output_is_pinned(self):
        """Values of the default simulation before these options existed."""
        roles = ChannelRoles.assign(STRAIN, WITNESSES, MAINS)
        detector = SimulatedDetector(roles, self.RATE, 0, SimulationConfig())
        assert detector.coupling.rectified is None
        assert roles.drift == ()
        block = detector.block(self.BLOCK)
        assert list(block)[: len(roles.data_channels)] == [
            STRAIN,
            *WITNESSES,
            *decoy_channels(STRAIN),
        ]
        pinned = {
            STRAIN: -1.7104714502384362e-18,
            MAINS: -67.69309997558594,
            ANGULAR[-1]: 6.674383163452148,
            decoy_channels(STRAIN)[1]: -31.955076217651367,
            TRUTH["bilinear"]: -2.1830672790179944e-23,
            TRUTH["nonlinear"]: -9.401523906675262e-25,
        }
        for name, value in pinned.items():
            assert block[name][1000] == pytest.approx(value, rel=1e-6), name

    def test_drift_witness_records_the_linear_gain_drift(self):
        config = SimulationConfig(
            mains=MainsConfig(modulation_depth=0.0),
            coupling=CouplingConfig(drift_depth=0.3, drift_witness=True),
        )
        roles = ChannelRoles.assign(STRAIN, WITNESSES, MAINS, drift=True)
        assert roles.data_channels[-3:] == (
            drift_channel(STRAIN),
            *decoy_channels(STRAIN),
        )
        detector = SimulatedDetector(roles, self.RATE, 0, config)
        line, steadied = [], []
        for index in (20_000_000, 20_000_000 + 3 * 3600 // 64):
            block = detector.block(index)
            linear = block[TRUTH["linear"]]
            line.append(np.std(linear))
            steadied.append(
                np.std(linear / (1 + block[drift_channel(STRAIN)]))
            )
        # The gain changed over 3 hours; divided by 1 + witness it did not.
        assert abs(line[1] / line[0] - 1) > 0.1
        assert steadied[1] / steadied[0] == pytest.approx(1, abs=1e-3)
        only_linear = SimulationConfig(
            coupling=CouplingConfig(drift_depth=0.3, drift_terms=("linear",))
        )
        with pytest.raises(ValueError, match="drift_witness is False"):
            SimulatedDetector(roles, self.RATE, 0, only_linear)
        roles = ChannelRoles.assign(STRAIN, WITNESSES, MAINS)
        coupling = SimulatedDetector(roles, self.RATE, 0, only_linear).coupling
        assert np.all(coupling.linear.drift != 0)
        assert np.all(coupling.bilinear.drift == 0)
        assert np.all(coupling.nonlinear.drift == 0)

    def test_rectified_term_and_uncoupled_witnesses(self):
        config = SimulationConfig(
            coupling=CouplingConfig(
                drift_depth=0.0,
                nonlinear_fraction=0.0,
                rectified_fraction=0.5,
                num_uncoupled=3,
            )
        )
        detector, channels = self.blocks(config)
        coupled = detector.coupling.coupled
        assert len(coupled) == len(ANGULAR) - 3
        lowpass = signal.butter(8, 20, fs=self.RATE, output="sos")
        motion = signal.sosfiltfilt(
            lowpass, np.stack([channels[name] for name in ANGULAR])
        )
        rectified = np.abs(motion)
        rectified -= rectified.mean(axis=1, keepdims=True)
        # The nonlinear truth is mains x |motion|, not mains x motion.
        assert self.unexplained(channels, rectified) < 0.1
        assert self.unexplained(channels, motion) > 0.9
        # It holds its share of the configured skirt.
        frequencies, psd = signal.welch(
            np.stack(
                [
                    channels[TRUTH[name]]
                    for name in ("background", "bilinear", "nonlinear")
                ]
            ),
            fs=self.RATE,
            nperseg=int(self.RATE),
        )
        band = (frequencies >= 55) & (frequencies < 65)
        background, bilinear, nonlinear = psd[:, band].sum(axis=1)
        assert 1 + (bilinear + nonlinear) / background == pytest.approx(
            3.0, rel=0.15
        )
        assert nonlinear / (bilinear + nonlinear) == pytest.approx(
            0.5, abs=0.1
        )
        # Uncoupled witnesses explain none of the bilinear noise.
        uncoupled = np.setdiff1d(np.arange(len(ANGULAR)), coupled)
        assert self.unexplained(channels, motion[uncoupled], "bilinear") > 0.9
        assert self.unexplained(channels, motion[coupled], "bilinear") < 0.1


class TestLayoutAndDeterminism:
    def test_truth_sums_to_raw_and_is_documented(self, steady):
        path, channels = steady
        raw = channels[STRAIN]
        coupled = channels[TRUTH["coupled"]]
        np.testing.assert_array_equal(
            raw,
            channels[TRUTH["background"]]
            + coupled
            + channels[TRUTH["injections"]],
        )
        np.testing.assert_array_equal(
            coupled,
            channels[TRUTH["linear"]]
            + channels[TRUTH["bilinear"]]
            + channels[TRUTH["nonlinear"]],
        )
        truth_file, parameters_file = truth_paths(path)
        assert truth_file == path.parent / "truth" / path.name
        parameters = json.loads(parameters_file.read_text())
        assert parameters["seed"] == 0
        assert parameters["mains_channel"] == MAINS
        assert parameters["truth_channels"] == TRUTH
        assert parameters["config"] == json.loads(
            json.dumps(dataclasses.asdict(STEADY))
        )
        assert set(parameters["parameters"]["angular"]) == set(ANGULAR)
        assert parameters["decoys"] == decoy_channels(STRAIN)

    def test_gwpy_reads_the_files(self, steady):
        path, _ = steady
        series = TimeSeriesDict.read(path, format="hdf5")
        assert list(series) == [STRAIN, *WITNESSES, *decoy_channels(STRAIN)]
        assert series[STRAIN].t0.value == START
        assert series[STRAIN].sample_rate.value == SAMPLE_RATE
        assert str(series[STRAIN].unit) == "strain"
        assert str(series[MAINS].unit) == "ct"
        truth = TimeSeriesDict.read(truth_paths(path)[0], format="hdf5")
        assert set(truth) == set(TRUTH.values())

    def test_same_seed_same_bytes(self, tmp_path):
        paths = [
            run(tmp_path / folder, START, 8, seed=seed)
            for folder, seed in (("a", 5), ("b", 5), ("c", 6))
        ]
        for first, second in (
            (truth_paths(p)[0] for p in paths[:2]),
            (truth_paths(p)[1] for p in paths[:2]),
        ):
            assert first.read_bytes() == second.read_bytes()
        assert paths[0].read_bytes() == paths[1].read_bytes()
        first, other = read_all(paths[0]), read_all(paths[2])
        for name in (STRAIN, MAINS, ANGULAR[0], TRUTH["bilinear"]):
            difference = np.std(first[name] - other[name])
            assert difference > 0.1 * np.std(first[name])

    def test_spans_simulated_separately_join_exactly(self, tmp_path):
        start = START + 50  # inside a 64 s block
        whole = read_all(run(tmp_path, start, 40))
        first = read_all(run(tmp_path, start, 17.5))
        second = read_all(run(tmp_path, start + 17.5, 22.5))
        for name, values in whole.items():
            np.testing.assert_array_equal(
                values, np.concatenate([first[name], second[name]])
            )

    def test_coloured_noise_is_one_convolution_across_blocks(self):
        """Also for more streams than are filtered at once (16)."""
        rng = np.random.default_rng(0)
        keys = list(range(11, 31))
        firs = rng.standard_normal((len(keys), 6))
        noise = ColouredNoise(7, keys, firs, 16, np.float64)
        blocks = np.concatenate([noise.block(k) for k in (3, 4, 5)], axis=1)
        white = np.concatenate(
            [white_noise(7, keys, k, 16, np.float64) for k in (2, 3, 4, 5)],
            axis=1,
        )
        for row in range(len(keys)):
            direct = np.convolve(white[row], firs[row])[16 : 16 + 48]
            np.testing.assert_allclose(blocks[row], direct, atol=1e-12)
        # A block asked for again, out of sequence, is the same.
        np.testing.assert_array_equal(noise.block(4), blocks[:, 16:32])


class TestInjections:
    def test_injections_enter_strain_only_and_are_recorded(self, tmp_path):
        injections = InjectionConfig(
            sine_gaussian_spacing=8.0,
            chirp_spacing=30.0,
            chirp_frequency=(40.0, 300.0),
        )
        config = dataclasses.replace(STEADY, injections=injections)
        clean = read_all(run(tmp_path / "clean", START, 64, config=STEADY))
        path = run(tmp_path / "injected", START, 64, config=config)
        injected = read_all(path)
        waveform = injected[TRUTH["injections"]]
        for name in (MAINS, *ANGULAR, TRUTH["coupled"]):
            np.testing.assert_array_equal(injected[name], clean[name])
        np.testing.assert_allclose(
            injected[STRAIN] - waveform, clean[STRAIN], rtol=0, atol=1e-32
        )
        records = json.loads(truth_paths(path)[1].read_text())["injections"]
        kinds = [record["type"] for record in records]
        assert kinds.count("sine_gaussian") >= 7
        assert "chirp" in kinds
        times = np.arange(len(waveform)) / SAMPLE_RATE + START
        for record in records:
            if record["type"] == "sine_gaussian" and (
                START + 1 < record["time"] < START + 63
            ):
                near = np.abs(times - record["time"]) < 1
                assert np.sum(waveform[near] ** 2) / SAMPLE_RATE == (
                    pytest.approx(record["hrss"] ** 2, rel=0.1)
                )
            if record["type"] == "chirp":
                assert record["frequency_start"] == 40.0
                assert 1.0 <= record["chirp_mass"] <= 1.6
        assert np.max(np.abs(waveform)) < 1e-20


class TestErrors:
    @pytest.mark.parametrize(
        ("witnesses", "message"),
        [
            (ANGULAR, f"mains channel '{MAINS}' is not among"),
            ([MAINS], "no angular-control channel"),
            ([MAINS, ANGULAR[0], ANGULAR[0]], "listed twice"),
            ([MAINS, *decoy_channels(STRAIN)], "reserves for the decoys"),
            ([MAINS, drift_channel(STRAIN)], "reserves for the decoys"),
            ([MAINS, STRAIN], "also listed as a witness"),
        ],
    )
    def test_bad_witness_lists(self, tmp_path, witnesses, message):
        with pytest.raises(ValueError, match=message):
            run(tmp_path, START, 8, witnesses=witnesses)

    def test_bad_spans_and_rates(self, tmp_path):
        with pytest.raises(ValueError, match="sample grid"):
            run(tmp_path, START + 1e-4, 8)
        with pytest.raises(ValueError, match="duration"):
            run(tmp_path, START, 0)
        with pytest.raises(ValueError, match="Nyquist"):
            run(tmp_path, START, 8, sample_rate=256.0)
        with pytest.raises(ValueError, match="seed"):
            run(tmp_path, START, 8, seed=-1)
        assert list(tmp_path.iterdir()) == []

    def test_failure_leaves_no_files(self, tmp_path, monkeypatch):
        produce = SimulatedDetector.block

        def fail_on_second_block(detector, index):
            if index > 19_531_250:
                raise RuntimeError("disk on fire")
            return produce(detector, index)

        monkeypatch.setattr(SimulatedDetector, "block", fail_on_second_block)
        with pytest.raises(RuntimeError, match="disk on fire"):
            run(tmp_path, START, 128)
        assert sorted(p.name for p in tmp_path.rglob("*")) == ["truth"]

    def test_bad_configuration(self):
        with pytest.raises(ValueError, match="skirt_ratio"):
            CouplingConfig(skirt_ratio=0.5)
        with pytest.raises(ValueError, match="low <= high"):
            CouplingConfig(band=(65.0, 55.0))
        with pytest.raises(ValueError, match="sum < 1"):
            CouplingConfig(nonlinear_fraction=0.5, rectified_fraction=0.5)
        with pytest.raises(ValueError, match="none of the 8"):
            roles = ChannelRoles.assign(STRAIN, WITNESSES, MAINS)
            config = SimulationConfig(coupling=CouplingConfig(num_uncoupled=8))
            SimulatedDetector(roles, SAMPLE_RATE, 0, config)
        with pytest.raises(ValueError, match="aLIGO_O3low"):
            roles = ChannelRoles.assign(STRAIN, WITNESSES, MAINS)
            config = SimulationConfig()
            config.background.noise_curve = "aLIGO_O9"
            SimulatedDetector(roles, SAMPLE_RATE, 0, config)


def test_jsonargparse_builds_the_command_line(tmp_path):
    parser = ArgumentParser()
    parser.add_function_arguments(simulate)
    arguments = parser.parse_args(
        [
            f"--output_dir={tmp_path}",
            "--start=1250000000",
            "--duration=64",
            f"--strain_channel={STRAIN}",
            f"--witnesses=[{MAINS}, {ANGULAR[0]}]",
            f"--mains_channel={MAINS}",
            "--config.coupling.skirt_ratio=2.5",
            "--config.injections.chirp_spacing=100",
        ]
    )
    objects = parser.instantiate(arguments)
    assert isinstance(objects.config, SimulationConfig)
    assert objects.config.coupling.skirt_ratio == 2.5
    assert objects.config.injections.chirp_spacing == 100
    assert objects.witnesses == [MAINS, ANGULAR[0]]
    assert objects.mains_channel == MAINS
