"""Run folders, recorded settings, config keys and exit codes."""

import json
import os
from pathlib import Path

import luigi.configuration
import pytest

from deepclean.config import ConfigError
from deepclean.couplings import CouplingError
from deepclean.runs import RunSettingsError
from deepclean.tasks import Clean, Evaluate, Query, Train

T0 = 1262304000
REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "projects" / "train" / "configs" / "reference.yaml"


@pytest.fixture
def params(tmp_path):
    config = tmp_path / "model.yaml"
    config.write_text(REFERENCE.read_text())
    return {
        "data_dir": str(tmp_path / "data"),
        "start": T0,
        "end": T0 + 6144,
        "train_dir": str(tmp_path / "train"),
        "train_config": str(config),
        "clean_dir": str(tmp_path / "cleaned"),
        "report_dir": str(tmp_path / "report"),
        "clean_start": T0 + 4096,
        "clean_end": T0 + 6144,
    }


def make(cls, params, **overrides):
    names = set(cls.get_param_names(include_significant=True))
    merged = {**params, **overrides}
    return cls(**{k: v for k, v in merged.items() if k in names})


def train_folder(params, **overrides) -> str:
    return make(Train, params, **overrides).run_folder()


class TestTrainFolder:
    def test_same_settings_same_folder(self, params):
        assert train_folder(params) == train_folder(params)
        assert Path(train_folder(params)).name.startswith("model-")

    @pytest.mark.parametrize(
        "overrides",
        [
            {"train_offset": 100.0},
            {"train_duration": 1024.0},
            {"valid_duration": 256.0},
            {"sample_rate": 2048.0},
            {"simulation_seed": 7},
            {"ifo": "L1"},
            {"strain_channel": "GDS-CALIB_STRAIN_CLEAN"},
        ],
    )
    def test_settings_that_change_the_model_change_the_folder(
        self, params, overrides
    ):
        assert train_folder(params) != train_folder(params, **overrides)

    def test_editing_the_yaml_changes_the_folder(self, params):
        before = train_folder(params)
        config = Path(params["train_config"])
        config.write_text(config.read_text() + "\n# lr changed\n")
        assert train_folder(params) != before

    def test_settings_that_do_not_change_the_model_keep_it(self, params):
        assert train_folder(params) == train_folder(
            params, use_wandb=True, gpus="0"
        )

    def test_settings_recorded_and_other_settings_refused(self, params):
        task = make(Train, params, train_run="mine")
        assert task.run_folder() == os.path.join(params["train_dir"], "mine")
        task.record_run()
        recorded = json.loads(
            (Path(task.run_folder()) / "settings.json").read_text()
        )
        assert recorded["run_name"] == "mine"
        assert recorded["settings"]["train_offset"] == 0.0
        assert not task.complete()

        other = make(Train, params, train_run="mine", train_offset=50.0)
        with pytest.raises(RunSettingsError, match="train_offset: 0.0 -> 50"):
            other.complete()
        with pytest.raises(RunSettingsError, match="another run name"):
            other.record_run()

    def test_checkpoint_of_another_run_is_never_resumed(self, params):
        first = make(Train, params)
        data = Path(first.data_folder())
        data.mkdir(parents=True)
        (data / f"segments-{T0}-{T0 + 6144}.txt").write_text(
            f"{T0} {T0 + 6144}\n"
        )
        last = Path(first.last_checkpoint())
        last.parent.mkdir(parents=True)
        last.touch()
        assert any(a.startswith("--ckpt_path") for a in first.command())
        second = make(Train, params, train_offset=200.0)
        assert not any(a.startswith("--ckpt_path") for a in second.command())


class TestCleanFolder:
    def test_follows_the_model_and_cleaning_settings(self, params):
        clean = make(Clean, params)
        folder = clean.clean_folder()
        assert Path(folder).parent == Path(params["clean_dir"])
        assert Path(folder).name.startswith(
            Path(train_folder(params)).name + "-"
        )
        for overrides in (
            {"train_offset": 10.0},
            {"channel_suffix": "_DC2"},
            {"clean_window_length": 8.0, "clean_window_stride": 7.0},
            {"write_noise": True},
            {"clean_file_length": 1.0},
        ):
            assert make(Clean, params, **overrides).clean_folder() != folder

    def test_an_explicit_model_is_identified_by_content(
        self, params, tmp_path
    ):
        model = tmp_path / "models" / "model.pt"
        model.parent.mkdir()
        model.write_bytes(b"weights 1")
        first = make(Clean, params, model=str(model)).clean_folder()
        assert Path(first).name.startswith("models-")
        model.write_bytes(b"weights 2")
        assert make(Clean, params, model=str(model)).clean_folder() != first

    def test_the_mains_channel_names_data_and_cleaning_runs(
        self, params, tmp_path
    ):
        """The line witness makes the simulated mains monitor and the
        evaluation's Wiener + products baseline."""

        def folders(line_witness: str, **overrides) -> tuple[str, str]:
            # luigi reuses a task made with the same parameters: one file
            # per content
            couplings = tmp_path / f"{line_witness}.ini"
            couplings.write_text(
                "[problem 10Hz]\n"
                "H1.band = 9 11\n"
                "H1.witnesses = ASC-CHARD_P_INMON, ASC-DHARD_P_INMON\n"
                f"H1.line_witness = {line_witness}\n"
            )
            clean = make(
                Clean,
                params,
                problems="10Hz",
                couplings_file=str(couplings),
                **overrides,
            )
            return clean.data_folder(), clean.clean_folder()

        chard = folders("ASC-CHARD_P_INMON")
        dhard = folders("ASC-DHARD_P_INMON")
        assert chard[0] != dhard[0] and chard[1] != dhard[1]
        # real data do not depend on it, their evaluation does
        chard = folders("ASC-CHARD_P_INMON", source="gwpy")
        dhard = folders("ASC-DHARD_P_INMON", source="gwpy")
        assert chard[0] == dhard[0] and chard[1] != dhard[1]

    def test_evaluate_needs_a_line_witness(self, params, tmp_path):
        couplings = tmp_path / "couplings.ini"
        couplings.write_text(
            "[problem 10Hz]\n"
            "H1.band = 9 11\n"
            "H1.witnesses = ASC-CHARD_P_INMON, ASC-DHARD_P_INMON\n"
        )
        settings = {
            "problems": "10Hz",
            "couplings_file": str(couplings),
            "source": "gwpy",
        }
        assert make(Clean, params, **settings).clean_folder()
        with pytest.raises(CouplingError, match="Wiener \\+ products"):
            make(Evaluate, params, **settings)

    def test_report_beside_its_cleaning_run(self, params):
        evaluate = make(Evaluate, params)
        assert (
            Path(evaluate.output().path).parent
            == Path(params["report_dir"]) / Path(evaluate.clean_folder()).name
        )


class TestConfig:
    def test_unknown_key_refused_with_nearest_valid_one(self, params):
        config = luigi.configuration.get_config()
        config.set("deepclean", "train_duraton", "100")
        try:
            with pytest.raises(ConfigError) as error:
                make(Query, params, start=T0 + 1)
        finally:
            config.remove_option("deepclean", "train_duraton")
        assert "train_duraton" in str(error.value)
        assert "did you mean 'train_duration'" in str(error.value)

    def test_keys_are_the_parameter_names(self):
        config = luigi.configuration.get_config()
        assert make(Clean, {}, clean_start=0, clean_end=1).channel_suffix
        for name in ("clean_window_length", "simulation_seed"):
            assert config.has_option("deepclean", name)
            assert name in Clean.get_param_names(include_significant=True)

    def test_unknown_problem_fails_when_the_task_is_made(self, params):
        with pytest.raises(CouplingError, match="61Hz"):
            make(Train, params, problems="61Hz")

    def test_band_above_nyquist_fails_when_the_task_is_made(self, params):
        with pytest.raises(CouplingError, match="Nyquist frequency 50 Hz"):
            make(Train, params, sample_rate=100.0)


def test_failed_run_exits_non_zero(tmp_path, law_run):
    result = law_run(
        "deepclean.tasks.Query",
        f"--data-dir={tmp_path / 'data'}",
        "--start=2000",
        "--end=1000",
    )
    assert result.returncode != 0, result.stdout + result.stderr


def test_unknown_problem_exits_non_zero_before_any_task(tmp_path, law_run):
    result = law_run(
        "deepclean.tasks.Query",
        f"--data-dir={tmp_path / 'data'}",
        "--problems=61Hz",
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "unknown subtraction problem" in output or "61Hz" in output
    assert not (tmp_path / "data").exists()
