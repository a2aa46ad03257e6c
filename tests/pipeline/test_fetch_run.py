"""``law run deepclean.tasks.Fetch`` on the simulated detector."""

import json
from pathlib import Path

import h5py

REPO = Path(__file__).resolve().parents[2]


def test_fetch_simulated_branches_and_resume(tmp_path, law_run):
    data_dir = tmp_path / "data" / "demo"
    args = (
        f"--data-dir={data_dir.parent}",
        "--data-run=demo",
        "--start=1262304000",
        "--end=1262304096",
        "--min-duration=16",
        "--max-duration=64",
        "--sample-rate=512",
        f"--job-log={tmp_path / 'logs' / 'fetch.log'}",
    )
    result = law_run("deepclean.tasks.Fetch", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    first = data_dir / "deepclean-1262304000-64.hdf5"
    second = data_dir / "deepclean-1262304064-32.hdf5"
    with h5py.File(second) as f:
        strain = f["H1:GDS-CALIB_STRAIN"]
        assert strain.attrs["x0"] == 1262304064
        assert strain.shape == (32 * 512,)
        assert len(f) >= 22  # strain, 21 witnesses, decoys
    assert (tmp_path / "logs" / "fetch-1.log").exists()
    assert not list(data_dir.rglob("*.partial"))
    settings = json.loads((data_dir / "settings.json").read_text())
    assert settings["settings"]["sample_rate"] == 512

    # a lost file is made again; the finished branch is left alone
    mtime = first.stat().st_mtime_ns
    second.unlink()
    result = law_run("deepclean.tasks.Fetch", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert second.exists()
    assert first.stat().st_mtime_ns == mtime

    # other settings in the same named folder are refused, not reused
    result = law_run("deepclean.tasks.Fetch", *args, "--simulation-seed=7")
    assert result.returncode != 0
    assert "simulation_seed: 1126259462 -> 7" in result.stdout + result.stderr
