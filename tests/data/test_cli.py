"""The deepclean-data command line: help, subcommands, config file, errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepclean_data.cli import main
from deepclean_data.segments import read_segments
from deepclean_data.simulation import (
    candidate_channels,
    load_simulation_config,
)
from deepclean_io.atomic import partial_path
from deepclean_io.gwf import read_gwf
from deepclean_io.hdf5 import file_info

STRAIN = "H1:GDS-CALIB_STRAIN"
WITNESSES = [
    "H1:PEM-CS_MAINSMON_EBAY_1_DQ",
    "H1:ASC-INP1_P_OUT_DQ",
    "H1:ASC-INP1_Y_OUT_DQ",
]
START = 1262304000
CONFIGS = Path(__file__).parents[2] / "projects" / "data" / "configs"


def test_entry_point_help():
    executable = Path(sys.executable).with_name("deepclean-data")
    assert executable.is_file(), "run uv sync --all-packages to install it"
    result = subprocess.run(
        [executable, "--help"], capture_output=True, text=True, check=True
    )
    for name in ("simulate", "fetch", "query", "replay"):
        assert name in result.stdout


@pytest.mark.parametrize(
    ("subcommand", "options"),
    [
        (
            "simulate",
            ["--strain_channel", "--witnesses", "--mains_channel", "--seed"],
        ),
        ("fetch", ["--channels", "--sample_rate", "--gwpy_source"]),
        ("query", ["--flag", "--min_duration", "--output"]),
        ("replay", ["--data_file", "--realtime", "--keep"]),
    ],
)
def test_subcommand_help(subcommand, options, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([subcommand, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in options:
        assert option in text
    assert "--clock" not in text


def simulate_arguments(output_dir) -> list[str]:
    """``deepclean-data simulate`` of 4 s at 1024 Hz into output_dir."""
    return [
        "simulate",
        f"--output_dir={output_dir}",
        f"--start={START}",
        "--duration=4",
        "--sample_rate=1024",
        f"--strain_channel={STRAIN}",
        f"--witnesses=[{','.join(WITNESSES)}]",
        f"--mains_channel={WITNESSES[0]}",
        "--progress=false",
    ]


def test_simulate_then_replay(tmp_path, capsys):
    main(simulate_arguments(tmp_path / "data"))
    data_file = tmp_path / "data" / f"deepclean-{START}-4.hdf5"
    assert capsys.readouterr().out.strip() == str(data_file)
    assert {STRAIN, *WITNESSES} <= set(file_info(data_file).channels)

    main(
        [
            "replay",
            f"--data_file={data_file}",
            f"--output_dir={tmp_path / 'frames'}",
            f"--strain_channel={STRAIN}",
            "--duration=2",
            "--progress=false",
        ]
    )
    assert "2 frame pairs" in capsys.readouterr().out
    frame = tmp_path / "frames" / f"H-H1_lldetchar-{START + 1}-1.gwf"
    _, t0, sample_rate = read_gwf(frame, WITNESSES)
    assert (t0, sample_rate) == (START + 1, 1024)


def test_simulate_takes_a_simulation_yaml(tmp_path, capsys):
    """What the Fetch task passes for luigi.cfg's simulation_config."""
    config = tmp_path / "simulation.yaml"
    config.write_text("coupling:\n  skirt_ratio: 2.5\n  drift_witness: true\n")
    main([*simulate_arguments(tmp_path / "data"), f"--config={config}"])
    data_file = Path(capsys.readouterr().out.strip())
    truth = json.loads(
        data_file.parent.joinpath(
            "truth", data_file.with_suffix(".json").name
        ).read_text()
    )
    assert truth["config"]["coupling"]["skirt_ratio"] == 2.5
    assert set(truth["drift_witness"]) <= set(file_info(data_file).channels)


def test_simulate_takes_the_candidate_pool_yaml(tmp_path, capsys):
    """The shipped pool, as luigi.cfg's simulation_config would pass it."""
    config = CONFIGS / "candidate-pool.yaml"
    main([*simulate_arguments(tmp_path / "data"), f"--config={config}"])
    data_file = Path(capsys.readouterr().out.strip())
    names = candidate_channels(
        STRAIN, WITNESSES, load_simulation_config(config)
    )
    assert len(names) == 112
    assert file_info(data_file).channels[-len(names) :] == tuple(names)


def test_query_from_config_file(tmp_path, capsys):
    output = tmp_path / "segments.txt"
    config = tmp_path / "query.yaml"
    config.write_text(
        "query:\n"
        f"  start: {START}\n"
        f"  end: {START + 10_000}\n"
        "  min_duration: 1000\n"
        "  max_duration: 4096\n"
        f"  gaps: [[{START + 100}, {START + 200}]]\n"
        f"  output: {output}\n"
    )
    main(["--config", str(config), "query"])
    assert "3 segments (9800 s)" in capsys.readouterr().out
    assert read_segments(output) == [
        (START + 200, START + 4296),
        (START + 4296, START + 8392),
        (START + 8392, START + 10_000),
    ]


def test_bad_input_exits_with_message(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepclean_data.cli",
            "query",
            f"--start={START}",
            f"--end={START - 1}",
            f"--output={tmp_path / 'segments.txt'}",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "deepclean-data: error: end must be after start" in result.stderr
    assert "Traceback" not in result.stderr


def test_mains_channel_outside_the_witnesses_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "simulate",
                f"--output_dir={tmp_path}",
                f"--start={START}",
                "--duration=4",
                f"--strain_channel={STRAIN}",
                f"--witnesses=[{','.join(WITNESSES[1:])}]",
                f"--mains_channel={WITNESSES[0]}",
                "--progress=false",
            ]
        )
    assert exit_.value.code == 1
    error = capsys.readouterr().err
    assert f"mains channel '{WITNESSES[0]}' is not among" in error
    assert "--mains_channel" in error
    assert not list(tmp_path.rglob("*.hdf5"))


def test_temporaries_of_killed_writers_removed(tmp_path):
    output = tmp_path / "data"
    (output / "truth").mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    stale = [
        partial_path(output / f"deepclean-{START}-8.hdf5", int(dead)),
        partial_path(
            output / "truth" / f"deepclean-{START}-8.hdf5", int(dead)
        ),
    ]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    main(
        [
            "simulate",
            f"--start={START}",
            "--duration=8",
            "--sample_rate=512",
            f"--output_dir={output}",
            f"--strain_channel={STRAIN}",
            f"--witnesses=[{','.join(WITNESSES)}]",
            f"--mains_channel={WITNESSES[0]}",
            "--progress=false",
        ]
    )
    assert not any(path.exists() for path in stale)
    assert not list(output.rglob("*.partial"))
    assert (output / f"deepclean-{START}-8.hdf5").exists()
