"""The retraining service beside the online cleaner, end to end: frames
replayed in real time, the cleaner and the service as separate
processes; the cleaner switches to the retrained model at a frame
boundary and writes every second exactly once.

On a loaded machine the service may still be training when the replay
nears the cleaner's last second; the replay then pauses until the
retrained model is published (the cleaner waits for frames as long), so
that the switch always falls inside the cleaned stretch."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from deepclean_data.replay import replay
from deepclean_data.simulate import simulate
from deepclean_engine.exported import published_model
from deepclean_train.cli import run
from deepclean_train.publish import publish

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "projects" / "train" / "configs" / "reference.yaml"
T0 = 1262304000
SAMPLE_RATE = 512.0
STRAIN = "H1:GDS-CALIB_STRAIN"
WITNESSES = [
    "H1:PEM-CS_MAINSMON_EBAY_1_DQ",
    "H1:ASC-CHARD_P_INMON",
    "H1:ASC-DHARD_Y_INMON",
]
# the service's step ends at STEP; the cleaner runs [FIRST, LAST]; the
# replay pauses at PAUSE until the retrained model is published
STEP, FIRST, LAST = T0 + 150, T0 + 140, T0 + 178
PAUSE = T0 + 170
# seconds the replay and the cleaner wait at most
WAIT = 300


def _options() -> list[str]:
    """fit options of the tiny model (data file and spans apart)."""
    return [
        f"--config={REFERENCE}",
        f"--data.strain_channel={STRAIN}",
        f"--data.witnesses={json.dumps(WITNESSES)}",
        f"--data.sample_rate={SAMPLE_RATE}",
        "--data.network_sample_rate=256",
        "--data.batch_size=16",
        "--trainer.enable_progress_bar=false",
    ]


def _live(data_file: Path, frames: Path, models: Path) -> None:
    """Replay [STEP, T0 + 190) in real time, pausing at PAUSE until a
    second model version is published."""
    replay(
        data_file,
        frames,
        STRAIN,
        WITNESSES,
        STEP,
        PAUSE - STEP,
        realtime=True,
        progress=False,
    )
    waited = 0.0
    while published_model(models)[1]["version"] < 2 and waited < WAIT:
        time.sleep(0.5)
        waited += 0.5
    replay(
        data_file,
        frames,
        STRAIN,
        WITNESSES,
        PAUSE,
        T0 + 190 - PAUSE,
        realtime=True,
        progress=False,
    )


def test_cleaner_switches_to_the_retrained_model(tmp_path):
    data_file = simulate(
        tmp_path / "data",
        T0,
        190,
        STRAIN,
        WITNESSES,
        WITNESSES[0],
        SAMPLE_RATE,
        seed=3,
        progress=False,
    )
    # a first model that has hardly trained (learning rate 1e-7)
    run(
        [
            "fit",
            *_options(),
            f"--data.fname={data_file}",
            "--data.train_duration=96",
            "--data.valid_duration=32",
            "--data.batches_per_epoch=2",
            "--trainer.max_epochs=1",
            "--model.learning_rate=1e-7",
            f"--trainer.default_root_dir={tmp_path / 'first'}",
        ]
    )
    models = tmp_path / "models"
    publish(tmp_path / "first" / "model.pt", models)
    frames = tmp_path / "frames"
    replay(data_file, frames, STRAIN, WITNESSES, T0, 150, progress=False)
    live = threading.Thread(target=_live, args=(data_file, frames, models))
    live.start()
    log = tmp_path / "online.log"
    cleaner = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "deepclean-clean"),
            "online",
            f"--strain_dir={frames}",
            f"--model_dir={models}",
            f"--output_dir={tmp_path / 'cleaned'}",
            f"--start={FIRST}",
            f"--end={LAST}",
            f"--wait_limit={WAIT}",
            f"--log_file={log}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    service = subprocess.run(
        [
            str(Path(sys.executable).parent / "deepclean-train"),
            "service",
            f"--strain_dir={frames}",
            f"--model_dir={models}",
            f"--output_dir={tmp_path / 'service'}",
            "--fit_args="
            + json.dumps(
                [
                    *_options(),
                    "--data.batches_per_epoch=16",
                    "--trainer.max_epochs=3",
                ]
            ),
            "--cadence=32",
            "--train_duration=96",
            "--valid_duration=32",
            f"--start={STEP}",
            f"--end={STEP}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    _, errors = cleaner.communicate(timeout=300)
    live.join()
    assert service.returncode == 0, service.stdout + service.stderr
    step = json.loads(service.stdout.strip().splitlines()[-1])
    assert step["status"] == "promoted", step
    assert cleaner.returncode == 0, errors
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    # every second once, in order, across the switch
    assert [line["gps"] for line in lines] == list(range(FIRST, LAST + 1))
    versions = [line["model_version"] for line in lines]
    switch = versions.index(2)
    assert lines[switch]["gps"] > FIRST
    assert set(versions[:switch]) == {1} and set(versions[switch:]) == {2}
    assert "MODEL_CHANGED" in lines[switch]["flags"]
    outputs = sorted((tmp_path / "cleaned").glob("*.gwf"))
    assert len(outputs) == LAST - FIRST + 1
