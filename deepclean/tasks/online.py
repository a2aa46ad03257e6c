"""Online cleaning in the pipeline: publish the model, replay the cleaning
stretch as live 1 s frames (or read real ones) and clean them."""

from __future__ import annotations

import json
import os

import law
import luigi

from deepclean.config import PathParameter, shared
from deepclean.process import OutputsMissing
from deepclean.runs import file_digest
from deepclean.tasks.base import DATA_FORWARDED
from deepclean.tasks.clean import CleanParameters
from deepclean.tasks.data import Fetch
from deepclean.tasks.train import Train

LLHOFT = "llhoft"


def frame_path(folder: str, ifo: str, tag: str, gps: int) -> str:
    """``{folder}/{obs}-{ifo}_{tag}-{gps}-1.gwf``."""
    return os.path.join(folder, f"{ifo[0]}-{ifo}_{tag}-{gps}-1.gwf")


class OnlineParameters(CleanParameters):
    """Where models are published and online output goes."""

    model_dir = shared(
        PathParameter,
        description="folder the online cleaner takes published models from",
    )
    online_dir = shared(
        PathParameter,
        description="folder of replayed frames and online cleaning runs",
    )


class Publish(OnlineParameters):
    """``deepclean-train publish``: the model (Train's, or ``--model``)
    into ``model_dir``; complete while it is the published one."""

    project = "train"

    def requires(self):
        return [] if self.model else Train.req(self)

    def output(self):
        return law.LocalFileTarget(os.path.join(self.model_dir, "model.json"))

    def run_folder(self) -> None:
        return None

    def complete(self) -> bool:
        """The published record names this model's content."""
        target = self.output()
        if not target.exists():
            return False
        try:
            digest = file_digest(self.model_path())
        except FileNotFoundError:
            return False
        record = json.loads(target.load(formatter="text"))
        return record.get("sha256") == digest

    def check_outputs(self) -> None:
        super().check_outputs()
        if not self.complete():
            raise OutputsMissing(
                f"{self.output().path} does not name {self.model_path()} "
                "after publishing; see the command's output above"
            )

    def bind_paths(self) -> list[str]:
        return [
            self.model_dir,
            os.path.dirname(self.model_path()),
            *super().bind_paths(),
        ]

    def command(self) -> list[str]:
        return [
            self.executable("deepclean-train"),
            "publish",
            self.model_path(),
            f"--model_dir={self.model_dir}",
        ]


class Replay(OnlineParameters):
    """``deepclean-data replay``: ``[clean_start, clean_end)`` of the
    fetched files as 1 s ``llhoft``/``lldetchar`` frames, as the
    detectors publish them."""

    project = "data"
    forwarded = (*OnlineParameters.forwarded, *DATA_FORWARDED)

    def requires(self):
        return Fetch.req(self)

    def run_folder(self) -> str:
        """``{online_dir}/frames-{data run}``."""
        return os.path.join(
            self.online_dir,
            f"frames-{os.path.basename(self.data_folder())}",
        )

    def run_settings(self) -> dict:
        return self.data_settings()

    def output(self):
        return law.LocalFileTarget(
            frame_path(
                self.run_folder(), self.ifo, LLHOFT, int(self.clean_end) - 1
            )
        )

    def bind_paths(self) -> list[str]:
        return [
            self.run_folder(),
            self.data_folder(),
            *super().bind_paths(),
        ]

    def commands(self) -> list[list[str]]:
        """One replay per fetched file overlapping the stretch."""
        commands = []
        for path, start, end in self.fetched_files():
            first = max(start, self.clean_start)
            last = min(end, self.clean_end)
            if last > first:
                commands.append(
                    [
                        self.executable("deepclean-data"),
                        "replay",
                        f"--data_file={path}",
                        f"--output_dir={self.run_folder()}",
                        f"--strain_channel={self.ifo}:{self.strain_channel}",
                        f"--start={int(first)}",
                        f"--duration={int(last - first)}",
                    ]
                )
        return commands


class Online(OnlineParameters):
    """``deepclean-clean online`` from ``online_start`` to ``online_end``:
    the replayed stretch, or live frames in ``strain_dir``."""

    strain_dir = PathParameter(
        default="",
        description="folder of live llhoft frames; empty: replay the "
        "cleaning stretch",
    )
    witness_dir = PathParameter(
        default="",
        description="folder of live lldetchar frames; empty: strain_dir",
    )
    online_start = luigi.IntParameter(
        default=-1,
        description="first GPS second to clean; -1: clean_start + 16 "
        "(the replayed seconds before it warm the cleaner up)",
    )
    online_end = luigi.IntParameter(
        default=-1,
        description="last GPS second to clean; -1: clean_end - 16 (the "
        "look-ahead the model needs comes after it)",
    )

    def requires(self):
        requirements = {"model": Publish.req(self)}
        if not self.strain_dir:
            requirements["frames"] = Replay.req(self)
        return requirements

    def span(self) -> tuple[int, int]:
        """GPS ``(first, last)`` seconds to clean."""
        start = self.online_start
        end = self.online_end
        if start < 0:
            start = int(self.clean_start) + 16
        if end < 0:
            end = int(self.clean_end) - 16
        return start, end

    def frames_folder(self) -> str:
        return self.strain_dir or Replay.req(self).run_folder()

    def run_folder(self) -> str:
        """``{online_dir}/{clean run}``."""
        return os.path.join(self.online_dir, self.clean_run_name())

    def output(self):
        start, end = self.span()
        return law.LocalFileTarget(
            os.path.join(self.run_folder(), f"online-{start}-{end}.json")
        )

    def bind_paths(self) -> list[str]:
        return [
            self.run_folder(),
            self.model_dir,
            self.frames_folder(),
            *([self.witness_dir] if self.witness_dir else []),
            *super().bind_paths(),
        ]

    def command(self) -> list[str]:
        start, end = self.span()
        args = [
            self.executable("deepclean-clean"),
            "online",
            f"--strain_dir={self.frames_folder()}",
            f"--model_dir={self.model_dir}",
            f"--output_dir={self.run_folder()}",
            f"--start={start}",
            f"--end={end}",
            f"--channel_suffix={self.channel_suffix}",
            f"--device={'cuda:0' if self.gpus else 'cpu'}",
            f"--log_file={os.path.join(self.run_folder(), 'online.log')}",
            f"--summary={self.output().path}",
        ]
        if self.witness_dir:
            args.append(f"--witness_dir={self.witness_dir}")
        return args
