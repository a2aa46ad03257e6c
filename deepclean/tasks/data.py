"""Query segments and fetch (or simulate) strain and witness data."""

from __future__ import annotations

import os

import law
import luigi

from deepclean.config import PathParameter, problems_list, shared
from deepclean.couplings import Resolved, resolve
from deepclean.tasks.base import DATA_FORWARDED, DeepCleanTask
from deepclean.tasks.condor import CondorWorkflow

SOURCES = ("simulated", "gwpy")


class DataParameters(law.Task):
    """What data the pipeline works on; every task downstream of
    :class:`Fetch` carries these so that it can require it."""

    ifo = shared(
        "ifo",
        default=os.environ.get("DEEPCLEAN_IFO", "H1"),
        description="interferometer, e.g. H1 or L1",
    )
    problems = shared(
        "problems", description="comma list of subtraction problems"
    )
    couplings_file = shared(
        "couplings_file",
        PathParameter,
        default="",
        description="coupling file with extra subtraction problems",
    )
    strain_channel = shared(
        "strain_channel", description="strain channel without IFO prefix"
    )
    data_dir = shared(
        "data_dir",
        PathParameter,
        description="folder of segment lists and data files",
    )
    start = shared("start", luigi.IntParameter, description="GPS start")
    end = shared("end", luigi.IntParameter, description="GPS end")
    min_duration = shared(
        "min_duration",
        luigi.FloatParameter,
        description="shortest segment used, seconds",
    )
    source = shared(
        "source",
        luigi.ChoiceParameter,
        choices=SOURCES,
        var_type=str,
        description="simulated (no credentials) or gwpy (LIGO servers)",
    )

    sample_rate = shared("sample_rate", luigi.FloatParameter, description="Hz")
    max_duration = shared(
        "max_duration",
        luigi.FloatParameter,
        description="longest file written, seconds",
    )
    prefix = shared("prefix", description="file name prefix")
    seed = shared(
        "simulation_seed",
        luigi.IntParameter,
        description="seed of the simulated detector",
    )
    simulation_config = shared(
        "simulation_config",
        PathParameter,
        default="",
        description="YAML file of SimulationConfig fields (line and "
        "coupling strengths, drift, injections)",
    )
    gwpy_source = shared(
        "gwpy_source",
        default="",
        description="gwpy data source for source=gwpy: gwdatafind, nds2, "
        "or empty to let gwpy try each",
    )
    segment_flag = shared(
        "segment_flag",
        description="data-quality flag without IFO prefix",
    )
    segment_server = shared(
        "segment_server",
        luigi.ChoiceParameter,
        choices=("dqsegdb", "gwosc"),
        var_type=str,
        default="dqsegdb",
        description="where real segments come from: DQSegDB (LIGO "
        "account) or GWOSC (open-data flags such as H1_DATA)",
    )

    def resolved(self) -> Resolved:
        """Bands and witnesses of the chosen subtraction problems."""
        return resolve(
            self.ifo, problems_list(self.problems), self.couplings_file or None
        )

    @property
    def channels(self) -> list[str]:
        """Strain followed by the witnesses of the chosen problems."""
        return [
            f"{self.ifo}:{self.strain_channel}",
            *self.resolved().witnesses,
        ]


class DataTask(DataParameters, DeepCleanTask):
    """A task of the data project."""

    project = "data"
    forwarded = (*DeepCleanTask.forwarded, *DATA_FORWARDED)

    def bind_paths(self) -> list[str]:
        return [self.data_dir, *super().bind_paths()]


class Query(DataTask):
    """Analysis-ready segments of [start, end) as a segment file."""

    def output(self):
        return law.LocalFileTarget(
            os.path.join(
                self.data_dir, f"segments-{self.start}-{self.end}.txt"
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
        return self.data_dir

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
                self.data_dir, f"{self.prefix}-{start}-{duration}.hdf5"
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
            f"--output_dir={self.data_dir}",
            f"--prefix={self.prefix}",
        ]
        if self.source == "simulated":
            args = [
                "simulate",
                *common,
                f"--duration={duration}",
                f"--strain_channel={channels[0]}",
                f"--witnesses=[{','.join(channels[1:])}]",
                f"--seed={self.seed}",
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
