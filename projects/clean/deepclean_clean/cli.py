"""``deepclean-clean``: offline cleaning and evaluation reports.

Each subcommand's options are the arguments of the typed function that
does the work (``deepclean-clean clean --help``).
"""

from __future__ import annotations

from collections.abc import Sequence

from jsonargparse import CLI

from deepclean_clean.assess import assess
from deepclean_clean.clean import CleanSummary, clean


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``deepclean-clean``."""
    result = CLI(
        {"clean": clean, "evaluate": assess},
        args=argv,
        description="DeepClean offline cleaning and evaluation.",
        as_positional=False,
    )
    if isinstance(result, CleanSummary):
        print(result.describe())


if __name__ == "__main__":
    main()
