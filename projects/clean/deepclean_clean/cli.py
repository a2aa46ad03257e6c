"""``deepclean-clean``: offline and online cleaning, the classical stage
of the hybrid (NOMAD's residual files), evaluation reports, the
retraining gate and report.

Each subcommand's options are the arguments of the typed function that
does the work (``deepclean-clean clean --help``). Expected errors print
one line without a traceback (``--debug`` shows it) and SIGTERM exits with
status 143 (:func:`deepclean_io.commands.run_command_line`).
"""

from __future__ import annotations

from collections.abc import Sequence

from jsonargparse import CLI

from deepclean_clean.assess import assess
from deepclean_clean.classical import ClassicalSummary, subtract_classical
from deepclean_clean.clean import CleanSummary, clean
from deepclean_clean.online import OnlineSummary, online
from deepclean_clean.retrain import gate, retrain_report
from deepclean_io.commands import run_command_line


def _run(argv: list[str]) -> None:
    """Parse ``argv``, run the subcommand and print a cleaning run's
    line."""
    result = CLI(
        {
            "classical": subtract_classical,
            "clean": clean,
            "online": online,
            "evaluate": assess,
            "gate": gate,
            "retrain-report": retrain_report,
        },
        args=argv,
        description="DeepClean offline and online cleaning and evaluation.",
        as_positional=False,
    )
    if isinstance(result, CleanSummary | OnlineSummary | ClassicalSummary):
        print(result.describe())


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``deepclean-clean``."""
    run_command_line("deepclean-clean", _run, argv)


if __name__ == "__main__":
    main()
