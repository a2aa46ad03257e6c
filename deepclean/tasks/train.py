"""Train a DeepClean model on fetched (or simulated) data."""

from __future__ import annotations

import os

import law
import luigi

from deepclean.config import PathParameter, config_paths, shared
from deepclean.runs import content_identity, data_file_identity, fingerprint
from deepclean.tasks.base import DeepCleanTask
from deepclean.tasks.data import DataParameters, Fetch


class TrainParameters(law.Task):
    """How the model is trained; tasks that require :class:`Train` carry
    these."""

    train_dir = shared(
        PathParameter,
        description="folder of the training runs (one folder per run)",
    )
    train_run = luigi.Parameter(
        default="",
        description="name of the training run (its folder under "
        "train_dir); empty: the YAML names plus a fingerprint of every "
        "setting that changes the model",
    )
    train_config = shared(
        description="comma list of YAMLs of model and optimiser settings, "
        "later ones overriding earlier ones (e.g. reference.yaml,gpu.yaml)",
    )
    data_fname = PathParameter(
        default="",
        description="HDF5 training file; empty: the first file Fetch writes",
    )
    train_offset = luigi.FloatParameter(
        default=0.0,
        description="start of the training span, seconds into the file "
        "(retraining on later stretches)",
    )
    train_duration = shared(luigi.FloatParameter)
    valid_duration = shared(luigi.FloatParameter)
    init_from = PathParameter(
        default="",
        description="exported model.pt to fine-tune from (use a lower "
        "learning rate in the YAML)",
    )
    witness_products = shared(
        luigi.BoolParameter,
        default=False,
        description="feed the network the products of the problems' line "
        "witness (the mains monitor) with every other witness as extra "
        "inputs (bilinear couplings)",
    )
    witness_analysis = shared(
        luigi.BoolParameter,
        default=True,
        significant=False,
        parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="after training, rank the witnesses the model relies "
        "on (saliency, coherence, ablation) into the run's analysis/ "
        "folder; false skips it",
    )
    use_wandb = shared(
        luigi.BoolParameter,
        default=False,
        significant=False,
        description="log to Weights & Biases (entity, project ... from "
        "the YAML's wandb section)",
    )


class Train(DataParameters, TrainParameters, DeepCleanTask):
    """``deepclean-train fit``: writes ``{train_dir}/{run}/model.pt``.

    Training starts ``train_offset`` s into the data file and uses
    ``train_duration`` s, then ``valid_duration`` s of validation.
    Channels, bands and sample rate come from the couplings registry and
    ``luigi.cfg``, injected into the YAML's ``data`` section.
    """

    project = "train"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.classical_stage != "none" and self.data_fname:
            raise ValueError(
                f"classical_stage = {self.classical_stage} cleans the "
                "fetched files before training; unset data_fname or set "
                "classical_stage = none"
            )

    def requires(self):
        if self.data_fname:
            return []
        return self.classical_task() or Fetch.req(self)

    def run_settings(self) -> dict:
        """Everything that changes the trained model."""
        resolved = self.resolved()
        if self.data_fname:
            data = data_file_identity(self.data_fname)
        else:
            data = {
                "data_run": os.path.basename(self.data_folder()),
                "settings": self.data_settings(),
                "start": self.start,
                "end": self.end,
            }
        classical = self.classical_task()
        if classical is not None:
            data["classical"] = classical.run_name()
        return {
            "data": data,
            "strain_channel": f"{self.ifo}:{self.strain_channel}",
            "witnesses": list(resolved.witnesses),
            "bands": [list(band) for band in resolved.bands],
            "sample_rate": self.sample_rate,
            "train_offset": self.training_offset(),
            "train_duration": self.train_duration,
            "valid_duration": self.valid_duration,
            "train_config": [
                self.config_identity(path) for path in self.config_files()
            ],
            "init_from": self.init_identity(),
            "product_witness": self.product_witness(),
        }

    def config_identity(self, path: str) -> dict:
        """What names a training YAML in the run's settings."""
        return content_identity(path)

    def init_model(self) -> str:
        """The exported model fine-tuning starts from; empty for none."""
        return self.init_from

    def init_identity(self) -> dict | None:
        """What names :meth:`init_model` in the run's settings."""
        return content_identity(self.init_from) if self.init_from else None

    def training_offset(self) -> float:
        """Start of the training span after the first training file's
        start, s."""
        return self.train_offset

    def product_witness(self) -> str | None:
        """The line witness whose products are network inputs, if on."""
        if not self.witness_products:
            return None
        return self.resolved().require_line_witness(
            "the witness of Train's witness products"
        )

    def run_folder(self) -> str:
        """``{train_dir}/{train_run}``."""
        name = self.train_run or "-".join(
            (
                "+".join(
                    os.path.splitext(os.path.basename(path))[0]
                    for path in self.config_files()
                ),
                fingerprint(self.run_settings()),
            )
        )
        return os.path.join(self.train_dir, name)

    def output(self):
        return law.LocalFileTarget(os.path.join(self.run_folder(), "model.pt"))

    def analysis_path(self) -> str | None:
        """``analysis.json`` of the witness analysis when it is on."""
        if not self.witness_analysis:
            return None
        return os.path.join(self.run_folder(), "analysis", "analysis.json")

    def output_paths(self) -> list[str]:
        """The model, and the analysis when it is on: a run without the
        analysis it was asked for is not complete (re-running it resumes
        the finished training and only analyses)."""
        analysis = self.analysis_path()
        return [*super().output_paths(), *([analysis] if analysis else [])]

    def complete(self) -> bool:
        return super().complete() and all(
            os.path.exists(path) for path in self.output_paths()
        )

    def bind_paths(self) -> list[str]:
        paths = [
            self.run_folder(),
            *{os.path.dirname(path) for path in self.training_files()},
            *(os.path.dirname(path) for path in self.config_files()),
        ]
        if self.init_model():
            paths.append(os.path.dirname(self.init_model()))
        return [*paths, *super().bind_paths()]

    def last_checkpoint(self) -> str:
        """Checkpoint of the last finished epoch: a run that stopped
        part-way resumes from it."""
        return os.path.join(self.run_folder(), "checkpoints", "last.ckpt")

    def config_files(self) -> list[str]:
        """Absolute paths of the training YAMLs, in order."""
        return config_paths(self.train_config)

    def training_file(self) -> str:
        """The data file holding the training and validation spans (the
        first fetched file, or its residual with a classical stage)."""
        if self.data_fname:
            return self.data_fname
        return self.input_files()[0][0]

    def training_files(self) -> list[str]:
        """Back-to-back data files holding the training and validation
        spans (one by default: :meth:`training_file`)."""
        return [self.training_file()]

    def fit_options(self) -> list[str]:
        """``deepclean-train fit`` options that make the model: configs,
        injected data parameters, fine-tuning, witness products and W&B
        (not the output folder or the devices)."""
        resolved = self.resolved()
        bands = ",".join(f"[{low},{high}]" for low, high in resolved.bands)
        files = self.training_files()
        fname = files[0] if len(files) == 1 else f"[{','.join(files)}]"
        args = [
            *(f"--config={path}" for path in self.config_files()),
            f"--data.fname={fname}",
            f"--data.strain_channel={self.ifo}:{self.strain_channel}",
            f"--data.witnesses=[{','.join(resolved.witnesses)}]",
            f"--data.bands=[{bands}]",
            f"--data.sample_rate={self.sample_rate}",
            f"--data.train_offset={self.training_offset()}",
            f"--data.train_duration={self.train_duration}",
            f"--data.valid_duration={self.valid_duration}",
        ]
        if self.init_model():
            args.append(f"--model.init_from={self.init_model()}")
        if self.witness_products:
            args.append(f"--data.product_witness={self.product_witness()}")
        if resolved.line_witness is not None:
            args.append(f"--model.line_witness={resolved.line_witness}")
        if self.use_wandb:
            args.append("--wandb.enabled=true")
        if not self.witness_analysis:
            args.append("--analysis.enabled=false")
        return args

    def command(self) -> list[str]:
        args = [
            self.executable("deepclean-train"),
            "fit",
            *self.fit_options(),
            f"--trainer.default_root_dir={self.run_folder()}",
        ]
        if self.gpus:
            devices = len(self.gpus.split(","))
            args += [
                "--trainer.accelerator=gpu",
                f"--trainer.devices={devices}",
            ]
            if devices > 1:
                args.append("--trainer.strategy=ddp")
        else:
            args += ["--trainer.accelerator=cpu", "--trainer.devices=1"]
        if os.path.exists(self.last_checkpoint()):
            args.append(f"--ckpt_path={self.last_checkpoint()}")
        return args


class ModelParameters(TrainParameters):
    """Which exported model a task uses: ``--model``, or Train's."""

    model = PathParameter(
        default="",
        description="exported model.pt; empty: the model Train writes",
    )

    def model_path(self) -> str:
        return self.model or Train.req(self).output().path

    def model_requirement(self) -> law.Task | None:
        """The task that writes :meth:`model_path`; None for a given
        model."""
        return None if self.model else Train.req(self)

    def model_identity(self) -> dict:
        """What names the model in the run's settings."""
        if self.model:
            return content_identity(self.model)
        train = Train.req(self)
        return {
            "train_run": train.run_name(),
            "settings": fingerprint(train.run_settings()),
        }

    def model_label(self) -> str:
        """The model's name in run folder names: Train's run name, or the
        name of the folder holding ``--model``."""
        if self.model:
            return os.path.basename(
                os.path.dirname(os.path.abspath(self.model))
            )
        return Train.req(self).run_name()
