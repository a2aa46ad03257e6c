"""Running a task inside a project's Apptainer (or Singularity) image.

law's sandbox mechanism re-runs the task as ``law run ...`` inside the
image. :class:`ApptainerSandbox` builds that command line itself so that

- the container starts with a clean environment (``--cleanenv``) and only
  the variables a task declares are forwarded, through ``APPTAINERENV_*``
  variables of the launching process: values, secrets included, never
  appear on a command line or in a log;
- GPUs are exposed with ``--nv`` and ``CUDA_VISIBLE_DEVICES``;
- SIGTERM, SIGINT and SIGHUP sent to the pipeline reach the container's
  process group, and the pipeline waits for it to stop;
- the directories a task reads and writes are bound at the same path, the
  law and luigi configuration files at a fixed forward directory, and with
  ``--dev`` the local checkout over the image's copy of the repository.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path

import law
import luigi.configuration
from law.contrib.singularity import SingularitySandbox
from law.contrib.singularity.config import config_defaults

from deepclean.process import run_process

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTAINER_REPO = "/opt/deepclean"
ENV_PREFIXES = ("APPTAINERENV_", "SINGULARITYENV_")
# what the container runtime itself needs from the host environment
HOST_VARIABLES = ("PATH", "HOME", "USER", "LANG", "TMPDIR", "XDG_RUNTIME_DIR")


class ContainerError(RuntimeError):
    """The container runtime or an image cannot be used."""


def container_executable() -> str:
    """``apptainer`` if installed, else ``singularity``."""
    for name in ("apptainer", "singularity"):
        path = shutil.which(name)
        if path:
            return path
    raise ContainerError(
        "neither apptainer nor singularity is on PATH: install apptainer "
        "(https://apptainer.org) or run the task without --image to use the "
        "local environment"
    )


class ApptainerSandbox(SingularitySandbox):
    """law sandbox ``deepclean::IMAGE`` for DeepClean tasks."""

    sandbox_type = "deepclean"

    def get_custom_config_section_postfix(self) -> str:
        return self.sandbox_type

    @classmethod
    def config(cls) -> dict:
        defaults = config_defaults(None)["singularity_sandbox"]
        defaults.update(
            law_executable="law",
            forward_law=False,
            forward_dir="/deepclean_forward",
        )
        return {f"singularity_sandbox_{cls.sandbox_type}": defaults}

    @property
    def env(self) -> dict[str, str]:
        # law caches this per image; forwarded variables differ per task
        return self.create_env()

    def forwarded_env(self) -> dict[str, str]:
        """Variables set inside the container, by name."""
        env = {
            key: str(value)
            for key, value in self._get_env().items()
            if value is not None
        }
        env["LAW_SANDBOX"] = self.key
        forward_dir = self.forward_dir()
        for name, path in self.config_files().items():
            env[name] = f"{forward_dir}/{Path(path).name}"
        return env

    def create_env(self) -> dict[str, str]:
        """Environment of the launching ``apptainer`` process."""
        env = {k: os.environ[k] for k in HOST_VARIABLES if k in os.environ}
        for key, value in self.forwarded_env().items():
            for prefix in ENV_PREFIXES:
                env[prefix + key] = value
        return env

    def forward_dir(self) -> str:
        cfg = law.config.Config.instance()
        return cfg.get_expanded(self.get_config_section(), "forward_dir")

    @staticmethod
    def config_files() -> dict[str, str]:
        """law and luigi configuration files, by the variable naming them."""
        files = {}
        law_cfg = law.config.Config.instance().config_file
        if law_cfg:
            files["LAW_CONFIG_FILE"] = os.path.abspath(law_cfg)
        for path in luigi.configuration.LuigiConfigParser._config_paths[::-1]:
            if os.path.exists(path):
                files["LUIGI_CONFIG_PATH"] = os.path.abspath(path)
                break
        return files

    def binds(self) -> list[str]:
        """``--bind`` values: ``src:dst[:ro]``, each source once."""
        binds: dict[str, str] = {}
        forward_dir = self.forward_dir()
        for path in self.config_files().values():
            binds[path] = f"{forward_dir}/{Path(path).name}:ro"
        task = self.task
        if task is not None and getattr(task, "dev", False):
            binds[str(REPO_ROOT)] = CONTAINER_REPO
        if task is not None:
            for path in task.bind_paths():
                if os.path.exists(path):
                    binds.setdefault(str(path), str(path))
        return [
            f"{src}:{dst}" if dst != src else src for src, dst in binds.items()
        ]

    def run(self, cmd: str, stdout=None, stderr=None) -> tuple:
        """Run the container command with signals forwarded to it
        (:func:`deepclean.process.run_process`); law checks the status."""
        returncode, _ = run_process(["bash", "-c", cmd], env=self.env)
        return returncode, None, None

    def cmd(self, proxy_cmd) -> str:
        if self.force_local_scheduler():
            proxy_cmd.add_arg("--local-scheduler", "True", overwrite=True)
        args = [container_executable(), "exec", "--cleanenv"]
        task = self.task
        if task is not None and getattr(task, "gpus", ""):
            args.append("--nv")
        for bind in self.binds():
            args.extend(["--bind", bind])
        args.extend([self.image, "bash", "-c", proxy_cmd.build()])
        return law.util.quote_cmd(args)


def forwarded_variables(
    environ: Mapping[str, str], patterns: tuple[str, ...]
) -> dict[str, str]:
    """The variables of ``environ`` matching any of the glob ``patterns``."""
    return {
        key: value
        for key, value in environ.items()
        if any(fnmatchcase(key, pattern) for pattern in patterns)
    }


law.config.update(ApptainerSandbox.config(), overwrite_options=False)
