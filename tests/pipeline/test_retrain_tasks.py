"""The retraining schedule and the command lines of its tasks."""

import json
import shutil
from pathlib import Path

import pytest

from deepclean.tasks import (
    Classical,
    RetrainOnline,
    RetrainReport,
    Search,
    StepModel,
    StepTrain,
    Train,
)
from deepclean.tasks.retrain import ScheduleError, plan_steps

T0 = 1262304000
REPO = Path(__file__).resolve().parents[2]
FINETUNE = str(REPO / "projects" / "train" / "configs" / "finetune.yaml")


def _files(*spans):
    return [(f"f-{a}.hdf5", a, b) for a, b in spans]


class TestSchedule:
    def test_steps_follow_their_training_spans(self):
        steps, skipped = plan_steps(
            _files((0, 4096), (4096, 6144)), 3584, 512, 512
        )
        assert not skipped
        assert [(s.start, s.end) for s in steps] == [
            (4096, 4608),
            (4608, 5120),
            (5120, 5632),
            (5632, 6144),
        ]
        for step in steps:
            # a model only cleans data after the end of its training span
            assert step.train_start + 3584 + 512 == step.start
            assert step.gate_start == step.start - 512
            assert step.train_start == step.start - 4096
        assert steps[0].train_files == ("f-0.hdf5",)
        # the gate reads the context after the held-out span
        assert steps[0].files == ("f-0.hdf5", "f-4096.hdf5")
        # later training spans cross the boundary of the two files
        assert steps[1].train_files == ("f-0.hdf5", "f-4096.hdf5")
        assert [s.index for s in steps] == [0, 1, 2, 3]

    def test_gaps_split_the_schedule_and_short_segments_are_skipped(self):
        steps, skipped = plan_steps(
            _files((0, 1000), (2000, 2500), (3000, 4200)), 600, 200, 200
        )
        assert [(s.start, s.end) for s in steps] == [
            (800, 1000),
            (3800, 4000),
            (4000, 4200),
        ]
        assert len(skipped) == 1 and "[2000, 2500) holds 500 s" in skipped[0]

    def test_a_cadence_shorter_than_the_held_out_span_is_refused(self):
        with pytest.raises(ScheduleError, match="cadence 256 s is shorter"):
            plan_steps(_files((0, 8192)), 2048, 512, 256)

    def test_no_step_fits(self):
        with pytest.raises(
            ScheduleError, match="longest segment holds 4096 s"
        ):
            plan_steps(_files((0, 4096)), 3584, 512, 512)

    def test_cadence_longer_than_the_stretch(self):
        with pytest.raises(ScheduleError, match="needs 12288 s"):
            plan_steps(_files((0, 6144)), 3584, 512, 8192)


@pytest.fixture
def run_dir(tmp_path):
    data = tmp_path / "data" / "demo"
    data.mkdir(parents=True)
    (data / f"segments-{T0}-{T0 + 6144}.txt").write_text(f"{T0} {T0 + 6144}\n")
    for start, duration in ((T0, 4096), (T0 + 4096, 2048)):
        (data / f"deepclean-{start}-{duration}.hdf5").touch()
    return tmp_path


def _task(cls, run_dir, **kwargs):
    params = {
        "data_dir": str(run_dir / "data"),
        "data_run": "demo",
        "start": T0,
        "end": T0 + 6144,
        "min_duration": 1024,
        "max_duration": 4096,
        "train_dir": str(run_dir / "train"),
        "clean_dir": str(run_dir / "cleaned"),
        "retrain_dir": str(run_dir / "retrain"),
        "retrain_run": "demo",
        "train_duration": 3584,
        "valid_duration": 512,
        "cadence": 512,
        "finetune_config": FINETUNE,
        **kwargs,
    }
    names = set(cls.get_param_names(include_significant=True))
    return cls(**{k: v for k, v in params.items() if k in names})


def _arg(command, name):
    return next(a.split("=", 1)[1] for a in command if a.startswith(name))


def _file(run_dir, start, duration):
    return str(
        run_dir / "data" / "demo" / f"deepclean-{start}-{duration}.hdf5"
    )


class TestTasks:
    def test_first_model_trains_on_the_first_span(self, run_dir):
        task = _task(StepTrain, run_dir, step=0)
        command = task.command()
        assert _arg(command, "--data.fname=") == _file(run_dir, T0, 4096)
        assert _arg(command, "--data.train_offset=") == "0.0"
        assert not any(a.startswith("--model.init_from") for a in command)
        assert FINETUNE not in " ".join(command)
        assert task.req(task, branch=0).output().path == str(
            run_dir / "retrain" / "demo" / "step-000" / "train" / "model.pt"
        )

    def test_fine_tuning_starts_from_the_live_model_before(self, run_dir):
        task = _task(StepTrain, run_dir, step=2)
        command = task.command()
        # [T0 + 1024, T0 + 5120) crosses the two files
        files = [_file(run_dir, T0, 4096), _file(run_dir, T0 + 4096, 2048)]
        assert _arg(command, "--data.fname=") == f"[{','.join(files)}]"
        assert _arg(command, "--data.train_offset=") == "1024.0"
        assert _arg(command, "--model.init_from=") == str(
            run_dir / "retrain" / "demo" / "step-001" / "live" / "model.pt"
        )
        configs = [a for a in command if a.startswith("--config=")]
        assert configs[-1] == f"--config={FINETUNE}"
        assert task.requires()["live"] == _task(StepModel, run_dir, step=1)

    def test_gate_compares_on_the_held_out_span(self, run_dir):
        first = _task(StepModel, run_dir, step=0).command()
        assert not any(a.startswith("--live=") for a in first)
        command = _task(StepModel, run_dir, step=3).command()
        assert command[1] == "gate"
        assert _arg(command, "--start=") == str(float(T0 + 5632 - 512))
        assert _arg(command, "--end=") == str(float(T0 + 5632))
        assert _arg(command, "--live=").endswith("step-002/live/model.pt")
        assert _arg(command, "--candidate=").endswith(
            "step-003/train/model.pt"
        )
        assert _arg(command, "--label=") == "step-003"

    def test_each_step_cleans_its_span_with_its_live_model(self, run_dir):
        report = _task(RetrainReport, run_dir)
        steps = report.requires()["steps"]
        assert [(s.clean_start, s.clean_end) for s in steps] == [
            (T0 + 4096 + 512 * k, T0 + 4608 + 512 * k) for k in range(4)
        ]
        for index, clean in enumerate(steps):
            assert clean.model_path().endswith(
                f"step-{index:03d}/live/model.pt"
            )
            assert clean.workflow_requires()["model"] == _task(
                StepModel, run_dir, step=index
            )
        first_only = report.requires()["first_only"]
        assert first_only.model_path().endswith("step-000/live/model.pt")
        assert (first_only.clean_start, first_only.clean_end) == (
            T0 + 4096,
            T0 + 6144,
        )
        assert first_only.clean_folder() != steps[0].clean_folder()
        command = report.command()
        assert command[1] == "retrain-report"
        listed = json.loads(_arg(command, "--steps="))
        assert [s["cleaned_dir"] for s in listed] == [
            s.clean_folder() for s in steps
        ]

    def test_with_a_classical_stage_every_step_trains_on_residuals(
        self, run_dir
    ):
        """NOMAD is fitted once (on the first step's span) and every step
        fine-tunes on its residual files; the gate and the cleaning read
        the fetched files (a hybrid model runs NOMAD itself)."""
        options = {
            "classical_stage": "nomad",
            "classical_dir": str(run_dir / "classical"),
        }
        classical = _task(Classical, run_dir, **options)
        residuals = Path(classical.run_folder())
        assert classical.training_span() == (
            _file(run_dir, T0, 4096),
            T0,
            T0 + 4096,
        )
        task = _task(StepTrain, run_dir, step=2, **options)
        command = task.command()
        files = [
            str(residuals / f"deepclean-{T0}-4096.hdf5"),
            str(residuals / f"deepclean-{T0 + 4096}-2048.hdf5"),
        ]
        assert _arg(command, "--data.fname=") == f"[{','.join(files)}]"
        assert _arg(command, "--data.train_offset=") == "1024.0"
        assert task.requires()["data"] == classical
        assert (
            _task(StepTrain, run_dir, step=0, **options).requires()["data"]
            == classical
        )
        gate = _task(StepModel, run_dir, step=2, **options).command()
        assert _arg(gate, "--data_files=") == (
            f"[{_file(run_dir, T0, 4096)},{_file(run_dir, T0 + 4096, 2048)}]"
        )
        # another run than retraining on the raw strain
        assert (
            _task(
                StepTrain, run_dir, step=0, retrain_run="", **options
            ).retrain_folder()
            != _task(
                StepTrain, run_dir, step=0, retrain_run=""
            ).retrain_folder()
        )

    def test_steps_run_as_htcondor_jobs_in_order(self, run_dir):
        import law

        report = _task(RetrainReport, run_dir, step_workflow="htcondor")
        clean = report.requires()["steps"][2]
        assert clean.workflow == "htcondor"
        model = clean.workflow_requires()["model"]
        assert (model.step, model.workflow) == (2, "htcondor")
        # a step's job waits for its training and the live model before
        needs = model.workflow_requires()
        assert (needs["candidate"].step, needs["live"].step) == (2, 1)
        assert needs["candidate"].workflow == "htcondor"
        assert needs["live"].workflow_requires()["live"].step == 0
        train = needs["candidate"]
        assert train.workflow_requires()["live"].step == 1
        assert train.branch_map == {0: 2}
        # (accounting from luigi.cfg or $LIGO_GROUP)
        train = train.req(train, accounting_group="ligo.dev.o4.deepclean")
        config = law.htcondor.HTCondorJobFileFactory().get_config()
        config = train.htcondor_job_config(config, 0, [0])
        assert ("getenv", "true") in config.custom_content
        assert train.htcondor_output_directory().path == str(
            run_dir / "retrain" / "demo" / "step-002" / "condor"
        )

    def test_report_logs_to_wandb_when_enabled(self, run_dir):
        assert "--wandb.enabled=true" not in (
            _task(RetrainReport, run_dir).command()
        )
        assert "--wandb.enabled=true" in (
            _task(RetrainReport, run_dir, use_wandb=True).command()
        )

    def test_other_settings_get_another_run_folder(self, run_dir):
        def folder(**kwargs):
            kwargs.setdefault("retrain_run", "")
            return _task(StepModel, run_dir, step=0, **kwargs).run_folder()

        assert folder() == folder()
        assert folder() != folder(cadence=1024)
        assert folder() != folder(gate_tolerance=0.01)


class TestSearch:
    def test_command_runs_the_train_configuration(self, run_dir):
        search = _task(Search, run_dir, search_dir=str(run_dir / "search"))
        command = search.command()
        assert command[1] == "search"
        fit = json.loads(_arg(command, "--fit_args="))
        train = _task(Train, run_dir)
        assert fit[: len(train.fit_options())] == train.fit_options()
        assert fit[-2:] == ["--trainer.accelerator=cpu", "--trainer.devices=1"]
        assert not any("default_root_dir" in option for option in fit)
        assert _arg(command, "--space=").endswith("configs/search.yaml")
        assert _arg(command, "--num_samples=") == "8"
        assert _arg(command, "--gpus_per_trial=") == "0"
        assert not any(a.startswith("--ray_address") for a in command)
        gpu = _task(
            Search, run_dir, search_dir=str(run_dir / "s"), gpus="0"
        ).command()
        assert _arg(gpu, "--gpus_per_trial=") == "1"
        assert "--trainer.accelerator=gpu" in json.loads(
            _arg(gpu, "--fit_args=")
        )

    def test_other_spaces_get_another_folder(self, run_dir, tmp_path):
        space = tmp_path / "space.yaml"
        space.write_text("model.alpha: {uniform: [0.5, 1.0]}\n")
        folders = {
            _task(Search, run_dir, **kwargs).run_folder()
            for kwargs in (
                {},
                {"search_space": str(space)},
                {"search_samples": 2},
            )
        }
        assert len(folders) == 3

    def test_retraining_starts_from_the_best_configuration(self, run_dir):
        searched = _task(StepTrain, run_dir, step=1, search=True)
        best = _task(Search, run_dir).output()["best"].path
        configs = [
            a.split("=", 1)[1]
            for a in searched.command()
            if a.startswith("--config=")
        ]
        assert configs[-2:] == [best, FINETUNE]
        assert searched.requires()["search"] == _task(Search, run_dir)
        plain = _task(StepTrain, run_dir, step=1)
        assert best not in " ".join(plain.command())
        # the search names the runs (best.yaml need not exist yet)
        assert plain.retrain_folder() == plain.retrain_folder()
        assert _task(
            StepModel, run_dir, step=0, retrain_run=""
        ).run_folder() != (
            _task(
                StepModel, run_dir, step=0, retrain_run="", search=True
            ).run_folder()
        )


class TestRetrainOnline:
    def _task(self, run_dir, **kwargs):
        return _task(
            RetrainOnline,
            run_dir,
            model_dir=str(run_dir / "models"),
            online_dir=str(run_dir / "online"),
            clean_start=T0 + 4096,
            clean_end=T0 + 6144,
            **kwargs,
        )

    def test_service_on_the_replayed_frames(self, run_dir):
        task = self._task(run_dir, train_duration=1536, valid_duration=256)
        command = task.command()
        assert command[1] == "service"
        assert _arg(command, "--start=") == str(T0 + 4096 + 1792)
        assert _arg(command, "--end=") == str(T0 + 6144)
        assert _arg(command, "--strain_dir=") == task.frames_folder()
        assert _arg(command, "--model_dir=") == str(run_dir / "models")
        fit = json.loads(_arg(command, "--fit_args="))
        assert fit[-3] == f"--config={FINETUNE}"
        assert set(task.requires()) == {"model", "frames"}
        assert task.output().path.endswith(
            f"service-{T0 + 5888}-{T0 + 6144}.json"
        )

    def test_replay_too_short_for_a_step_is_refused(self, run_dir):
        with pytest.raises(ScheduleError, match="cannot hold"):
            self._task(run_dir)

    def test_live_frames_need_an_end(self, run_dir):
        live = self._task(run_dir, strain_dir="/frames", online_start=T0)
        assert set(live.requires()) == {"model"}
        with pytest.raises(ScheduleError, match="--online-end"):
            live.command()


def test_retrain_runs_end_to_end_and_resumes(tmp_path, law_run):
    """Two 64 s steps on 256 s of simulated data at 512 Hz (two files)
    with a tiny model; then a step lost part-way is redone and nothing
    before it."""
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(
        "trainer:\n  max_epochs: 1\n"
        "data:\n  batch_size: 8\n  batches_per_epoch: 4\n"
        "model:\n  arch:\n    class_path: "
        "deepclean_train.architectures.DeepCleanAutoencoder\n"
        "    init_args:\n      down_channels: [4, 4]\n"
        "      up_channels: [4, 4]\n"
    )
    configs = f"{REPO / 'projects/train/configs/reference.yaml'},{tiny}"
    args = (
        f"--data-dir={tmp_path / 'data'}",
        f"--retrain-dir={tmp_path / 'retrain'}",
        "--retrain-run=e2e",
        f"--start={T0}",
        f"--end={T0 + 256}",
        "--min-duration=64",
        "--max-duration=160",
        "--sample-rate=512",
        "--train-duration=96",
        "--valid-duration=32",
        "--cadence=64",
        f"--train-config={configs}",
        f"--finetune-config={FINETUNE},{tiny}",
        "--clean-file-length=16",
    )
    result = law_run("deepclean.tasks.Retrain", *args, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    run = tmp_path / "retrain" / "e2e"
    report = json.loads((run / "report" / "retrain.json").read_text())
    assert [(s["start"], s["end"]) for s in report["steps"]] == [
        (T0 + 128 + 64 * k, T0 + 192 + 64 * k) for k in range(2)
    ]
    assert report["steps"][0]["gate"]["live_model"] == "step-000"
    for step in report["steps"][1:]:
        gate = step["gate"]
        assert gate["live"] is not None
        assert gate["promoted"] == (
            gate["candidate"]["in_band"] < gate["live"]["in_band"]
        )
    assert "retraining beat the first model" in output
    for name in ("report.html", "retrain.png"):
        assert (run / "report" / name).stat().st_size > 0

    # a run killed during step 1's gate left its training, not its gate
    # (written last), its cleaning or the report
    kept = {
        path: path.stat().st_mtime_ns
        for path in (
            run / "step-000" / "live" / "model.pt",
            run / "first-only" / "clean-1262304160-1262304256.json",
            run / "step-001" / "train" / "model.pt",
        )
    }
    (run / "step-001" / "live" / "gate.json").unlink()
    shutil.rmtree(run / "step-001" / "cleaned")
    shutil.rmtree(run / "report")
    result = law_run("deepclean.tasks.Retrain", *args, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (run / "step-001" / "live" / "gate.json").exists()
    assert list((run / "step-001" / "cleaned").glob("*.gwf"))
    assert (run / "report" / "retrain.json").exists()
    assert {path: path.stat().st_mtime_ns for path in kept} == kept
