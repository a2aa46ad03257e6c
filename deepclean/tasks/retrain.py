"""Retraining at a fixed cadence, as production DeepClean runs.

The first model trains on the first ``train_duration`` s (plus
``valid_duration`` s of validation) of a segment; then every ``cadence``
s the live model is fine-tuned on the most recent data, the promotion
gate decides whether the new model goes live, and the live model cleans
the next ``cadence`` s. A model only ever cleans data after the end of
its training span. Every step is its own task with its own outputs, so a
killed run continues from the last finished step:

- :class:`StepTrain`: trains (step 0) or fine-tunes the live model of the
  step before (``finetune_config`` stacked on ``train_config``);
- :class:`StepModel`: ``deepclean-clean gate`` on the held-out
  validation span, writing the step's live model and ``gate.json``;
- :class:`StepClean`: cleans the step's span with its live model (and,
  for the comparison, the whole stretch with the first model alone);
- :class:`RetrainReport`: ``deepclean-clean retrain-report``;
- :class:`Retrain`: fetches the data, plans the steps and runs the rest.

:class:`RetrainOnline` runs the same loop beside the online cleaner:
``deepclean-train service`` fine-tunes the published model on the latest
low-latency frames and publishes the winners into the cleaner's model
folder.
"""

from __future__ import annotations

import json
import logging
import os
from typing import NamedTuple

import law
import luigi

from deepclean.config import PathParameter, config_paths, shared
from deepclean.runs import content_identity, fingerprint
from deepclean.tasks.base import DeepCleanTask
from deepclean.tasks.clean import Clean, CleanParameters
from deepclean.tasks.condor import CondorWorkflow
from deepclean.tasks.data import DataParameters, Fetch
from deepclean.tasks.online import Online
from deepclean.tasks.search import Search, SearchParameters
from deepclean.tasks.train import Train, TrainParameters

logger = logging.getLogger("luigi-interface")


class RetrainStep(NamedTuple):
    """One cadence step of a retraining run.

    Attributes:
        index: Step number, from 0 (the first model).
        train_start: GPS start of the training span, s.
        gate_start: GPS start of the held-out (validation) span the gate
            compares models on, s; it ends at ``start``.
        start: GPS start of the span the step's live model cleans, s.
        end: GPS end, s.
        files: Back-to-back fetched files holding
            ``[train_start, end)``, in GPS order (the gate's data, with
            the context around its span).
        train_files: Those of them holding the training and validation
            spans ``[train_start, start)``.
    """

    index: int
    train_start: float
    gate_start: float
    start: float
    end: float
    files: tuple[str, ...]
    train_files: tuple[str, ...]


class ScheduleError(ValueError):
    """No retraining step fits the data, or the settings contradict."""


def plan_steps(
    files: list[tuple[str, float, float]],
    train_duration: float,
    valid_duration: float,
    cadence: float,
) -> tuple[list[RetrainStep], list[str]]:
    """Lay the retraining steps over the fetched files.

    Back-to-back files form a segment. In each segment the first step's
    span starts ``train_duration + valid_duration`` s in, and the next
    ones every ``cadence`` s while a whole ``cadence`` fits; each trains
    on the ``train_duration + valid_duration`` s before its span. Steps
    continue across gaps (fine-tuning the live model in the next segment).

    Args:
        files: ``(path, start, end)`` of every fetched file, GPS s.
        train_duration: Training span, s.
        valid_duration: Held-out span after it, s (validation and gate).
        cadence: Seconds between steps, each cleaned by one live model.

    Returns:
        ``(steps, skipped)``: the steps in GPS order and one sentence per
        segment too short for a step.

    Raises:
        ScheduleError: a cadence shorter than the held-out span (the gate
            would compare on data the live model trained on), or no step
            fits in any segment.
    """
    for name, value in (
        ("cadence", cadence),
        ("train_duration", train_duration),
        ("valid_duration", valid_duration),
    ):
        if not value > 0:
            raise ScheduleError(f"{name} must be > 0 s, got {value:g}")
    if cadence < valid_duration:
        raise ScheduleError(
            f"cadence {cadence:g} s is shorter than valid_duration "
            f"{valid_duration:g} s: the gate would compare the models on "
            "data the live model trained on; raise the cadence or shorten "
            "valid_duration"
        )
    train_duration, valid_duration, cadence = (
        float(value) for value in (train_duration, valid_duration, cadence)
    )
    segments: list[list[tuple[str, float, float]]] = []
    for path, start, end in sorted(files, key=lambda f: f[1]):
        if segments and segments[-1][-1][2] == start:
            segments[-1].append((path, float(start), float(end)))
        else:
            segments.append([(path, float(start), float(end))])
    history = train_duration + valid_duration
    steps: list[RetrainStep] = []
    skipped = []
    for segment in segments:
        seg_start, seg_end = segment[0][1], segment[-1][2]
        start = seg_start + history
        if start + cadence > seg_end:
            skipped.append(
                f"segment [{seg_start:g}, {seg_end:g}) holds "
                f"{seg_end - seg_start:g} s, fewer than the "
                f"{history + cadence:g} s of training, validation and one "
                "cadence step; skipped"
            )
            continue
        while start + cadence <= seg_end:
            first = start - history
            steps.append(
                RetrainStep(
                    index=len(steps),
                    train_start=first,
                    gate_start=start - valid_duration,
                    start=start,
                    end=start + cadence,
                    files=tuple(
                        path
                        for path, a, b in segment
                        if b > first and a < start + cadence
                    ),
                    train_files=tuple(
                        path
                        for path, a, b in segment
                        if b > first and a < start
                    ),
                )
            )
            start += cadence
    if not steps:
        longest = max((s[-1][2] - s[0][1] for s in segments), default=0)
        raise ScheduleError(
            f"no retraining step fits: each needs {history + cadence:g} s "
            f"of contiguous data (train_duration {train_duration:g} + "
            f"valid_duration {valid_duration:g} + cadence {cadence:g}) and "
            f"the longest segment holds {longest:g} s; fetch a longer "
            "stretch or shorten the durations"
        )
    return steps, skipped


class RetrainParameters(SearchParameters):
    """How retraining runs; every retraining task carries these (each
    with the data parameters). With a classical stage every step trains
    on its residual files, so NOMAD, fitted once on the first step's
    training span, stays fixed while DeepClean is fine-tuned."""

    retrain_dir = shared(
        PathParameter,
        description="folder of the retraining runs (one folder per run)",
    )
    retrain_run = luigi.Parameter(
        default="",
        description="name of the retraining run (its folder under "
        "retrain_dir); empty: a fingerprint of every setting",
    )
    cadence = shared(
        luigi.FloatParameter,
        description="seconds between retraining steps; each live model "
        "cleans the next cadence s",
    )
    finetune_config = shared(
        description="comma list of YAMLs stacked on train_config for the "
        "fine-tuning steps (lower learning rate, fewer epochs)",
    )
    step_workflow = luigi.ChoiceParameter(
        choices=("local", "htcondor"),
        default="local",
        significant=False,
        description="how each step's training, gate and cleaning run: "
        "here, or as HTCondor jobs (each after the step before)",
    )
    search = luigi.BoolParameter(
        default=False,
        description="search hyperparameters first (Search) and train and "
        "fine-tune with its best.yaml stacked on train_config",
    )
    gate_tolerance = shared(
        luigi.FloatParameter,
        default=0.005,
        description="a candidate goes live only if its out-of-band ASD "
        "ratio is within this of 1 (and its in-band ratio beats the live "
        "model's)",
    )

    def finetune_files(self) -> list[str]:
        """Absolute paths of the fine-tuning YAMLs, in order."""
        return config_paths(self.finetune_config)

    def schedule(self) -> list[RetrainStep]:
        """The steps over the fetched files (:func:`plan_steps`)."""
        return plan_steps(
            self.fetched_files(),
            self.train_duration,
            self.valid_duration,
            self.cadence,
        )[0]

    def retrain_settings(self) -> dict:
        """Every setting that changes a retraining run's results."""
        resolved = self.resolved()
        classical = self.classical_task()
        return {
            "data": os.path.basename(Fetch.req(self).data_folder()),
            "classical": None if classical is None else classical.run_name(),
            "strain_channel": f"{self.ifo}:{self.strain_channel}",
            "witnesses": list(resolved.witnesses),
            "bands": [list(band) for band in resolved.bands],
            "train_config": [
                content_identity(path)
                for path in Train.req(self).config_files()
            ],
            "finetune_config": [
                content_identity(path) for path in self.finetune_files()
            ],
            "train_duration": self.train_duration,
            "valid_duration": self.valid_duration,
            "cadence": self.cadence,
            "gate_tolerance": self.gate_tolerance,
            "witness_products": self.witness_products,
            "search": (
                os.path.basename(Search.req(self).search_folder())
                if self.search
                else None
            ),
        }

    def retrain_folder(self) -> str:
        """``{retrain_dir}/{retrain_run}``."""
        name = self.retrain_run or (
            f"retrain-{fingerprint(self.retrain_settings())}"
        )
        return os.path.join(self.retrain_dir, name)

    def step_folder(self, index: int) -> str:
        return os.path.join(self.retrain_folder(), f"step-{index:03d}")

    def step_task(self, cls: type, **kwargs) -> law.Task:
        """A step task required from this one, run as ``step_workflow``
        says."""
        return cls.req(self, workflow=self.step_workflow, **kwargs)


class StepWorkflow(law.LocalWorkflow, CondorWorkflow):
    """One retraining step as a workflow of one branch, so that
    ``step_workflow = htcondor`` runs it as an HTCondor job once the
    steps it needs are done. Subclasses list those in
    :meth:`step_requirements`."""

    step = luigi.IntParameter(description="retraining step, from 0")

    def the_step(self) -> RetrainStep:
        """This step of the schedule."""
        steps = self.schedule()
        if not 0 <= self.step < len(steps):
            raise ScheduleError(
                f"step {self.step} is not among the {len(steps)} steps of "
                "the schedule"
            )
        return steps[self.step]

    def create_branch_map(self) -> dict[int, int]:
        return {0: self.step}

    def condor_base_directory(self) -> str:
        return self.step_folder(self.step)

    def step_requirements(self) -> dict:
        raise NotImplementedError

    def workflow_requires(self):
        requirements = super().workflow_requires()
        requirements.update(self.step_requirements())
        return requirements

    def requires(self):
        return self.step_requirements()


class StepTrain(RetrainParameters, Train, StepWorkflow):
    """Trains the first model (step 0) or fine-tunes the live model of
    the step before on the most recent data."""

    def requires(self):
        # Train's requires comes first in the method order
        return self.step_requirements()

    def step_requirements(self) -> dict:
        requirements = {"data": self.classical_task() or Fetch.req(self)}
        if self.step > 0:
            requirements["live"] = self.step_task(
                StepModel, step=self.step - 1
            )
        if self.search:
            requirements["search"] = Search.req(self)
        return requirements

    def search_best(self) -> str:
        """The search's ``best.yaml``."""
        return Search.req(self).output()["best"].path

    def config_files(self) -> list[str]:
        files = super().config_files()
        if self.search:
            files.append(self.search_best())
        return files + self.finetune_files() if self.step > 0 else files

    def config_identity(self, path: str) -> dict:
        if self.search and path == self.search_best():
            return {"search": os.path.basename(os.path.dirname(path))}
        return super().config_identity(path)

    def training_files(self) -> list[str]:
        classical = self.classical_task()
        files = self.the_step().train_files
        if classical is None:
            return list(files)
        return [classical.residual_path(path) for path in files]

    def training_file(self) -> str:
        return self.training_files()[0]

    def training_offset(self) -> float:
        step = self.the_step()
        file_start = next(
            s for p, s, _ in self.fetched_files() if p == step.train_files[0]
        )
        return step.train_start - file_start

    def init_model(self) -> str:
        if self.step == 0:
            return ""
        return StepModel.req(self, step=self.step - 1).model_target().path

    def init_identity(self) -> dict | None:
        if self.step == 0:
            return None
        return {
            "live_model_of_step": self.step - 1,
            "retrain": fingerprint(self.retrain_settings()),
        }

    def run_folder(self) -> str:
        return os.path.join(self.step_folder(self.step), "train")


class StepModel(
    DataParameters,
    TrainParameters,
    RetrainParameters,
    DeepCleanTask,
    StepWorkflow,
):
    """The promotion gate of one step: ``{step}/live/model.pt`` is the
    model live from the step's span on, ``gate.json`` says why."""

    project = "clean"

    def step_requirements(self) -> dict:
        requirements = {"candidate": self.step_task(StepTrain)}
        if self.step > 0:
            requirements["live"] = self.step_task(
                StepModel, step=self.step - 1
            )
        return requirements

    def run_folder(self) -> str:
        return os.path.join(self.step_folder(self.step), "live")

    def run_settings(self) -> dict:
        return {"retrain": self.retrain_settings(), "step": self.step}

    def model_target(self) -> law.LocalFileTarget:
        return law.LocalFileTarget(os.path.join(self.run_folder(), "model.pt"))

    def output(self):
        return {
            "model": self.model_target(),
            "gate": law.LocalFileTarget(
                os.path.join(self.run_folder(), "gate.json")
            ),
        }

    def bind_paths(self) -> list[str]:
        step = self.the_step()
        paths = [
            self.step_folder(self.step),
            *{os.path.dirname(path) for path in step.files},
        ]
        if self.step > 0:
            paths.append(self.step_folder(self.step - 1))
        return [*paths, *super().bind_paths()]

    def command(self) -> list[str]:
        step = self.the_step()
        args = [
            self.executable("deepclean-clean"),
            "gate",
            f"--candidate={StepTrain.req(self, branch=0).output().path}",
            f"--data_files=[{','.join(step.files)}]",
            f"--start={step.gate_start}",
            f"--end={step.start}",
            f"--output_dir={self.run_folder()}",
            f"--label=step-{self.step:03d}",
            f"--out_of_band_tolerance={self.gate_tolerance}",
            f"--device={'cuda:0' if self.gpus else 'cpu'}",
        ]
        if self.step > 0:
            live = StepModel.req(self, step=self.step - 1).model_target()
            args.append(f"--live={live.path}")
        return args


class StepClean(RetrainParameters, Clean):
    """Cleans ``[clean_start, clean_end)`` with the live model of a step
    into the step's folder, or, with ``first_only``, with the first model
    into the run's ``first-only`` folder (the no-retraining comparison)."""

    step = luigi.IntParameter(description="retraining step, from 0")
    first_only = luigi.BoolParameter(
        default=False,
        description="the first model alone, cleaning the whole stretch",
    )

    def model_requirement(self) -> law.Task:
        return self.step_task(StepModel, step=self.step)

    def model_path(self) -> str:
        return self.model_requirement().model_target().path

    def model_identity(self) -> dict:
        return {
            "live_model_of_step": self.step,
            "retrain": fingerprint(self.retrain_settings()),
        }

    def clean_folder(self) -> str:
        if self.first_only:
            return os.path.join(self.retrain_folder(), "first-only")
        return os.path.join(self.step_folder(self.step), "cleaned")


class RetrainReport(RetrainParameters, CleanParameters):
    """``deepclean-clean retrain-report``: every step's metrics against
    the first model alone, the gate's decisions, as JSON, PNG and HTML."""

    def requires(self):
        steps = self.schedule()
        return {
            "models": [self.step_task(StepModel, step=s.index) for s in steps],
            "steps": [
                self.step_task(
                    StepClean,
                    step=s.index,
                    clean_start=s.start,
                    clean_end=s.end,
                )
                for s in steps
            ],
            "first_only": self.step_task(
                StepClean,
                step=0,
                first_only=True,
                clean_start=steps[0].start,
                clean_end=steps[-1].end,
            ),
        }

    def run_folder(self) -> str:
        return os.path.join(self.retrain_folder(), "report")

    def run_settings(self) -> dict:
        return {
            "retrain": self.retrain_settings(),
            "channel_suffix": self.channel_suffix,
        }

    def output(self):
        return law.LocalFileTarget(
            os.path.join(self.run_folder(), "retrain.json")
        )

    def bind_paths(self) -> list[str]:
        folders = {
            os.path.dirname(path) for path, _, _ in self.fetched_files()
        }
        return [self.retrain_folder(), *folders, *super().bind_paths()]

    def command(self) -> list[str]:
        requirements = self.requires()
        steps = [
            {
                "start": s.start,
                "end": s.end,
                "gate_dir": os.path.join(self.step_folder(s.index), "live"),
                "cleaned_dir": task.clean_folder(),
            }
            for s, task in zip(
                self.schedule(), requirements["steps"], strict=True
            )
        ]
        files = sorted({f for s in self.schedule() for f in s.files})
        return [
            self.executable("deepclean-clean"),
            "retrain-report",
            f"--steps={json.dumps(steps)}",
            f"--first_only_dir={requirements['first_only'].clean_folder()}",
            f"--data_files=[{','.join(files)}]",
            f"--output_dir={self.run_folder()}",
            f"--channel_suffix={self.channel_suffix}",
            *(["--wandb.enabled=true"] if self.use_wandb else []),
        ]


class Retrain(RetrainParameters, CleanParameters):
    """Fetch (or simulate) the stretch, then train, gate, fine-tune and
    clean at the cadence, and report against no retraining. Finished
    steps are reused; this task prints the schedule and the verdict every
    run."""

    @property
    def sandbox(self) -> str:
        # only orchestrates: the tasks it runs use the images
        return law.NO_STR

    def requires(self):
        return Fetch.req(self)

    def output(self):
        return []

    def complete(self) -> bool:
        return False

    def run(self):
        steps, skipped = plan_steps(
            self.fetched_files(),
            self.train_duration,
            self.valid_duration,
            self.cadence,
        )
        for sentence in skipped:
            logger.warning("Retrain: %s", sentence)
        logger.info(
            "Retrain: %d steps of %g s from GPS %.0f to %.0f in %s",
            len(steps),
            self.cadence,
            steps[0].start,
            steps[-1].end,
            self.retrain_folder(),
        )
        report = yield RetrainReport.req(self)
        content = json.loads(report.load(formatter="text"))
        print(f"report: {report.sibling('report.html', type='f').path}")
        print(retrain_table(content))


def retrain_table(content: dict) -> str:
    """Per step: span, live model, gate decision and in-band ASD ratio
    of both versions, then the verdict."""
    rows = [
        f"{'step':>4} {'GPS start':>12} {'live model':>12} {'gate':>9} "
        f"{'retrained':>10} {'first only':>10}"
    ]
    for step in content["steps"]:
        gate = "promoted" if step["gate"]["promoted"] else "kept"
        rows.append(
            f"{step['step']:>4} {step['start']:>12.0f} "
            f"{step['gate']['live_model']:>12} {gate:>9} "
            f"{step['retrained']['in_band_asd_ratio']:>10.4f} "
            f"{step['first model only']['in_band_asd_ratio']:>10.4f}"
        )
    rows.append(content["summary"]["verdict"])
    return "\n".join(rows)


class RetrainOnline(RetrainParameters, Online):
    """``deepclean-train service`` on the frames the online cleaner reads
    (live ones in ``strain_dir``, or the replayed cleaning stretch): every
    ``cadence`` s it fine-tunes the published model on the latest
    ``train_duration + valid_duration`` s, gates it on the last
    ``valid_duration`` s and publishes a winner into ``model_dir``, from
    which ``Online`` switches at a frame boundary. ``online_start`` and
    ``online_end`` are the GPS seconds the first and last steps' data end
    at (-1: as early as the replayed frames allow, and the replay's end).
    """

    project = "train"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.refuse_classical_stage("online retraining")
        if not self.strain_dir:
            # the replay must hold one step's data: fail before running
            self.span()

    def span(self) -> tuple[int, int]:
        """GPS seconds the first and last steps' data end at."""
        history = round(self.train_duration + self.valid_duration)
        start, end = self.online_start, self.online_end
        if not self.strain_dir:
            first = int(self.clean_start) + history
            start = first if start < 0 else start
            end = int(self.clean_end) if end < 0 else end
            if start > int(self.clean_end) or start - history < int(
                self.clean_start
            ):
                raise ScheduleError(
                    f"the replayed frames [{self.clean_start:.0f}, "
                    f"{self.clean_end:.0f}) cannot hold train_duration + "
                    f"valid_duration = {history} s before a step ending at "
                    f"{start}; shorten them (e.g. --train-duration 1536 "
                    "--valid-duration 256 --cadence 256) or replay more"
                )
        if end < 0:
            raise ScheduleError(
                "give --online-end for live frames (the service runs until "
                "then)"
            )
        return start, end

    def run_folder(self) -> str:
        """``{retrain_dir}/online-{clean run}``."""
        return os.path.join(
            self.retrain_dir, f"online-{self.clean_run_name()}"
        )

    def output(self):
        start, end = self.span()
        return law.LocalFileTarget(
            os.path.join(self.run_folder(), f"service-{start}-{end}.json")
        )

    def command(self) -> list[str]:
        start, end = self.span()
        configs = [*Train.req(self).config_files(), *self.finetune_files()]
        device = "gpu" if self.gpus else "cpu"
        fit = [
            *(f"--config={path}" for path in configs),
            f"--trainer.accelerator={device}",
            "--trainer.devices=1",
        ]
        args = [
            self.executable("deepclean-train"),
            "service",
            f"--strain_dir={self.frames_folder()}",
            f"--model_dir={self.model_dir}",
            f"--output_dir={self.run_folder()}",
            f"--fit_args={json.dumps(fit)}",
            f"--cadence={self.cadence}",
            f"--train_duration={self.train_duration}",
            f"--valid_duration={self.valid_duration}",
            f"--start={start}",
            f"--end={end}",
            f"--out_of_band_tolerance={self.gate_tolerance}",
            f"--device={'cuda:0' if self.gpus else 'cpu'}",
            f"--summary={self.output().path}",
        ]
        if self.witness_dir:
            args.append(f"--witness_dir={self.witness_dir}")
        return args
