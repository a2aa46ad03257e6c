"""Tests for deepclean_io.atomic and deepclean_io.commands."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deepclean_io.atomic import (
    atomic_output,
    check_writable,
    host_label,
    partial_path,
    remove_stale_partials,
    write_json_atomic,
)
from deepclean_io.commands import TERMINATED_STATUS, run_command_line


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


class TestAtomicOutput:
    def test_renamed_when_complete(self, tmp_path: Path):
        target = tmp_path / "model.pt"
        with atomic_output(target) as partial:
            assert partial.parent == tmp_path
            assert partial.name.startswith(".model.pt.")
            partial.write_bytes(b"weights")
            assert not target.exists()
        assert target.read_bytes() == b"weights"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]

    def test_failure_keeps_old_file_and_removes_partial(self, tmp_path: Path):
        target = tmp_path / "model.json"
        write_json_atomic(target, {"version": 1})
        with pytest.raises(RuntimeError), atomic_output(target) as partial:
            partial.write_text("half")
            raise RuntimeError("killed")
        assert target.read_text().strip().endswith("}")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]

    def test_nothing_written_is_an_error(self, tmp_path: Path):
        absent = tmp_path / "x.json"
        with (
            pytest.raises(FileNotFoundError, match="nothing was written"),
            atomic_output(absent),
        ):
            pass
        assert not (tmp_path / "x.json").exists()


class TestCheckWritable:
    def test_creates_the_folder_and_leaves_nothing(self, tmp_path: Path):
        assert check_writable(tmp_path / "run", "--out") == tmp_path / "run"
        assert list((tmp_path / "run").iterdir()) == []

    def test_a_file_in_the_way_is_reported(self, tmp_path: Path):
        (tmp_path / "taken").write_text("")
        folder = tmp_path / "taken" / "run"
        with pytest.raises(PermissionError) as error:
            check_writable(folder, "--output_dir")
        assert f"output folder {folder} is not writable" in str(error.value)
        assert "pass a writable --output_dir" in str(error.value)


class TestStalePartials:
    def test_dead_writers_removed_live_ones_kept(self, tmp_path: Path):
        host = host_label()
        stale = tmp_path / f".frame.gwf.{host}.{dead_pid()}.partial"
        stale.write_bytes(b"0" * 100)
        live = partial_path(tmp_path / "other.gwf")
        live.write_bytes(b"1")
        unrelated = tmp_path / "data.hdf5"
        unrelated.write_bytes(b"2")
        nested = tmp_path / "sub" / f".model.pt.{host}.{dead_pid()}.partial"
        other_host = tmp_path / f".frame.gwf.node042.{dead_pid()}.partial"
        other_host.write_bytes(b"4")
        nested.parent.mkdir()
        nested.write_bytes(b"3")

        assert remove_stale_partials(tmp_path) == [stale]
        assert live.exists() and unrelated.exists() and nested.exists()
        assert other_host.exists()
        assert remove_stale_partials(tmp_path, recursive=True) == [nested]

    def test_missing_folder(self, tmp_path: Path):
        assert remove_stale_partials(tmp_path / "absent") == []


def run_script(body: str, *args: str, **kwargs) -> subprocess.Popen:
    script = textwrap.dedent(
        """
        import sys, time
        from deepclean_io.commands import run_command_line
        """
    ) + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


class TestRunCommandLine:
    def test_expected_error_without_traceback(self, capsys):
        def main(argv):
            raise ValueError(f"bad file {argv[0]}; fetch it again")

        with pytest.raises(SystemExit) as exit_info:
            run_command_line("deepclean-x", main, ["f.hdf5"])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert "deepclean-x: error: bad file f.hdf5; fetch it again" in err
        assert "Traceback" not in err

    def test_debug_flag_reraises_and_is_removed(self, monkeypatch):
        monkeypatch.delenv("DEEPCLEAN_DEBUG", raising=False)
        seen = []

        def main(argv):
            seen.append(argv)
            raise FileNotFoundError("no such model")

        with pytest.raises(FileNotFoundError):
            run_command_line("deepclean-x", main, ["a", "--debug"])
        assert seen == [["a"]]

    def test_programming_errors_keep_their_traceback(self):
        def main(argv):
            raise TypeError("a bug")

        with pytest.raises(TypeError):
            run_command_line("deepclean-x", main, [])

    def test_returns_result_and_restores_handler(self):
        before = signal.getsignal(signal.SIGTERM)
        assert run_command_line("deepclean-x", lambda argv: 7, []) == 7
        assert signal.getsignal(signal.SIGTERM) is before

    def test_sigterm_exits_non_zero_and_cleans_up(self, tmp_path: Path):
        target = tmp_path / "out.bin"
        process = run_script(
            """
            from deepclean_io.atomic import atomic_output
            def main(argv):
                with atomic_output(argv[0]) as partial:
                    partial.write_bytes(b"x")
                    print("writing", flush=True)
                    try:
                        time.sleep(60)
                    except Exception:
                        # libraries' generic handlers must not swallow it
                        print("swallowed", flush=True)
            run_command_line("deepclean-x", main)
            """,
            str(target),
        )
        assert process.stdout.readline().strip() == "writing"
        os.kill(process.pid, signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == TERMINATED_STATUS
        assert "swallowed" not in out
        assert "stopped by SIGTERM" in err
        assert list(tmp_path.iterdir()) == []
