"""The simulated detector's pool of candidate witnesses."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from deepclean.couplings import resolve
from deepclean_data.simulate import simulate
from deepclean_data.simulation import (
    CandidateConfig,
    ChannelRoles,
    CouplingConfig,
    SimulatedDetector,
    SimulationConfig,
    candidate_channels,
    decoy_channels,
    drift_channel,
    load_simulation_config,
)
from deepclean_io.hdf5 import read_timeseries
from deepclean_io.truth import truth_paths

STRAIN = "H1:GDS-CALIB_STRAIN"
PROBLEM = resolve("H1", "60Hz")
WITNESSES = list(PROBLEM.witnesses)
MAINS = PROBLEM.line_witness
ANGULAR = [name for name in WITNESSES if name != MAINS]
SAMPLE_RATE = 512.0
START = 1_250_000_032.0  # inside a 64 s block
POOL = CandidateConfig(
    num_uncoupled=12, num_correlated=8, correlated_snr=(10.0, 100.0)
)
# Two angular witnesses left uncoupled: sources must avoid them.
COUPLING = CouplingConfig(num_uncoupled=2)
WITHOUT_POOL = SimulationConfig(coupling=COUPLING)
WITH_POOL = SimulationConfig(coupling=COUPLING, candidates=POOL)
CANDIDATE_POOL_YAML = (
    Path(__file__).parents[2] / "projects/data/configs/candidate-pool.yaml"
)


def run(folder: Path, start: float, duration: float, **kwargs) -> Path:
    arguments = {
        "strain_channel": STRAIN,
        "witnesses": WITNESSES,
        "mains_channel": MAINS,
        "sample_rate": SAMPLE_RATE,
        "progress": False,
        "config": WITH_POOL,
    } | kwargs
    return simulate(folder, start, duration, **arguments)


def read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Data and truth channels of a simulated file."""
    data, _, _ = read_timeseries(path)
    truth, _, _ = read_timeseries(truth_paths(path)[0])
    return data, truth


def parameters(path: Path) -> dict:
    return json.loads(truth_paths(path)[1].read_text())


@pytest.fixture(scope="module")
def pooled(tmp_path_factory) -> Path:
    """128 s with the pool, crossing three 64 s blocks."""
    return run(tmp_path_factory.mktemp("pooled"), START, 128)


def explained_below(
    candidate: np.ndarray, witness: np.ndarray, frequency: float
) -> float:
    """Share of a candidate's power from 0.5 Hz to ``frequency`` that is
    coherent with a witness (coherence weighted by the candidate's PSD)."""
    segment = int(2 * SAMPLE_RATE)
    frequencies, coherence = signal.coherence(
        candidate, witness, fs=SAMPLE_RATE, nperseg=segment
    )
    _, psd = signal.welch(candidate, fs=SAMPLE_RATE, nperseg=segment)
    band = (frequencies >= 0.5) & (frequencies <= frequency)
    return float(np.sum(coherence[band] * psd[band]) / np.sum(psd[band]))


class TestNames:
    def test_realistic_unique_and_clear_of_other_channels(self):
        # More than the vocabularies hold, so numbered names appear too.
        config = SimulationConfig(
            candidates=CandidateConfig(num_uncoupled=400, num_correlated=90)
        )
        for ifo in ("H1", "L1"):
            problem = resolve(ifo, "60Hz")
            strain = f"{ifo}:GDS-CALIB_STRAIN"
            names = candidate_channels(strain, list(problem.witnesses), config)
            assert len(names) == len(set(names)) == 490
            pattern = rf"{ifo}:(PEM|SUS|ISI|ASC)-[A-Z0-9_]+_DQ"
            assert all(re.fullmatch(pattern, name) for name in names)
            # Neither IFO's 60 Hz witnesses, under this IFO's prefix.
            reserved = {
                f"{ifo}:{witness.split(':', 1)[1]}"
                for other in ("H1", "L1")
                for witness in resolve(other, "60Hz").witnesses
            } | {*decoy_channels(strain), drift_channel(strain)}
            assert not reserved & set(names)
            assert sum(name.endswith("_2_DQ") for name in names) > 0

    def test_families(self):
        roles = ChannelRoles.assign(STRAIN, WITNESSES, MAINS, candidates=POOL)
        pool = roles.pool
        assert (len(pool.broadband), len(pool.low_frequency)) == (6, 6)
        assert roles.candidates == (*pool.uncoupled, *pool.correlated)
        assert roles.recorded[-len(roles.candidates) :] == roles.candidates
        assert all(
            re.search(r"PEM-..(_ACC_|_MIC_|_MAG_)", n) for n in pool.broadband
        )
        assert all(
            re.search(r"(SUS-|_STS_|_SEIS_)", n) for n in pool.low_frequency
        )
        assert all(
            re.search(r"(ASC-|_OPLEV_)", n) and re.search(r"_(PIT|YAW)_", n)
            for n in pool.correlated
        )

    def test_a_witness_named_like_a_candidate_is_skipped(self):
        first = candidate_channels(STRAIN, WITNESSES, WITH_POOL)
        names = candidate_channels(STRAIN, [*WITNESSES, first[0]], WITH_POOL)
        assert first[0] not in names
        assert len(names) == len(first)

    def test_listed_names_are_the_file_channels(self, pooled):
        data, _ = read(pooled)
        names = candidate_channels(STRAIN, WITNESSES, WITH_POOL)
        assert list(data)[-len(names) :] == names
        assert list(data)[: -len(names)][-2:] == decoy_channels(STRAIN)


class TestPoolChangesNothingElse:
    def test_strain_witnesses_and_truth_unchanged(self, pooled, tmp_path):
        without = run(tmp_path, START, 128, config=WITHOUT_POOL)
        data, truth = read(pooled)
        plain_data, plain_truth = read(without)
        assert set(plain_data) < set(data)
        for name, values in (plain_data | plain_truth).items():
            np.testing.assert_array_equal(
                (data | truth)[name], values, err_msg=name
            )
        pooled_parameters, plain_parameters = map(
            parameters, (pooled, without)
        )
        for record in (pooled_parameters, plain_parameters):
            for key in ("candidates", "config", "data_file"):
                record.pop(key)
            record["parameters"].pop("candidates")
        assert pooled_parameters == plain_parameters

    def test_candidates_are_recorded_in_the_truth(self, pooled):
        record = parameters(pooled)
        candidates = record["candidates"]
        pool = ChannelRoles.assign(
            STRAIN, WITNESSES, MAINS, candidates=POOL
        ).pool
        assert candidates["uncoupled"] == list(pool.uncoupled)
        assert candidates["low_frequency"] == list(pool.low_frequency)
        assert list(candidates["correlated"]) == list(pool.correlated)
        coupled = record["parameters"]["coupling"]["coupled"]
        sources = [c["source"] for c in candidates["correlated"].values()]
        # 8 candidates spread over the 18 coupled channels.
        assert len(set(sources)) == 8
        assert set(sources) <= set(coupled)
        for correlation in candidates["correlated"].values():
            assert 10 <= correlation["snr"] <= 100
            assert correlation["gain"] > 0
        assert set(record["parameters"]["candidates"]) == set(pool.channels)
        assert record["config"]["candidates"]["num_correlated"] == 8


class TestSignals:
    def test_correlated_candidates_follow_their_source(self, pooled):
        data, _ = read(pooled)
        correlated = parameters(pooled)["candidates"]["correlated"]
        for name, correlation in correlated.items():
            source = correlation["source"]
            assert explained_below(data[name], data[source], 5.0) > 0.8
            others = [a for a in ANGULAR if a != source]
            assert (
                max(explained_below(data[name], data[a], 5.0) for a in others)
                < 0.2
            )
            # The configured SNR, shared motion over the rest below
            # 10 Hz, seen through the source witness's sensor noise (1 %
            # of its motion's power there, times the gain).
            shared = correlation["gain"] * data[source].astype(float)
            frequencies, psd = signal.welch(
                np.stack([shared, data[name] - shared]),
                fs=SAMPLE_RATE,
                nperseg=int(4 * SAMPLE_RATE),
            )
            below = frequencies <= POOL.snr_band
            measured = psd[0, below].sum() / psd[1, below].sum()
            noise = 1 / WITH_POOL.angular.sensor_snr
            snr = correlation["snr"]
            expected = snr * (1 + noise) / (1 + snr * noise)
            assert measured == pytest.approx(expected, rel=0.4), name

    def test_uncoupled_candidates_follow_no_witness(self, pooled):
        data, _ = read(pooled)
        for name in parameters(pooled)["candidates"]["uncoupled"]:
            assert (
                max(explained_below(data[name], data[a], 5.0) for a in ANGULAR)
                < 0.2
            )

    def test_spectra_are_drawn_like_angular_or_decoy_ones(self, pooled):
        record = parameters(pooled)
        spectra = record["parameters"]["candidates"]
        pool = record["candidates"]
        low_frequency = {*pool["low_frequency"], *pool["correlated"]}
        for name, spectrum in spectra.items():
            motion = (
                WITH_POOL.angular
                if name in low_frequency
                else (WITH_POOL.decoys)
            )
            low, high = motion.corner_frequency
            assert low <= spectrum["corner_frequency"] <= high, name
            for resonance in spectrum["resonances"]:
                low, high = motion.resonance_frequency
                assert low <= resonance["frequency"] <= high, name


class TestDeterminism:
    def test_same_call_same_bytes(self, tmp_path):
        paths = [run(tmp_path / folder, START, 16) for folder in "ab"]
        for first, second in zip(
            (paths[0], *truth_paths(paths[0])),
            (paths[1], *truth_paths(paths[1])),
            strict=True,
        ):
            assert first.read_bytes() == second.read_bytes()

    def test_spans_simulated_separately_join_exactly(self, pooled, tmp_path):
        whole, _ = read(pooled)
        first, _ = read(run(tmp_path, START, 50.5))
        second, _ = read(run(tmp_path, START + 50.5, 77.5))
        for name in candidate_channels(STRAIN, WITNESSES, WITH_POOL):
            np.testing.assert_array_equal(
                whole[name], np.concatenate([first[name], second[name]])
            )


class TestConfiguration:
    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"num_uncoupled": -1}, "num_uncoupled = -1 .* must be >= 0"),
            ({"num_correlated": -3}, "num_correlated = -3 must be >= 0"),
            ({"low_frequency_fraction": 1.5}, "low_frequency_fraction"),
            ({"correlated_snr": (10.0, 1.0)}, "correlated_snr .* low <= high"),
            ({"correlated_snr": (0.0, 1.0)}, "correlated_snr"),
            ({"snr_band": 0.0}, "snr_band = 0.0 must be > 0"),
        ],
    )
    def test_bad_values_are_refused(self, fields, message):
        with pytest.raises(ValueError, match=message):
            CandidateConfig(**fields)

    def test_a_bad_yaml_is_refused(self, tmp_path):
        path = tmp_path / "bad.yaml"
        path.write_text("candidates:\n  correlated_snr: [30.0, 3.0]\n")
        with pytest.raises(ValueError, match="correlated_snr"):
            load_simulation_config(path)

    def test_roles_must_hold_the_configured_pool(self):
        roles = ChannelRoles.assign(STRAIN, WITNESSES, MAINS)
        with pytest.raises(ValueError, match="candidates=config.candidates"):
            SimulatedDetector(roles, SAMPLE_RATE, 0, WITH_POOL)

    def test_the_shipped_pool(self):
        config = load_simulation_config(CANDIDATE_POOL_YAML)
        pool = config.candidates
        assert pool.num_uncoupled + pool.num_correlated > 100
        assert 0 < pool.num_correlated < pool.num_uncoupled
        names = candidate_channels(STRAIN, WITNESSES, config)
        assert len(names) == pool.num_uncoupled + pool.num_correlated
