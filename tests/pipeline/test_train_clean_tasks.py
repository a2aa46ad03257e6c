"""Command lines of Train, Clean and Evaluate over fetched files."""

import json
from pathlib import Path

import pytest

from deepclean.tasks import (
    Analyze,
    Classical,
    Clean,
    Discover,
    Evaluate,
    Online,
    RetrainOnline,
    Search,
    Train,
)

T0 = 1262304000
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_dir(tmp_path):
    data = tmp_path / "data" / "demo"
    data.mkdir(parents=True)
    (data / f"segments-{T0}-{T0 + 6144}.txt").write_text(f"{T0} {T0 + 6144}\n")
    for start, duration in ((T0, 4096), (T0 + 4096, 2048)):
        (data / f"deepclean-{start}-{duration}.hdf5").touch()
    return tmp_path


def _params(run_dir, **kwargs):
    params = {
        "data_dir": str(run_dir / "data"),
        "data_run": "demo",
        "start": T0,
        "end": T0 + 6144,
        "min_duration": 1024,
        "max_duration": 4096,
        "train_dir": str(run_dir / "train"),
        "clean_dir": str(run_dir / "cleaned"),
        "report_dir": str(run_dir / "report"),
        "clean_start": T0 + 4096,
        "clean_end": T0 + 6144,
    }
    params.update(kwargs)
    return params


def _task(cls, run_dir, **kwargs):
    params = _params(run_dir, **kwargs)
    names = set(cls.get_param_names(include_significant=True))
    return cls(**{k: v for k, v in params.items() if k in names})


def _arg(command, name):
    return next(a.split("=", 1)[1] for a in command if a.startswith(name))


class TestTrain:
    def test_first_fetched_file_and_injected_data_parameters(self, run_dir):
        task = _task(Train, run_dir, train_offset=100.0)
        command = task.command()
        assert command[1] == "fit"
        assert _arg(command, "--data.fname=") == str(
            run_dir / "data" / "demo" / f"deepclean-{T0}-4096.hdf5"
        )
        assert _arg(command, "--data.bands=") == "[[55.0,65.0]]"
        assert _arg(command, "--data.witnesses=").count("H1:") == 21
        assert _arg(command, "--data.train_offset=") == "100.0"
        assert _arg(command, "--trainer.accelerator=") == "cpu"
        folder = Path(task.output().path).parent
        assert folder.parent == run_dir / "train"
        assert folder.name.startswith("reference-")

    def test_gpus_and_ddp(self, run_dir, monkeypatch):
        monkeypatch.setenv("HOME", str(run_dir))
        (run_dir / "gpu.yaml").write_text("trainer: {precision: bf16-mixed}")
        configs = "projects/train/configs/reference.yaml, ~/gpu.yaml"
        task = _task(Train, run_dir, gpus="0,1", train_config=configs)
        command = task.command()
        assert [a for a in command if a.startswith("--config=")] == [
            f"--config={REPO}/projects/train/configs/reference.yaml",
            f"--config={run_dir}/gpu.yaml",
        ]
        assert Path(task.run_folder()).name.startswith("reference+gpu-")
        assert _arg(command, "--trainer.accelerator=") == "gpu"
        assert _arg(command, "--trainer.devices=") == "2"
        assert _arg(command, "--trainer.strategy=") == "ddp"

    def test_wandb_key_forwarded_only_when_enabled(self, run_dir, monkeypatch):
        monkeypatch.setenv("WANDB_API_KEY", "secret")
        monkeypatch.setenv("WANDB_ENTITY", "ligo")
        plain = _task(Train, run_dir).sandbox_env({})
        assert "WANDB_API_KEY" not in plain
        task = _task(Train, run_dir, use_wandb=True)
        env = task.sandbox_env({})
        assert env["WANDB_API_KEY"] == "secret"
        assert env["WANDB_ENTITY"] == "ligo"
        assert "--wandb.enabled=true" in task.command()
        assert "secret" not in " ".join(task.command())

    def test_interrupted_run_resumes_from_last_checkpoint(self, run_dir):
        task = _task(Train, run_dir)
        assert not any("--ckpt_path" in a for a in task.command())
        last = Path(task.run_folder()) / "checkpoints" / "last.ckpt"
        last.parent.mkdir(parents=True)
        last.touch()
        assert _arg(task.command(), "--ckpt_path=") == str(last)

    def test_fine_tuning(self, run_dir):
        model = run_dir / "old" / "model.pt"
        model.parent.mkdir()
        model.write_bytes(b"old weights")
        command = _task(Train, run_dir, init_from=str(model)).command()
        assert _arg(command, "--model.init_from=") == str(model)

    def test_witness_products_use_the_line_witness(self, run_dir):
        plain = _task(Train, run_dir)
        assert not any("product_witness" in a for a in plain.command())
        task = _task(Train, run_dir, witness_products=True)
        mains = "H1:PEM-CS_MAINSMON_EBAY_1_DQ"
        assert _arg(task.command(), "--data.product_witness=") == mains
        assert task.run_folder() != plain.run_folder()

    def test_the_problems_line_witness_reaches_the_model(self, run_dir):
        """A carrier architecture (modulated.yaml) must take its carrier
        from it; the model checks."""
        command = _task(Train, run_dir).command()
        mains = "H1:PEM-CS_MAINSMON_EBAY_1_DQ"
        assert _arg(command, "--model.line_witness=") == mains

    def test_witness_analysis_is_an_output_unless_switched_off(self, run_dir):
        task = _task(Train, run_dir)
        assert not any("--analysis." in a for a in task.command())
        folder = Path(task.run_folder())
        assert task.output_paths() == [
            str(folder / "model.pt"),
            str(folder / "analysis" / "analysis.json"),
        ]
        folder.mkdir(parents=True)
        (folder / "model.pt").touch()
        assert not task.complete()
        (folder / "analysis").mkdir()
        (folder / "analysis" / "analysis.json").touch()
        assert task.complete()
        off = _task(Train, run_dir, witness_analysis=False)
        assert _arg(off.command(), "--analysis.enabled=") == "false"
        assert off.output_paths() == [str(folder / "model.pt")]
        assert off.run_folder() == task.run_folder()


class TestAnalyze:
    def test_trains_model_analysed_on_its_own_spans(self, run_dir):
        task = _task(Analyze, run_dir, analysis_dir=str(run_dir / "an"))
        train = _task(Train, run_dir)
        command = task.command()
        assert command[1] == "analyze"
        assert _arg(command, "--model=") == train.output().path
        assert _arg(command, "--fname=") == (
            f"[{run_dir}/data/demo/deepclean-{T0}-4096.hdf5]"
        )
        assert not any(a.startswith("--spans") for a in command)
        assert not any(a.startswith("--settings.") for a in command)
        folder = Path(task.output().path).parent
        assert folder.parent == run_dir / "an"
        assert folder.name.startswith(train.run_name() + "-")
        assert set(task.requires()) == {"data", "model"}

    def test_any_model_on_a_stretch_across_files(self, run_dir):
        model = run_dir / "mine" / "model.pt"
        model.parent.mkdir()
        model.write_bytes(b"weights")
        task = _task(
            Analyze,
            run_dir,
            analysis_dir=str(run_dir / "an"),
            model=str(model),
            analysis_start=T0 + 4000,
            analysis_end=T0 + 4600,
            analysis_fftlength=8.0,
        )
        command = task.command()
        data = run_dir / "data" / "demo"
        assert _arg(command, "--fname=") == (
            f"[{data}/deepclean-{T0}-4096.hdf5,"
            f"{data}/deepclean-{T0 + 4096}-2048.hdf5]"
        )
        assert json.loads(_arg(command, "--spans=")) == {
            "stretch": [T0 + 4000, T0 + 4600]
        }
        assert _arg(command, "--settings.fftlength=") == "8.0"
        assert set(task.requires()) == {"data"}
        assert Path(task.run_folder()).name.startswith("mine-")

    def test_reversed_stretch_refused(self, run_dir):
        task = _task(
            Analyze,
            run_dir,
            analysis_dir=str(run_dir / "an"),
            analysis_start=T0 + 600,
            analysis_end=T0 + 100,
        )
        with pytest.raises(ValueError, match="must be after"):
            task.command()


class TestDiscover:
    def test_trains_with_trains_options_on_the_candidates(self, run_dir):
        listing = run_dir / "candidates.txt"
        listing.write_text("H1:PEM-CS_MAINSMON_EBAY_1_DQ\n")
        task = _task(
            Discover,
            run_dir,
            discover_dir=str(run_dir / "disc"),
            discover_top_k=8,
            discover_tolerance=0.02,
            witness_products=True,
            witness_analysis=False,
            candidates=str(listing),
        )
        command = task.command()
        assert command[1] == "discover"
        assert _arg(command, "--fname=") == (
            f"[{run_dir}/data/demo/deepclean-{T0}-4096.hdf5]"
        )
        fit_args = json.loads(_arg(command, "--fit_args="))
        assert any(a.startswith("--config=") for a in fit_args)
        train = Train.req(task)
        assert f"--data.train_duration={train.train_duration}" in fit_args
        chosen = ("--data.witnesses", "--data.fname", "--data.product")
        assert not any(a.startswith(chosen) for a in fit_args)
        assert "--analysis.enabled=false" not in fit_args
        assert _arg(command, "--candidates=") == str(listing)
        assert _arg(command, "--product_witness=") == (
            "H1:PEM-CS_MAINSMON_EBAY_1_DQ"
        )
        assert _arg(command, "--top_k=") == "8"
        assert _arg(command, "--tolerance=") == "0.02"
        assert Path(task.output().path).name == "discover.json"
        other = _task(
            Discover,
            run_dir,
            discover_dir=str(run_dir / "disc"),
            discover_top_k=4,
            discover_tolerance=0.02,
        )
        assert other.run_folder() != task.run_folder()
        assert not any(a.startswith("--candidates") for a in other.command())


class TestClean:
    def test_branches_cover_the_requested_stretch(self, run_dir):
        task = _task(Clean, run_dir, clean_start=T0 + 4000)
        assert list(task.branch_map.values()) == [
            (
                str(run_dir / "data" / "demo" / f"deepclean-{T0}-4096.hdf5"),
                T0 + 4000,
                T0 + 4096,
            ),
            (
                str(
                    run_dir
                    / "data"
                    / "demo"
                    / f"deepclean-{T0 + 4096}-2048.hdf5"
                ),
                T0 + 4096,
                T0 + 6144,
            ),
        ]

    def test_command(self, run_dir):
        task = _task(Clean, run_dir, branch=0, gpus="1")
        command = task.command()
        assert command[1] == "clean"
        assert _arg(command, "--model=") == Train.req(task).output().path
        assert _arg(command, "--device=") == "cuda:0"
        assert _arg(command, "--summary=") == task.output().path
        assert task.output().path.endswith(
            f"clean-{T0 + 4096}-{T0 + 6144}.json"
        )

    def test_back_to_back_files_cleaned_with_their_neighbours(self, run_dir):
        data = run_dir / "data" / "demo"
        first = str(data / f"deepclean-{T0}-4096.hdf5")
        second = str(data / f"deepclean-{T0 + 4096}-2048.hdf5")
        task = _task(Clean, run_dir, clean_start=T0 + 4000)
        for branch, expected in ((0, [first, second]), (1, [first, second])):
            command = task.req(task, branch=branch).command()
            assert _arg(command, "--data_files=") == f"[{','.join(expected)}]"

    def test_files_across_a_gap_are_not_joined(self, run_dir):
        data = run_dir / "data" / "gapped"
        data.mkdir()
        (data / f"segments-{T0}-{T0 + 6144}.txt").write_text(
            f"{T0} {T0 + 3072}\n{T0 + 4096} {T0 + 6144}\n"
        )
        for name in (f"{T0}-3072", f"{T0 + 4096}-2048"):
            (data / f"deepclean-{name}.hdf5").touch()
        task = _task(Clean, run_dir, data_run="gapped", clean_start=T0)
        for branch, name in ((0, f"{T0}-3072"), (1, f"{T0 + 4096}-2048")):
            command = task.req(task, branch=branch).command()
            assert _arg(command, "--data_files=") == (
                f"[{data / f'deepclean-{name}.hdf5'}]"
            )

    def test_window_geometry(self, run_dir):
        task = _task(
            Clean,
            run_dir,
            branch=0,
            clean_window_length=8.0,
            clean_window_stride=7.0,
        )
        command = task.command()
        assert _arg(command, "--kernel_length=") == "8.0"
        assert _arg(command, "--stride=") == "7.0"
        task = _task(
            Clean,
            run_dir,
            branch=0,
            clean_window_length=None,
            clean_window_stride=None,
        )
        assert not any(
            argument.startswith(("--kernel_length", "--stride"))
            for argument in task.command()
        )


@pytest.mark.parametrize("given_model", [False, True])
def test_evaluate_uses_longest_cleaned_span_and_training_span(
    run_dir, given_model
):
    options = {"train_offset": 0.0, "train_duration": 2048.0}
    if given_model:
        # a given model's baselines fit on the Train task's span too, never
        # on the evaluated file
        model = run_dir / "mine" / "model.pt"
        model.parent.mkdir()
        model.write_bytes(b"weights")
        options["model"] = str(model)
    task = _task(Evaluate, run_dir, **options)
    clean_dir = Path(task.clean_folder())
    clean_dir.mkdir(parents=True)
    summary = {"cleaned": [[T0 + 4098, T0 + 6142]]}
    (clean_dir / f"clean-{T0 + 4096}-{T0 + 6144}.json").write_text(
        json.dumps(summary)
    )
    command = task.command()
    assert command[1] == "evaluate"
    assert "--wandb.enabled=true" not in command
    assert float(_arg(command, "--start=")) == T0 + 4098
    assert float(_arg(command, "--end=")) == T0 + 6142
    assert _arg(command, "--train_file=") == str(
        run_dir / "data" / "demo" / f"deepclean-{T0}-4096.hdf5"
    )
    assert float(_arg(command, "--train_start=")) == T0
    assert float(_arg(command, "--train_end=")) == T0 + 2048
    assert _arg(command, "--mains_channel=") == "H1:PEM-CS_MAINSMON_EBAY_1_DQ"


def test_evaluate_logs_to_wandb_when_enabled(run_dir, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "secret")
    task = _task(Evaluate, run_dir, use_wandb=True)
    clean_dir = Path(task.clean_folder())
    clean_dir.mkdir(parents=True)
    (clean_dir / f"clean-{T0 + 4096}-{T0 + 6144}.json").write_text(
        json.dumps({"cleaned": [[T0 + 4098, T0 + 6142]]})
    )
    assert "--wandb.enabled=true" in task.command()
    assert task.sandbox_env({})["WANDB_API_KEY"] == "secret"


def test_clean_summary_listing_missing_frames_fails(run_dir):
    from deepclean.process import OutputsMissing

    task = _task(Clean, run_dir, branch=0)
    frame = Path(task.clean_folder()) / "H-H1_DEEPCLEAN-1262308096-2048.gwf"
    frame.parent.mkdir(parents=True)
    Path(task.output().path).write_text(
        json.dumps({"files": [str(frame)], "reused_files": []})
    )
    with pytest.raises(OutputsMissing, match="do not exist"):
        task.check_outputs()
    frame.write_bytes(b"frame")
    task.check_outputs()


class TestOnline:
    def test_publish_complete_only_for_this_model(self, run_dir):
        from deepclean.tasks import Publish

        model = run_dir / "mine" / "model.pt"
        model.parent.mkdir()
        model.write_bytes(b"weights")
        task = _task(
            Publish, run_dir, model=str(model), model_dir=str(run_dir / "m")
        )
        assert task.command()[1:] == [
            "publish",
            str(model),
            f"--model_dir={run_dir / 'm'}",
        ]
        assert not task.complete()
        (run_dir / "m").mkdir()
        record = Path(task.output().path)
        record.write_text(json.dumps({"sha256": "another model"}))
        assert not task.complete()
        import hashlib

        digest = hashlib.sha256(b"weights").hexdigest()
        record.write_text(json.dumps({"sha256": digest}))
        assert task.complete()

    def test_replay_every_file_of_the_stretch(self, run_dir):
        from deepclean.tasks import Replay

        task = _task(
            Replay, run_dir, clean_start=T0 + 4000, online_dir=str(run_dir)
        )
        commands = task.commands()
        assert [_arg(c, "--start=") for c in commands] == [
            str(T0 + 4000),
            str(T0 + 4096),
        ]
        assert [_arg(c, "--duration=") for c in commands] == ["96", "2048"]
        assert task.output().path.endswith(f"H-H1_llhoft-{T0 + 6143}-1.gwf")

    def test_online_command(self, run_dir):
        from deepclean.tasks import Replay

        task = _task(Online, run_dir, online_dir=str(run_dir / "online"))
        command = task.command()
        assert command[1] == "online"
        assert _arg(command, "--start=") == str(T0 + 4096 + 16)
        assert _arg(command, "--end=") == str(T0 + 6144 - 16)
        assert _arg(command, "--strain_dir=") == Replay.req(task).run_folder()
        assert _arg(command, "--summary=") == task.output().path
        live = _task(
            Online,
            run_dir,
            online_dir=str(run_dir / "online"),
            strain_dir="/frames/llhoft",
            online_start=T0 + 5000,
            online_end=T0 + 5010,
        )
        assert "frames" not in live.requires()
        assert _arg(live.command(), "--strain_dir=") == "/frames/llhoft"
        assert live.output().path.endswith(
            f"online-{T0 + 5000}-{T0 + 5010}.json"
        )


def test_commands_get_sleeping_openmp_workers(run_dir, monkeypatch):
    task = _task(Train, run_dir)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert task.command_env({}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert task.command_env({"OMP_WAIT_POLICY": "ACTIVE"}) == {
        "OMP_WAIT_POLICY": "ACTIVE"
    }
    gpu = _task(Train, run_dir, gpus="0")
    assert gpu.command_env({})["CUDA_VISIBLE_DEVICES"] == "0"


class TestClassicalStage:
    """classical_stage = nomad: NOMAD's residual files feed DeepClean."""

    @staticmethod
    def options(run_dir):
        return {
            "classical_stage": "nomad",
            "classical_dir": str(run_dir / "classical"),
        }

    def residuals(self, run_dir):
        """The Classical task, its summary written (complete)."""
        task = _task(Classical, run_dir, **self.options(run_dir))
        Path(task.run_folder()).mkdir(parents=True)
        Path(task.output().path).write_text(
            json.dumps({"files": [], "reused_files": []})
        )
        return task

    def test_command_fits_on_trains_spans_and_cleans_every_file(self, run_dir):
        data = run_dir / "data" / "demo"
        task = _task(
            Classical, run_dir, train_offset=100.0, **self.options(run_dir)
        )
        command = task.command()
        assert command[1] == "classical"
        assert _arg(command, "--data_files=") == (
            f"[{data}/deepclean-{T0}-4096.hdf5,"
            f"{data}/deepclean-{T0 + 4096}-2048.hdf5]"
        )
        train = Train.req(task)
        assert float(_arg(command, "--train_start=")) == T0 + 100
        assert float(_arg(command, "--train_end=")) == (
            T0 + 100 + train.train_duration + train.valid_duration
        )
        assert _arg(command, "--mains_channel=") == (
            "H1:PEM-CS_MAINSMON_EBAY_1_DQ"
        )
        assert Path(task.run_folder()).parent == run_dir / "classical"
        shorter = _task(
            Classical, run_dir, train_duration=1024.0, **self.options(run_dir)
        )
        assert shorter.run_folder() != task.run_folder()

    def test_train_and_analyze_read_the_residuals(self, run_dir):
        options = self.options(run_dir)
        classical = self.residuals(run_dir)
        folder = Path(classical.run_folder())
        train = _task(Train, run_dir, **options)
        assert train.requires() == classical
        assert _arg(train.command(), "--data.fname=") == str(
            folder / f"deepclean-{T0}-4096.hdf5"
        )
        assert train.run_folder() != _task(Train, run_dir).run_folder()
        # the hybrid model runs NOMAD itself on the fetched files
        clean = _task(Clean, run_dir, **options)
        assert [path for path, _, _ in clean.branch_map.values()] == [
            str(run_dir / "data" / "demo" / f"deepclean-{T0 + 4096}-2048.hdf5")
        ]
        assert clean.clean_folder() != _task(Clean, run_dir).clean_folder()
        analyze = _task(
            Analyze,
            run_dir,
            analysis_dir=str(run_dir / "analysis"),
            analysis_start=T0 + 4200,
            analysis_end=T0 + 4300,
            **options,
        )
        assert analyze.data_files() == [
            str(folder / f"deepclean-{T0 + 4096}-2048.hdf5")
        ]

    def test_evaluate_measures_against_the_raw_files(self, run_dir):
        options = self.options(run_dir)
        self.residuals(run_dir)
        task = _task(Evaluate, run_dir, **options)
        clean_dir = Path(task.clean_folder())
        clean_dir.mkdir(parents=True)
        (clean_dir / f"clean-{T0 + 4096}-{T0 + 6144}.json").write_text(
            json.dumps({"cleaned": [[T0 + 4098, T0 + 6142]]})
        )
        command = task.command()
        data = run_dir / "data" / "demo"
        assert _arg(command, "--data_file=") == str(
            data / f"deepclean-{T0 + 4096}-2048.hdf5"
        )
        assert _arg(command, "--train_file=") == str(
            data / f"deepclean-{T0}-4096.hdf5"
        )

    @pytest.mark.parametrize(
        ("task_class", "what"),
        [
            (Search, "the hyperparameter search"),
            (Discover, "witness discovery"),
            (RetrainOnline, "online retraining"),
        ],
    )
    def test_tasks_without_a_classical_stage_refuse_it(
        self, run_dir, task_class, what
    ):
        with pytest.raises(ValueError, match=f"{what} does not run after"):
            _task(task_class, run_dir, classical_stage="nomad")

    def test_train_on_a_given_file_refuses_it(self, run_dir):
        with pytest.raises(ValueError, match="unset data_fname"):
            _task(
                Train,
                run_dir,
                classical_stage="nomad",
                data_fname=str(run_dir / "file.hdf5"),
            )
