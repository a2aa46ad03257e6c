"""End to end through a stand-in ``apptainer`` executable.

Apptainer cannot be installed here, so a small program of the same name
checks the arguments it is given, emulates ``--cleanenv``, the binds and
``APPTAINERENV_*`` forwarding, and runs the inner command: the task must
complete inside "the container" exactly as it would on the LIGO Data Grid.
"""

import json
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FAKE_APPTAINER = textwrap.dedent(
    """\
    #!{python}
    import json, os, subprocess, sys
    args = sys.argv[1:]
    assert args[:2] == ["exec", "--cleanenv"], args
    rest = args[2:]
    binds, options = [], []
    while rest[0].startswith("--"):
        if rest[0] == "--bind":
            binds.append(rest[1])
            rest = rest[2:]
        else:
            options.append(rest.pop(0))
    image, shell, flag, command = rest
    assert os.path.exists(image), image
    assert (shell, flag) == ("bash", "-c")
    for bind in binds:
        src, _, dst = bind.partition(":")
        dst = dst.removesuffix(":ro") or src
        assert os.path.exists(src), src
        if dst != src and not os.path.exists(dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.symlink(src, dst)
    prefix = "APPTAINERENV_"
    env = {{k[len(prefix):]: v for k, v in os.environ.items()
           if k.startswith(prefix)}}
    env["PATH"] = "{venv_bin}:/usr/bin:/bin"
    env["HOME"] = os.environ.get("HOME", "/root")
    with open("{record}", "w") as f:
        json.dump({{"binds": binds, "options": options, "env": env,
                   "command": command}}, f)
    mode = env.get("DEEPCLEAN_FAKE_MODE", "")
    if mode == "write-nothing":
        sys.exit(0)
    if mode == "hang":
        with open("{record}.pid", "w") as f:
            f.write(str(os.getpid()))
        command = "sleep 120"
        os.execvpe("bash", ["bash", "-c", command], env)
    sys.exit(subprocess.call(["bash", "-c", command], env=env))
    """
)


def law_query(tmp_path, mode=""):
    """``law run deepclean.tasks.Query --image ...`` with the stand-in
    apptainer; returns the process, the data folder and the record."""
    venv_bin = Path(sys.executable).parent
    record = tmp_path / "record.json"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apptainer"
    fake.write_text(
        FAKE_APPTAINER.format(
            python=sys.executable, venv_bin=venv_bin, record=record
        )
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    image = tmp_path / "data.sif"
    image.write_bytes(b"SIF")
    law_cfg = tmp_path / "law.cfg"
    law_cfg.write_text(
        (REPO / "law.cfg").read_text()
        + f"\n[singularity_sandbox_deepclean]\nforward_dir: {tmp_path}/fwd\n"
    )
    data_dir = tmp_path / "data"
    env = {
        "PATH": f"{bin_dir}:{venv_bin}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LAW_HOME": str(tmp_path / "law"),
        "LAW_CONFIG_FILE": str(law_cfg),
        "DEEPCLEAN_RUN_NOTE": "forwarded",
        "DEEPCLEAN_FAKE_MODE": mode,
        "WANDB_API_KEY": "never-forwarded-by-data-tasks",
    }
    process = subprocess.Popen(
        [
            str(venv_bin / "law"),
            "run",
            "deepclean.tasks.Query",
            "--image",
            str(image),
            "--data-dir",
            str(data_dir),
            "--data-run",
            "demo",
            "--start",
            "1000",
            "--end",
            "1100",
            "--min-duration",
            "10",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, data_dir / "demo", record


def test_query_runs_inside_container(tmp_path):
    process, folder, record = law_query(tmp_path)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert "entering sandbox" in output
    segments = (folder / "segments-1000-1100.txt").read_text()
    assert "1000" in segments and "1100" in segments
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["run_name"] == "demo"
    assert settings["settings"]["source"] == "simulated"

    seen = json.loads(record.read_text())
    assert str(folder) in seen["binds"]
    assert "--nv" not in seen["options"]
    inner_env = seen["env"]
    assert inner_env["DEEPCLEAN_RUN_NOTE"] == "forwarded"
    assert inner_env["LAW_SANDBOX_SWITCHED"] == "1"
    assert inner_env["LAW_SANDBOX"] == f"deepclean::{tmp_path / 'data.sif'}"
    assert "WANDB_API_KEY" not in inner_env
    assert "never-forwarded" not in seen["command"]
    assert "law run deepclean.tasks.data.Query" in seen["command"]


def test_container_that_writes_nothing_fails_the_task(tmp_path):
    process, folder, _ = law_query(tmp_path, mode="write-nothing")
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0, output
    assert "did not write" in output
    assert "segments-1000-1100.txt" in output
    assert not (folder / "segments-1000-1100.txt").exists()


def test_sigterm_reaches_the_container_and_fails_the_run(
    tmp_path, wait_until_gone
):
    process, _, record = law_query(tmp_path, mode="hang")
    pid_file = Path(f"{record}.pid")
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the container never started"
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.1)
    container = int(pid_file.read_text())
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0, output
    assert "SIGTERM" in output
    # the container process is gone, not re-parented and still running
    assert wait_until_gone(container)
