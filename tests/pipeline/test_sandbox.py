import os
import shlex
import stat
from unittest.mock import patch

import luigi
import pytest
from law.sandbox.base import SandboxProxy

from deepclean.config import PathParameter
from deepclean.sandbox import CONTAINER_REPO, REPO_ROOT, ContainerError
from deepclean.tasks.base import DATA_FORWARDED, DeepCleanTask


class SandboxProbe(DeepCleanTask):
    """A data-like task used to inspect the sandbox command."""

    project = "data"
    forwarded = (*DeepCleanTask.forwarded, *DATA_FORWARDED)
    out_dir = PathParameter()

    def bind_paths(self):
        return [self.out_dir, *super().bind_paths()]

    def output(self):
        return luigi.LocalTarget(os.path.join(self.out_dir, "x"))


def _executable(path, text="#!/bin/sh\nexit 0\n"):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def runtime_bin(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return bin_dir


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "images" / "data.sif"
    path.parent.mkdir()
    path.write_bytes(b"SIF")
    return path


def _command(task):
    # outside `law run` there are no global command-line arguments to copy
    with patch("law.task.proxy.global_cmdline_args", return_value={}):
        proxy_cmd = SandboxProxy(task=task).create_proxy_cmd()
    cmd = task.sandbox_inst.cmd(proxy_cmd)
    return shlex.split(cmd)


class TestImage:
    def test_no_image_runs_locally(self, tmp_path):
        task = SandboxProbe(out_dir=str(tmp_path))
        assert task.is_sandboxed()

    def test_relative_image_resolves_against_root(self, tmp_path, image):
        task = SandboxProbe(
            out_dir=str(tmp_path),
            image="data.sif",
            container_root=str(image.parent),
        )
        assert task.image_path == str(image)
        assert task.sandbox == f"deepclean::{image}"

    def test_relative_image_without_root(self, tmp_path, monkeypatch):
        task = SandboxProbe(
            out_dir=str(tmp_path), image="data.sif", container_root=""
        )
        with pytest.raises(ContainerError, match="DEEPCLEAN_CONTAINER_ROOT"):
            _ = task.image_path

    def test_missing_image_names_build_command(self, tmp_path):
        missing = tmp_path / "nope.sif"
        task = SandboxProbe(out_dir=str(tmp_path), image=str(missing))
        with pytest.raises(ContainerError) as err:
            _ = task.image_path
        definition = REPO_ROOT / "projects" / "data" / "apptainer.def"
        assert f"apptainer build {missing} {definition}" in str(err.value)


class TestCommand:
    def test_arguments_and_binds(self, tmp_path, image, runtime_bin):
        apptainer = _executable(runtime_bin / "apptainer")
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        task = SandboxProbe(
            out_dir=str(out_dir), image=str(image), gpus="0,1", dev=True
        )
        args = _command(task)
        assert args[:3] == [str(apptainer), "exec", "--cleanenv"]
        assert "--nv" in args
        binds = [args[i + 1] for i, a in enumerate(args) if a == "--bind"]
        assert f"{REPO_ROOT}:{CONTAINER_REPO}" in binds
        assert str(out_dir) in binds
        assert any(b.endswith("/law.cfg:ro") for b in binds)
        image_at = args.index(str(image))
        assert args[image_at + 1 : image_at + 3] == ["bash", "-c"]
        inner = args[image_at + 3]
        assert "deepclean.tasks" in inner or "SandboxProbe" in inner
        assert str(image) in inner  # the inner task knows its sandbox

    def test_no_gpu_no_nv_no_dev(self, tmp_path, image, runtime_bin):
        _executable(runtime_bin / "apptainer")
        args = _command(SandboxProbe(out_dir=str(tmp_path), image=str(image)))
        assert "--nv" not in args
        assert not any(CONTAINER_REPO in a for a in args)

    def test_missing_bind_sources_skipped(self, tmp_path, image, runtime_bin):
        _executable(runtime_bin / "apptainer")
        missing = tmp_path / "not-there"
        args = _command(SandboxProbe(out_dir=str(missing), image=str(image)))
        binds = [args[i + 1] for i, a in enumerate(args) if a == "--bind"]
        assert binds
        assert not any(str(missing) in b for b in binds)

    def test_singularity_fallback(self, tmp_path, image, runtime_bin):
        singularity = _executable(runtime_bin / "singularity")
        args = _command(SandboxProbe(out_dir=str(tmp_path), image=str(image)))
        assert args[0] == str(singularity)

    def test_no_runtime(self, tmp_path, image, runtime_bin):
        task = SandboxProbe(out_dir=str(tmp_path), image=str(image))
        with pytest.raises(ContainerError, match="without --image"):
            _command(task)


class TestEnvironment:
    def test_only_declared_variables_forwarded(
        self, tmp_path, image, runtime_bin, monkeypatch
    ):
        _executable(runtime_bin / "apptainer")
        proxy = tmp_path / "x509up_u1000"
        proxy.write_text("secret proxy")
        monkeypatch.setenv("DEEPCLEAN_IFO", "L1")
        monkeypatch.setenv("X509_USER_PROXY", str(proxy))
        monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
        task = SandboxProbe(out_dir=str(tmp_path), image=str(image), gpus="1")
        # outside `law run` the task is its own root task
        with patch("law.sandbox.base.root_task", return_value=task):
            env = task.sandbox_inst.env
        assert env["APPTAINERENV_DEEPCLEAN_IFO"] == "L1"
        assert env["SINGULARITYENV_DEEPCLEAN_IFO"] == "L1"
        assert env["APPTAINERENV_X509_USER_PROXY"] == str(proxy)
        assert env["APPTAINERENV_CUDA_VISIBLE_DEVICES"] == "1"
        assert env["APPTAINERENV_OMP_WAIT_POLICY"] == "PASSIVE"
        assert env["APPTAINERENV_LAW_SANDBOX"] == f"deepclean::{image}"
        assert env["APPTAINERENV_LAW_CONFIG_FILE"].startswith("/deepclean")
        assert not any("WANDB" in k or "AWS" in k for k in env)
        assert env["PATH"] == os.environ["PATH"]
        # credential files are bound, their values never on the command
        args = _command(task)
        binds = [args[i + 1] for i, a in enumerate(args) if a == "--bind"]
        assert str(proxy) in binds
        assert "secret" not in " ".join(args)
