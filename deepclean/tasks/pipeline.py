"""The whole pipeline on the configured detector, as one command."""

from __future__ import annotations

import json

import law

from deepclean.tasks.clean import Evaluate


class Pipeline(law.Task):
    """Fetch (or simulate) -> Train -> Clean -> Evaluate, then print the
    report path and the headline numbers. Finished tasks are reused; this
    one has no output of its own, so it prints the summary every run."""

    def requires(self):
        return Evaluate.req(self)

    def output(self):
        return []

    def complete(self) -> bool:
        return False

    def run(self) -> None:
        evaluation = self.input()
        headline = json.loads(evaluation.load(formatter="text"))["headline"]
        report = evaluation.sibling("report.html", type="f").path
        lines = [f"report: {report}", summary_table(headline)]
        print("\n".join(lines))


def summary_table(headline: dict[str, dict[str, float]]) -> str:
    """The headline numbers per version as an aligned text table."""
    columns = (
        ("in_band_asd_ratio", "in-band ASD ratio"),
        ("out_of_band_asd_ratio", "out-of-band ratio"),
        ("range_gain", "BNS range gain"),
        ("excess_over_ideal", "excess over ideal"),
        ("coupled_power_removed", "coupled power removed"),
    )
    width = max(len(name) for name in headline) + 2
    rows = ["".ljust(width) + "".join(f"{title:>24}" for _, title in columns)]
    for name, numbers in headline.items():
        cells = "".join(
            f"{numbers[key]:>24.4f}"
            if numbers.get(key) is not None
            else f"{'-':>24}"
            for key, _ in columns
        )
        rows.append(name.ljust(width) + cells)
    return "\n".join(rows)
