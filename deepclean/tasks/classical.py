"""The classical stage of the hybrid: NOMAD's residual files."""

from __future__ import annotations

import os

import law

from deepclean.runs import fingerprint
from deepclean.tasks.base import DeepCleanTask
from deepclean.tasks.data import DataParameters, Fetch
from deepclean.tasks.train import TrainParameters


class Classical(DataParameters, TrainParameters, DeepCleanTask):
    """``deepclean-clean classical``: NOMAD, fitted on Train's training
    and validation span of the first fetched file (the problems' line
    witness as noise witness, the other witnesses as modulation
    witnesses), cleans every fetched file; its residual files, same names
    as the fetched ones, go into ``{classical_dir}/{run}/`` with the
    fitted model (``nomad.h5``) and ``classical.json``.

    With ``classical_stage = nomad`` Train and Analyze read these files
    instead of the fetched ones; the trained model carries ``nomad.h5``
    and Clean, Online and Evaluate work on the raw strain.
    """

    project = "clean"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # no mains channel for NOMAD: fail before any task runs
        self.mains_channel()

    def mains_channel(self) -> str:
        """NOMAD's noise witness: the problems' line witness.

        Raises:
            CouplingError: the problems name no line witness.
        """
        return self.resolved().require_line_witness(
            "NOMAD's noise witness in the classical stage"
        )

    def requires(self):
        return Fetch.req(self)

    def training_span(self) -> tuple[str, float, float]:
        """``(first fetched file, GPS start, GPS end)`` of NOMAD's fit:
        Train's training and validation span."""
        path, file_start, _ = self.fetched_files()[0]
        start = file_start + self.train_offset
        return path, start, start + self.train_duration + self.valid_duration

    def run_settings(self) -> dict:
        """Everything that changes the residual files."""
        resolved = self.resolved()
        return {
            "method": self.classical_stage,
            "data_run": os.path.basename(self.data_folder()),
            "data": self.data_settings(),
            "start": self.start,
            "end": self.end,
            "train_offset": self.train_offset,
            "train_duration": self.train_duration,
            "valid_duration": self.valid_duration,
            "strain_channel": f"{self.ifo}:{self.strain_channel}",
            "witnesses": list(resolved.witnesses),
            "mains_channel": self.mains_channel(),
            "bands": [list(band) for band in resolved.bands],
        }

    def run_folder(self) -> str:
        """``{classical_dir}/{method}-{fingerprint}``."""
        return os.path.join(
            self.classical_dir,
            f"{self.classical_stage}-{fingerprint(self.run_settings())}",
        )

    def residual_path(self, fetched: str) -> str:
        """The residual file of a fetched file."""
        return os.path.join(self.run_folder(), os.path.basename(fetched))

    def output(self):
        return law.LocalFileTarget(
            os.path.join(self.run_folder(), "classical.json")
        )

    def check_outputs(self) -> None:
        """The summary exists and every residual file it lists exists."""
        super().check_outputs()
        self.check_listed_files("residual")

    def bind_paths(self) -> list[str]:
        return [
            self.run_folder(),
            self.data_folder(),
            *super().bind_paths(),
        ]

    def command(self) -> list[str]:
        resolved = self.resolved()
        bands = ",".join(f"[{low},{high}]" for low, high in resolved.bands)
        _, train_start, train_end = self.training_span()
        files = [path for path, _, _ in self.fetched_files()]
        return [
            self.executable("deepclean-clean"),
            "classical",
            f"--data_files=[{','.join(files)}]",
            f"--output_dir={self.run_folder()}",
            f"--strain_channel={self.ifo}:{self.strain_channel}",
            f"--witnesses=[{','.join(resolved.witnesses)}]",
            f"--mains_channel={self.mains_channel()}",
            f"--bands=[{bands}]",
            f"--train_start={train_start}",
            f"--train_end={train_end}",
            f"--summary={self.output().path}",
        ]
