"""Clean archived data with a trained model, then evaluate the result."""

from __future__ import annotations

import json
import os

import law
import luigi

from deepclean.config import PathParameter, shared
from deepclean.runs import fingerprint
from deepclean.tasks.base import DeepCleanTask
from deepclean.tasks.condor import CondorWorkflow
from deepclean.tasks.data import DataParameters, Fetch
from deepclean.tasks.train import ModelParameters, Train


class CleanParameters(DataParameters, ModelParameters, DeepCleanTask):
    """Parameters shared by Clean and Evaluate."""

    project = "clean"

    clean_dir = shared(
        PathParameter,
        description="folder of the cleaning runs (one folder per model and "
        "cleaning settings)",
    )
    clean_run = luigi.Parameter(
        default="",
        description="name of the cleaning run (its folder under clean_dir "
        "and report_dir); empty: the training run's name plus a "
        "fingerprint of the model and the cleaning settings",
    )
    clean_start = shared(luigi.FloatParameter, description="GPS start")
    clean_end = shared(luigi.FloatParameter, description="GPS end")
    channel_suffix = shared(
        default="_DC", description="cleaned channel suffix"
    )

    clean_file_length = shared(
        luigi.FloatParameter,
        default=4096.0,
        description="seconds per output GWF file (1 for replays)",
    )
    clean_window_length = shared(
        luigi.OptionalFloatParameter,
        default=None,
        description="seconds per prediction window (default: the model's); "
        "longer windows predict each second fewer times",
    )
    clean_window_stride = shared(
        luigi.OptionalFloatParameter,
        default=None,
        description="seconds between prediction windows (default: the "
        "model's); the discarded edges must cover half the model's "
        "receptive field",
    )
    write_noise = luigi.BoolParameter(
        default=False, description="also write the predicted noise"
    )
    write_raw = luigi.BoolParameter(
        default=False, description="also write the raw strain"
    )

    def run_settings(self) -> dict:
        """The model, the data, every cleaning setting and the mains
        channel of Evaluate's ``Wiener + products`` and NOMAD baselines
        (Clean and Evaluate share the run name)."""
        return {
            "model": self.model_identity(),
            "data": os.path.basename(self.data_folder()),
            "channel_suffix": self.channel_suffix,
            "clean_file_length": self.clean_file_length,
            "clean_window_length": self.clean_window_length,
            "clean_window_stride": self.clean_window_stride,
            "write_noise": self.write_noise,
            "write_raw": self.write_raw,
            "mains_channel": self.resolved().line_witness,
        }

    def clean_run_name(self) -> str:
        """:attr:`clean_run`, or the model's run name plus a fingerprint."""
        if self.clean_run:
            return self.clean_run
        return f"{self.model_label()}-{fingerprint(self.run_settings())}"

    def clean_folder(self) -> str:
        """``{clean_dir}/{clean_run}``: cleaned frames and summaries."""
        return os.path.join(self.clean_dir, self.clean_run_name())

    def run_folder(self) -> str:
        return self.clean_folder()


class Clean(CleanParameters, law.LocalWorkflow, CondorWorkflow):
    """One branch per fetched file overlapping [clean_start, clean_end):
    ``{obs}-{ifo}_DEEPCLEAN-{gps}-{dur}.gwf`` files and a JSON summary."""

    def condor_base_directory(self) -> str:
        return self.run_folder()

    def workflow_requires(self):
        requirements = super().workflow_requires()
        requirements["data"] = Fetch.req(self)
        if self.model_requirement() is not None:
            requirements["model"] = self.model_requirement()
        return requirements

    def requires(self):
        return self.workflow_requires()

    @law.dynamic_workflow_condition
    def workflow_condition(self) -> bool:
        return self.workflow_input()["data"]["collection"].exists()

    @workflow_condition.create_branch_map
    def create_branch_map(self) -> dict[int, tuple[str, float, float]]:
        branches = {}
        for path, start, end in self.fetched_files():
            first = max(start, self.clean_start)
            last = min(end, self.clean_end)
            if last > first:
                branches[len(branches)] = (path, first, last)
        return branches

    @workflow_condition.output
    def output(self):
        _, start, end = self.branch_data
        return law.LocalFileTarget(
            os.path.join(
                self.run_folder(), f"clean-{start:.0f}-{end:.0f}.json"
            )
        )

    def context_files(self) -> list[str]:
        """The branch's file and the fetched files right before and after
        it: Fetch cuts one segment into back-to-back files, and the
        cleaner joins them so that no context is lost at the cuts."""
        path = self.branch_data[0]
        files = self.fetched_files()
        index = next(i for i, (p, _, _) in enumerate(files) if p == path)
        _, start, end = files[index]
        chosen = [path]
        if index > 0 and files[index - 1][2] == start:
            chosen.insert(0, files[index - 1][0])
        if index + 1 < len(files) and files[index + 1][1] == end:
            chosen.append(files[index + 1][0])
        return chosen

    def check_outputs(self) -> None:
        """The summary exists and every frame it lists exists."""
        super().check_outputs()
        self.check_listed_files("frame")

    def bind_paths(self) -> list[str]:
        path, _, _ = self.branch_data
        return [
            self.run_folder(),
            os.path.dirname(path),
            os.path.dirname(self.model_path()),
            *super().bind_paths(),
        ]

    def command(self) -> list[str]:
        _, start, end = self.branch_data
        device = "cuda:0" if self.gpus else "cpu"
        windows = [
            f"--{option}={value}"
            for option, value in (
                ("kernel_length", self.clean_window_length),
                ("stride", self.clean_window_stride),
            )
            if value is not None
        ]
        return [
            self.executable("deepclean-clean"),
            "clean",
            f"--model={self.model_path()}",
            f"--data_files=[{','.join(self.context_files())}]",
            f"--output_dir={self.run_folder()}",
            f"--start={start}",
            f"--end={end}",
            f"--file_length={self.clean_file_length}",
            f"--channel_suffix={self.channel_suffix}",
            f"--write_noise={str(self.write_noise).lower()}",
            f"--write_raw={str(self.write_raw).lower()}",
            f"--device={device}",
            f"--summary={self.output().path}",
            *windows,
        ]


class Evaluate(CleanParameters):
    """Report on the longest cleaned stretch: DeepClean against Wiener
    baselines and NOMAD (fitted on the Train task's training span, also
    for a given ``--model``) and, for simulated data, the ideal. A
    stretch that overlaps that span or the model's own training and
    validation spans is refused (the report would overstate the methods
    fitted there)."""

    report_dir = shared(
        PathParameter,
        description="folder of the reports (one folder per cleaning run)",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # no mains channel for the baseline: fail before any task runs
        self.mains_channel()

    def mains_channel(self) -> str:
        """The witness whose products with the others are the inputs of
        the ``Wiener + products`` baseline and NOMAD's noise witness: the
        line witness of the chosen problems.

        Raises:
            CouplingError: the problems name no line witness.
        """
        return self.resolved().require_line_witness(
            "the mains channel of Evaluate's Wiener + products and NOMAD "
            "baselines"
        )

    def run_folder(self) -> str:
        """``{report_dir}/{clean_run}``."""
        return os.path.join(self.report_dir, self.clean_run_name())

    def requires(self):
        requirements = {"clean": Clean.req(self)}
        if not self.model:
            requirements["model"] = Train.req(self)
        return requirements

    def output(self):
        return law.LocalFileTarget(
            os.path.join(self.run_folder(), "evaluation.json")
        )

    def stretch(self) -> tuple[str, float, float]:
        """``(data file, start, end)`` of the longest cleaned span."""
        candidates = []
        clean = self.requires()["clean"]
        for branch, target in clean.output()["collection"].targets.items():
            path = clean.branch_map[branch][0]
            summary = json.loads(target.load(formatter="text"))
            candidates.extend((path, a, b) for a, b in summary["cleaned"])
        if not candidates:
            raise ValueError(
                f"nothing was cleaned in [{self.clean_start}, "
                f"{self.clean_end}); see the clean summaries in "
                f"{self.clean_folder()}"
            )
        return max(candidates, key=lambda c: c[2] - c[1])

    def bind_paths(self) -> list[str]:
        return [
            self.run_folder(),
            self.clean_folder(),
            os.path.dirname(self.stretch()[0]),
            os.path.dirname(self.model_path()),
            *super().bind_paths(),
        ]

    def command(self) -> list[str]:
        path, start, end = self.stretch()
        args = [
            self.executable("deepclean-clean"),
            "evaluate",
            f"--model={self.model_path()}",
            f"--data_file={path}",
            f"--cleaned_dir={self.clean_folder()}",
            f"--output_dir={self.run_folder()}",
            f"--start={start}",
            f"--end={end}",
            f"--channel_suffix={self.channel_suffix}",
            f"--mains_channel={self.mains_channel()}",
        ]
        if self.use_wandb:
            args.append("--wandb.enabled=true")
        train_file = self.fetched_path(Train.req(self).training_file())
        file_start = next(
            start
            for path, start, _ in self.fetched_files()
            if path == train_file
        )
        train_start = file_start + self.train_offset
        return [
            *args,
            f"--train_file={train_file}",
            f"--train_start={train_start}",
            f"--train_end={train_start + self.train_duration}",
        ]
