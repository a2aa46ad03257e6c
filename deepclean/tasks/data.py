"""Query segments and fetch (or simulate) strain and witness data."""

from __future__ import annotations

import os

import law
import luigi

from deepclean.config import PathParameter, problems_list, shared
from deepclean.couplings import Resolved, resolve
from deepclean.runs import content_identity, fingerprint
from deepclean.tasks.base import DATA_FORWARDED, DeepCleanTask
from deepclean.tasks.condor import CondorWorkflow

SOURCES = ("simulated", "gwpy")
# Classical stages that can run before DeepClean (the hybrid).
CLASSICAL_STAGES = ("none", "nomad")


class DataParameters(law.Task):
    """What data the pipeline works on; every task downstream of
    :class:`Fetch` carries these so that it can require it."""

    ifo = shared(
        default=os.environ.get("DEEPCLEAN_IFO", "H1"),
        description="interferometer, e.g. H1 or L1",
    )
    problems = shared(description="comma list of subtraction problems")
    couplings_file = shared(
        PathParameter,
        default="",
        description="coupling file with extra subtraction problems",
    )
    strain_channel = shared(description="strain channel without IFO prefix")
    data_dir = shared(
        PathParameter,
        description="folder of the data folders (one per data settings)",
    )
    start = shared(luigi.IntParameter, description="GPS start")
    end = shared(luigi.IntParameter, description="GPS end")
    min_duration = shared(
        luigi.FloatParameter,
        description="shortest segment used, seconds",
    )
    source = shared(
        luigi.ChoiceParameter,
        choices=SOURCES,
        var_type=str,
        description="simulated (no credentials) or gwpy (LIGO servers)",
    )

    sample_rate = shared(luigi.FloatParameter, description="Hz")
    max_duration = shared(
        luigi.FloatParameter,
        description="longest file written, seconds",
    )
    prefix = shared(description="file name prefix")
    simulation_seed = shared(
        luigi.IntParameter,
        description="seed of the simulated detector",
    )
    simulation_config = shared(
        PathParameter,
        default="",
        description="YAML file of SimulationConfig fields (line and "
        "coupling strengths, drift, injections)",
    )
    gwpy_source = shared(
        default="",
        description="gwpy data source for source=gwpy: gwdatafind, nds2, "
        "or empty to let gwpy try each",
    )
    segment_flag = shared(
        description="data-quality flag without IFO prefix",
    )
    segment_server = shared(
        luigi.ChoiceParameter,
        choices=("dqsegdb", "gwosc"),
        var_type=str,
        default="dqsegdb",
        description="where real segments come from: DQSegDB (LIGO "
        "account) or GWOSC (open-data flags such as H1_DATA)",
    )

    classical_stage = shared(
        luigi.ChoiceParameter,
        choices=CLASSICAL_STAGES,
        var_type=str,
        default="none",
        description="nomad: the hybrid; NOMAD, fitted on Train's training "
        "and validation span, cleans every fetched file first (Classical "
        "task), DeepClean trains on what it leaves, and the model carries "
        "NOMAD to clean raw strain with both; none: DeepClean alone",
    )
    classical_dir = shared(
        PathParameter,
        default="runs/default/classical",
        description="folder of the classical stage's runs (residual "
        "files, one folder per data and fit settings)",
    )

    data_run = luigi.Parameter(
        default="",
        description="name of the data folder under data_dir; empty: "
        "derived from the data settings (source, channels, rate, seed, ...)",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # unknown problems or IFOs, bad bands, no mains monitor to
        # simulate: fail before any task runs
        self._resolved = resolve(
            self.ifo,
            problems_list(self.problems),
            self.couplings_file or None,
            sample_rate=self.sample_rate,
        )
        if self.source == "simulated":
            self.simulated_mains()

    def fetched_files(self) -> list[tuple[str, float, float]]:
        """``(path, start, end)`` of every fetched file, in GPS order."""
        fetch = Fetch.req(self)
        return sorted(
            (
                fetch.req(fetch, branch=branch).output().path,
                start,
                start + duration,
            )
            for branch, (start, duration) in fetch.branch_map.items()
        )

    def classical_task(self) -> law.Task | None:
        """The classical stage whose residual files DeepClean trains on
        and cleans; None without one."""
        if self.classical_stage == "none":
            return None
        from deepclean.tasks.classical import Classical

        return Classical.req(self)

    def refuse_classical_stage(self, what: str) -> None:
        """Refuse a classical stage where ``what`` does not support it.

        Raises:
            ValueError: ``classical_stage`` is not ``none``.
        """
        if self.classical_stage != "none":
            raise ValueError(
                f"{what} does not run after a classical stage; set "
                f"classical_stage = none (it is {self.classical_stage})"
            )

    def input_files(self) -> list[tuple[str, float, float]]:
        """``(path, start, end)`` of the files DeepClean trains on and is
        analysed on, in GPS order: the fetched files, or the classical
        stage's residual files (same names and spans)."""
        classical = self.classical_task()
        if classical is None:
            return self.fetched_files()
        return [
            (classical.residual_path(path), start, end)
            for path, start, end in self.fetched_files()
        ]

    def fetched_path(self, path: str) -> str:
        """The fetched file of one of :meth:`input_files` (the raw data a
        residual file was made from)."""
        if self.classical_task() is None:
            return path
        return os.path.join(self.data_folder(), os.path.basename(path))

    def resolved(self) -> Resolved:
        """Bands and witnesses of the chosen subtraction problems (resolved
        once, when the task is made)."""
        return self._resolved

    def simulated_mains(self) -> str:
        """The simulated detector's mains monitor: the line witness of the
        chosen problems.

        Raises:
            CouplingError: the problems name no line witness.
        """
        return self.resolved().require_line_witness(
            "the simulated detector's mains monitor"
        )

    def data_settings(self) -> dict:
        """Every setting that changes the data files' content."""
        settings = {
            "source": self.source,
            "channels": self.channels,
            "sample_rate": self.sample_rate,
            "segment_flag": self.segment_flag,
            "segment_server": self.segment_server,
            "min_duration": self.min_duration,
            "max_duration": self.max_duration,
            "prefix": self.prefix,
        }
        if self.source == "simulated":
            settings["mains_channel"] = self.simulated_mains()
            settings["simulation_seed"] = self.simulation_seed
            settings["simulation_config"] = (
                content_identity(self.simulation_config)
                if self.simulation_config
                else None
            )
        else:
            settings["gwpy_source"] = self.gwpy_source
        return settings

    def data_folder(self) -> str:
        """``{data_dir}/{data_run}``: segment lists and data files."""
        name = self.data_run or (
            f"{self.source}-{self.ifo}-{fingerprint(self.data_settings())}"
        )
        return os.path.join(self.data_dir, name)

    @property
    def channels(self) -> list[str]:
        """Strain followed by the witnesses of the chosen problems."""
        return [
            f"{self.ifo}:{self.strain_channel}",
            *self.resolved().witnesses,
        ]


class DataTask(DataParameters, DeepCleanTask):
    """A task of the data project, writing into :meth:`data_folder`."""

    project = "data"
    forwarded = (*DeepCleanTask.forwarded, *DATA_FORWARDED)

    def run_folder(self) -> str:
        return self.data_folder()

    def run_settings(self) -> dict:
        return self.data_settings()

    def bind_paths(self) -> list[str]:
        return [self.data_folder(), *super().bind_paths()]


class Query(DataTask):
    """Analysis-ready segments of [start, end) as a segment file."""

    def output(self):
        return law.LocalFileTarget(
            os.path.join(
                self.data_folder(), f"segments-{self.start}-{self.end}.txt"
            )
        )

    def command(self) -> list[str]:
        segment_source = (
            "simulated" if self.source == "simulated" else self.segment_server
        )
        return [
            self.executable("deepclean-data"),
            "query",
            f"--start={self.start}",
            f"--end={self.end}",
            f"--flag={self.ifo}:{self.segment_flag}",
            f"--min_duration={self.min_duration}",
            f"--source={segment_source}",
            f"--output={self.output().path}",
        ]


class Fetch(DataTask, law.LocalWorkflow, CondorWorkflow):
    """One HDF5 file per segment (cut at max_duration), gwpy's layout."""

    job_log = PathParameter(
        default="",
        significant=False,
        description="log file; each branch appends to {stem}-{branch}.log",
    )

    def condor_base_directory(self) -> str:
        return self.data_folder()

    def workflow_requires(self):
        requirements = super().workflow_requires()
        requirements["segments"] = Query.req(self)
        return requirements

    def requires(self):
        return Query.req(self)

    @law.dynamic_workflow_condition
    def workflow_condition(self) -> bool:
        return self.workflow_input()["segments"].exists()

    @workflow_condition.create_branch_map
    def create_branch_map(self) -> dict[int, tuple[int, int]]:
        branches: dict[int, tuple[int, int]] = {}
        for line in (
            self.workflow_input()["segments"]
            .load(formatter="text")
            .splitlines()
        ):
            if not line.strip() or line.startswith("#"):
                continue
            seg_start, seg_end = (int(float(x)) for x in line.split()[:2])
            step = int(self.max_duration)
            for chunk_start in range(seg_start, seg_end, step):
                duration = min(step, seg_end - chunk_start)
                if duration >= self.min_duration:
                    branches[len(branches)] = (chunk_start, duration)
        return branches

    @workflow_condition.output
    def output(self):
        start, duration = self.branch_data
        return law.LocalFileTarget(
            os.path.join(
                self.data_folder(), f"{self.prefix}-{start}-{duration}.hdf5"
            )
        )

    def log_file(self) -> str | None:
        if not self.job_log:
            return None
        stem, suffix = os.path.splitext(self.job_log)
        return f"{stem}-{self.branch}{suffix or '.log'}"

    def command(self) -> list[str]:
        start, duration = self.branch_data
        channels = self.channels
        common = [
            f"--start={start}",
            f"--sample_rate={self.sample_rate}",
            f"--output_dir={self.data_folder()}",
            f"--prefix={self.prefix}",
        ]
        if self.source == "simulated":
            args = [
                "simulate",
                *common,
                f"--duration={duration}",
                f"--strain_channel={channels[0]}",
                f"--witnesses=[{','.join(channels[1:])}]",
                f"--mains_channel={self.simulated_mains()}",
                f"--seed={self.simulation_seed}",
            ]
            if self.simulation_config:
                args.append(f"--config={self.simulation_config}")
        else:
            args = [
                "fetch",
                *common,
                f"--end={start + duration}",
                f"--channels=[{','.join(channels)}]",
            ]
            if self.gwpy_source:
                args.append(f"--gwpy_source={self.gwpy_source}")
        return [self.executable("deepclean-data"), *args]
