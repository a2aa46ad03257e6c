"""The base class of every DeepClean task.

A task is thin: parameters, ``requires``, ``output`` and :meth:`command`,
the argument list of a project's command line. :meth:`run` executes that
command in the local environment, or, with ``--image``, law re-runs the task
inside the project's Apptainer image (:mod:`deepclean.sandbox`) where the
same ``run`` executes it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import ClassVar

import law
import law.sandbox.base
import luigi

from deepclean.config import PathParameter, check_section_keys, shared
from deepclean.process import (
    OutputsMissing,
    project_executable,
    run_command,
)
from deepclean.runs import check_settings, record_settings
from deepclean.sandbox import (
    REPO_ROOT,
    ApptainerSandbox,
    ContainerError,
    forwarded_variables,
)

logger = logging.getLogger("luigi-interface")

# variables every task forwards into its container
BASE_FORWARDED = ("DEEPCLEAN_*",)
# data access: Kerberos, X509 / SciTokens, datafind, NDS2, segment database
DATA_FORWARDED = (
    "KRB5CCNAME",
    "KRB5_CONFIG",
    "X509_USER_PROXY",
    "X509_USER_CERT",
    "X509_USER_KEY",
    "X509_CERT_DIR",
    "BEARER_TOKEN",
    "BEARER_TOKEN_FILE",
    "SCITOKEN_FILE",
    "GWDATAFIND_SERVER",
    "LIGO_DATAFIND_SERVER",
    "NDSSERVER",
    "DEFAULT_SEGMENT_SERVER",
)
# Weights & Biases settings, the API key included, for training with W&B
WANDB_FORWARDED = ("WANDB_*",)
# credential variables naming files that must be visible in the container
CREDENTIAL_FILES = (
    "KRB5CCNAME",
    "X509_USER_PROXY",
    "X509_USER_CERT",
    "X509_USER_KEY",
    "BEARER_TOKEN_FILE",
    "SCITOKEN_FILE",
)


def in_sandbox() -> bool:
    """Whether this process already runs inside a task's sandbox."""
    return law.sandbox.base._sandbox_switched


class DeepCleanTask(law.SandboxTask):
    """Runs a project command locally or in the project's image.

    Subclasses set :attr:`project` (the folder under ``projects/``) and
    implement :meth:`command`; they extend :attr:`forwarded` with the
    variables their command needs and :meth:`bind_paths` with the paths it
    reads and writes.
    """

    image = luigi.Parameter(
        default="",
        description="Apptainer image to run in; relative names resolve "
        "against container_root. Empty: run in the local environment",
    )
    gpus = luigi.Parameter(
        default="",
        significant=False,
        description="comma list of GPU ids exposed as CUDA_VISIBLE_DEVICES",
    )
    dev = luigi.BoolParameter(
        default=False,
        significant=False,
        description="bind the local checkout over the image's copy so code "
        "edits apply without rebuilding the image",
    )
    container_root = shared(
        PathParameter,
        default=os.environ.get("DEEPCLEAN_CONTAINER_ROOT", ""),
        significant=False,
        description="folder holding the project images",
    )

    allow_empty_sandbox = True
    exclude_params_req = {"image"}
    project: ClassVar[str] = ""
    forwarded: ClassVar[tuple[str, ...]] = BASE_FORWARDED

    @property
    def image_path(self) -> str:
        """Absolute path of the image; raises if it does not exist."""
        path = self.image
        if not os.path.isabs(path):
            if not self.container_root:
                raise ContainerError(
                    f"image {path!r} is relative but no container root is "
                    "set: give an absolute path, set container_root in the "
                    "[deepclean] section of luigi.cfg, or export "
                    "DEEPCLEAN_CONTAINER_ROOT"
                )
            path = os.path.join(self.container_root, path)
        if not os.path.isfile(path) and not os.path.isdir(path):
            definition = (
                REPO_ROOT / "projects" / self.project / "apptainer.def"
            )
            raise ContainerError(
                f"image {path} does not exist; build it with\n"
                f"  apptainer build {path} {definition}"
            )
        return path

    @property
    def sandbox(self) -> str:
        if not self.image or in_sandbox():
            return law.NO_STR
        return f"{ApptainerSandbox.sandbox_type}::{self.image_path}"

    def forwarded_patterns(self) -> tuple[str, ...]:
        """Variables forwarded into the container: the task's own, plus
        the W&B settings (API key included) when the task logs to W&B."""
        if getattr(self, "use_wandb", False):
            return (*self.forwarded, *WANDB_FORWARDED)
        return self.forwarded

    def command_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """What the command's environment adds to ``environ``: the GPUs,
        and OpenMP workers that sleep instead of spinning while they wait
        (on a shared node spinning threads steal the cores they wait
        for), unless ``OMP_WAIT_POLICY`` is set."""
        extra = {"OMP_WAIT_POLICY": environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        if self.gpus:
            extra["CUDA_VISIBLE_DEVICES"] = self.gpus
        return extra

    def sandbox_env(self, env: dict[str, str]) -> dict[str, str]:
        forwarded = forwarded_variables(os.environ, self.forwarded_patterns())
        return {**forwarded, **self.command_env(os.environ)}

    def bind_paths(self) -> list[str]:
        """Host paths the command uses, bound at the same path if they exist.

        Includes the files named by forwarded credential variables and the
        ``binds`` of the ``[deepclean]`` section (e.g. ``/cvmfs``).
        """
        forwarded = forwarded_variables(os.environ, self.forwarded_patterns())
        paths = [
            forwarded[name].removeprefix("FILE:")
            for name in CREDENTIAL_FILES
            if name in forwarded
        ]
        paths.extend(extra_binds())
        return paths

    def commands(self) -> list[list[str]]:
        """The project commands this task runs, in order (by default the
        one :meth:`command`)."""
        return [self.command()]

    def command(self) -> list[str]:
        """Argument list of the project command this task runs."""
        raise NotImplementedError

    def log_file(self) -> str | None:
        """File the command's output is appended to, if any."""
        return None

    def make_output_dirs(self) -> None:
        for output in law.util.flatten(self.output()):
            output.parent.touch()

    def __init__(self, *args, **kwargs) -> None:
        check_section_keys(all_subclasses(DeepCleanTask))
        super().__init__(*args, **kwargs)

    def run_folder(self) -> str | None:
        """Folder of this task's run (:mod:`deepclean.runs`), where its
        settings are recorded; None for tasks without one."""
        return None

    def run_name(self) -> str:
        """Name of :meth:`run_folder`."""
        return os.path.basename(self.run_folder() or "")

    def run_settings(self) -> dict:
        """Every setting that changes this task's results."""
        return {}

    def check_run_folder(self) -> None:
        """Refuse a run folder that holds results of other settings.

        Raises:
            RunSettingsError: listing the differences (only possible with
                an explicit run name).
        """
        folder = self.run_folder()
        if folder is not None:
            check_settings(folder, self.run_name(), self.run_settings())

    def complete(self) -> bool:
        """Outputs exist (and are whole), made with this task's settings."""
        self.check_run_folder()
        done = super().complete()
        if done and not self.is_workflow_task():
            key = self.task_id
            if key not in _reported_reuse:
                _reported_reuse.add(key)
                logger.info(
                    "%s: reusing finished outputs in %s",
                    self.task_family,
                    self.run_folder() or self.output_paths()[0],
                )
        return done

    def workflow_complete(self):
        """The workflow's completeness (law asks this instead of
        :meth:`complete`), after the same run folder check."""
        self.check_run_folder()
        return super().workflow_complete()

    def is_workflow_task(self) -> bool:
        """Whether this is a workflow (not a branch or a plain task)."""
        return bool(getattr(self, "is_workflow", lambda: False)())

    def output_paths(self) -> list[str]:
        """Paths of every output target."""
        return [target.path for target in law.util.flatten(self.output())]

    def record_run(self) -> None:
        """Record the run's settings in its folder before working in it."""
        folder = self.run_folder()
        if folder is not None:
            record_settings(folder, self.run_name(), self.run_settings())

    def check_outputs(self) -> None:
        """After the command: every output exists and is whole.

        Raises:
            OutputsMissing: the command (or container) returned success
                without writing them.
        """
        missing = [
            path for path in self.output_paths() if not os.path.exists(path)
        ]
        if missing:
            raise OutputsMissing(
                f"{self.task_family}: the {self.project} command returned "
                "success but did not write "
                + ", ".join(missing)
                + "; see its output above"
            )

    def check_listed_files(self, kind: str) -> None:
        """The files the JSON summary (:meth:`output`) lists under
        ``files`` and ``reused_files`` exist.

        Args:
            kind: What the files are, for the message (e.g. "frame").

        Raises:
            OutputsMissing: naming the summary and the missing files.
        """
        summary = json.loads(self.output().load(formatter="text"))
        listed = summary.get("files", []) + summary.get("reused_files", [])
        missing = [path for path in listed if not os.path.exists(path)]
        if missing:
            raise OutputsMissing(
                f"{self.output().path} lists {len(missing)} {kind} files "
                f"that do not exist ({', '.join(missing[:3])}, ...); remove "
                f"the summary and re-run {self.task_family}"
            )

    def sandbox_pre_run(self) -> None:
        # folders must exist on the host before they can be bound
        self.record_run()
        self.make_output_dirs()

    def sandbox_post_run(self) -> None:
        self.check_outputs()

    def run(self) -> None:
        self.record_run()
        self.make_output_dirs()
        env = {**os.environ, **self.command_env(os.environ)}
        for command in self.commands():
            run_command(command, log_file=self.log_file(), env=env)
        self.check_outputs()

    @staticmethod
    def executable(name: str) -> str:
        return project_executable(name)


_reported_reuse: set[str] = set()


def all_subclasses(cls: type) -> list[type]:
    """``cls`` and every class derived from it."""
    found = [cls]
    for subclass in cls.__subclasses__():
        found.extend(all_subclasses(subclass))
    return found


def extra_binds() -> list[str]:
    """Comma list ``binds`` of the ``[deepclean]`` config section."""
    value = luigi.configuration.get_config().get(
        "deepclean", "binds", fallback=""
    )
    return [p.strip() for p in value.split(",") if p.strip()]
