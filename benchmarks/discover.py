"""Time and outcome of witness discovery over the simulated candidate pool.

Runs ``law run deepclean.tasks.Discover`` as a user would, with the
``[Discover]`` settings of ``luigi.cfg`` (2048 s of the simulated
detector: 21 witnesses, 2 decoys and 112 candidates; training on 1536 s,
validation on 512 s; the reference model) into a scratch folder, then
prints the wall time of the whole run (simulation included) against the
target of 30 minutes on 2 CPU cores, each training's seconds, and the
in-band ASD ratio of each witness set.

Usage: python benchmarks/discover.py [--workdir DIR] [--top-k 24]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = "target: 30 minutes on 2 CPU cores over 100+ candidates"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--top-k", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        law = Path(sys.executable).parent / "law"
        env = {**os.environ, "LAW_HOME": str(workdir / "law")}
        subprocess.run([str(law), "index"], cwd=REPO, env=env, check=True)
        began = time.perf_counter()
        subprocess.run(
            [
                str(law),
                "run",
                "deepclean.tasks.Discover",
                f"--data-dir={workdir / 'data'}",
                f"--train-dir={workdir / 'train'}",
                f"--discover-dir={workdir / 'discover'}",
                f"--discover-top-k={args.top_k}",
            ],
            cwd=REPO,
            env=env,
            check=True,
        )
        seconds = time.perf_counter() - began
        (path,) = (workdir / "discover").glob("*/discover.json")
        summary = json.loads(path.read_text())
    print(f"Discover: {seconds / 60:.1f} min end to end ({TARGET})")
    print(f"  {len(summary['candidates'])} candidates")
    for name, stage in summary["stages"].items():
        print(
            f"  {name}: {len(stage['witnesses'])} witnesses, trained in "
            f"{stage['train_seconds'] / 60:.1f} min, in-band ASD ratio "
            f"{stage['in_band']:.4f}, {stage['parameters']} parameters"
        )
    print(
        f"  redundant (low saliency, high coherence): {summary['redundant']}"
    )
    for line in summary["conclusions"]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
