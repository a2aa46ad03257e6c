"""Running workflow branches as HTCondor jobs on the LIGO Data Grid."""

from __future__ import annotations

import os

import law
import luigi

from deepclean.config import PathParameter, shared

law.contrib.load("htcondor")


class CondorWorkflow(law.htcondor.HTCondorWorkflow):
    """``--workflow htcondor``: one job per branch, LDG accounting set.

    Jobs run ``law run`` for their branch with the submitting environment
    (``getenv``), so the same code, configuration and credentials apply.
    """

    condor_directory = PathParameter(
        default="",
        significant=False,
        description="folder for job files and logs; default: "
        "{task output folder}/condor",
    )
    accounting_group = shared(
        default=os.environ.get("LIGO_GROUP", ""),
        significant=False,
        description="LDG accounting group, e.g. "
        "ligo.dev.o4.detchar.subtraction.deepclean",
    )
    accounting_group_user = shared(
        default=os.environ.get("LIGO_USER", os.environ.get("USER", "")),
        significant=False,
        description="albert.einstein style user charged for the jobs",
    )
    request_memory = luigi.Parameter(default="4GB", significant=False)
    request_disk = luigi.Parameter(default="4GB", significant=False)
    request_cpus = luigi.IntParameter(default=1, significant=False)

    exclude_params_branch = {"condor_directory"}

    def condor_base_directory(self) -> str:
        raise NotImplementedError

    def htcondor_output_directory(self) -> law.LocalDirectoryTarget:
        path = self.condor_directory or os.path.join(
            self.condor_base_directory(), "condor"
        )
        return law.LocalDirectoryTarget(path)

    def htcondor_job_config(self, config, job_num, branches):
        if not self.accounting_group:
            raise ValueError(
                "HTCondor jobs on the LIGO Data Grid need an accounting "
                "group: set accounting_group in the [deepclean] section of "
                "luigi.cfg or export LIGO_GROUP"
            )
        config.universe = "vanilla"
        config.custom_content = list(config.custom_content or [])
        config.custom_content.extend(
            [
                ("accounting_group", self.accounting_group),
                ("accounting_group_user", self.accounting_group_user),
                ("request_memory", self.request_memory),
                ("request_disk", self.request_disk),
                ("request_cpus", self.request_cpus),
                ("getenv", "true"),
            ]
        )
        if getattr(self, "gpus", ""):
            config.custom_content.append(
                ("request_gpus", len(self.gpus.split(",")))
            )
        config.log = "job.log"
        config.stdout = "job.out"
        config.stderr = "job.err"
        return config
