import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepclean.couplings import CouplingError
from deepclean.tasks import Fetch, Query

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_law_index_finds_every_task(tmp_path):
    env = {**os.environ, "LAW_HOME": str(tmp_path)}
    result = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "law"),
            "index",
            "--verbose",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    for task in ("Query", "Fetch", "Pipeline", "Analyze", "Classical"):
        assert f"- {task}\n" in result.stdout


def test_tasks_import_no_heavy_libraries():
    code = (
        "import sys, deepclean.tasks\n"
        "heavy = {'torch', 'gwpy', 'numpy', 'lal', 'h5py'}\n"
        "heavy &= set(sys.modules)\n"
        "print(','.join(sorted(heavy)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "data"
    (path / "demo").mkdir(parents=True)
    (path / "demo" / "segments-1000-30000.txt").write_text(
        "# start end\n1000 10000\n12000 12500\n20000 30000\n"
    )
    return path


def _fetch(data_dir, **kwargs):
    params = {
        "data_dir": str(data_dir),
        "data_run": "demo",
        "start": 1000,
        "end": 30000,
        "min_duration": 1000,
        "max_duration": 4096,
        "ifo": "L1",
        "source": "simulated",
    }
    params.update(kwargs)
    return Fetch(**params)


class TestFetch:
    def test_branches_cut_at_max_duration(self, data_dir):
        branches = _fetch(data_dir).branch_map
        # 9192-10000 and the 500 s segment are shorter than min_duration
        assert list(branches.values()) == [
            (1000, 4096),
            (5096, 4096),
            (20000, 4096),
            (24096, 4096),
            (28192, 1808),
        ]

    def test_output_names(self, data_dir):
        task = _fetch(data_dir).req(_fetch(data_dir), branch=3)
        assert task.output().path == str(
            data_dir / "demo" / "deepclean-24096-4096.hdf5"
        )

    def test_simulated_command(self, data_dir):
        task = _fetch(data_dir, branch=0)
        command = task.command()
        assert command[0].endswith("deepclean-data")
        assert command[1] == "simulate"
        assert "--duration=4096" in command
        assert "--strain_channel=L1:GDS-CALIB_STRAIN" in command
        witnesses = next(a for a in command if a.startswith("--witnesses="))
        assert witnesses.count("L1:") == 18
        assert "--mains_channel=L1:PEM-CS_MAINSMON_EBAY_1_DQ" in command

    def test_simulation_needs_a_line_witness(self, data_dir, tmp_path):
        couplings = tmp_path / "couplings.ini"
        couplings.write_text(
            "[problem 10Hz]\n"
            "L1.band = 9 11\n"
            "L1.witnesses = ASC-CHARD_P_OUT_DQ, ASC-DHARD_P_OUT_DQ\n"
        )
        with pytest.raises(CouplingError) as error:
            _fetch(data_dir, problems="10Hz", couplings_file=str(couplings))
        assert "simulated detector's mains monitor" in str(error.value)
        assert "'L1.line_witness = CHANNEL'" in str(error.value)
        fetch = _fetch(
            data_dir,
            problems="10Hz",
            couplings_file=str(couplings),
            source="gwpy",
            branch=0,
        )
        assert not any("mains" in a for a in fetch.command())

    def test_gwpy_command(self, data_dir):
        command = _fetch(data_dir, branch=1, source="gwpy").command()
        assert command[1] == "fetch"
        assert "--start=5096" in command and "--end=9192" in command
        channels = next(a for a in command if a.startswith("--channels="))
        assert channels.startswith("--channels=[L1:GDS-CALIB_STRAIN,")

    def test_branch_logs(self, data_dir, tmp_path):
        task = _fetch(data_dir, branch=2, job_log=str(tmp_path / "fetch.log"))
        assert task.log_file() == str(tmp_path / "fetch-2.log")

    def test_condor_job_config(self, data_dir, monkeypatch):
        import law

        task = _fetch(data_dir, workflow="htcondor", accounting_group="")
        config = law.htcondor.HTCondorJobFileFactory().get_config()
        with pytest.raises(ValueError, match="LIGO_GROUP"):
            task.htcondor_job_config(config, 0, [0])
        task = _fetch(
            data_dir,
            workflow="htcondor",
            accounting_group="ligo.dev.o4.detchar.subtraction.deepclean",
            accounting_group_user="albert.einstein",
        )
        config = task.htcondor_job_config(config, 0, [0])
        content = dict(config.custom_content)
        assert content["accounting_group_user"] == "albert.einstein"
        assert content["getenv"] == "true"
        assert task.htcondor_output_directory().path == str(
            data_dir / "demo" / "condor"
        )


def test_query_command(tmp_path):
    task = Query(data_dir=str(tmp_path), start=10, end=20, ifo="H1")
    command = task.command()
    assert command[1] == "query"
    assert "--flag=H1:DMT-ANALYSIS_READY:1" in command
    folder = Path(task.data_folder())
    assert folder.parent == tmp_path
    assert folder.name.startswith("simulated-H1-")
    assert f"--output={folder}/segments-10-20.txt" in command
    assert "--source=simulated" in command
    task = Query(
        data_dir=str(tmp_path),
        start=10,
        end=20,
        source="gwpy",
        segment_server="gwosc",
    )
    assert "--source=gwosc" in task.command()
