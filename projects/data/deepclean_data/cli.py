"""``deepclean-data``: simulate, fetch, query segments and replay frames.

Every subcommand is built from the signature and docstring of the typed
function that does the work, so its options are the function's
arguments (``deepclean-data fetch --help``). ``deepclean-data --config
run.yaml query`` reads the arguments from a YAML file with one section per
subcommand (``query: {start: ..., end: ...}``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from deepclean_data.fetch import fetch
from deepclean_data.replay import replay
from deepclean_data.segments import query_segments, write_segments
from deepclean_data.simulate import simulate
from deepclean_io.atomic import remove_stale_partials
from deepclean_io.commands import run_command_line

SUBCOMMANDS: dict[str, Callable[..., Any]] = {
    "simulate": simulate,
    "fetch": fetch,
    "query": query_segments,
    "replay": replay,
}
"""Subcommand name -> function whose arguments it exposes."""

_SKIPPED = {"replay": {"clock", "sleep"}}
"""Arguments only Python callers set (test clocks)."""


def build_parser() -> ArgumentParser:
    """The ``deepclean-data`` parser with one subcommand per function."""
    parser = ArgumentParser(
        prog="deepclean-data",
        description="DeepClean data: simulated detector, LIGO fetching, "
        "segment queries and low-latency frame replay.",
    )
    parser.add_argument(
        "--config",
        action=ActionConfigFile,
        help="YAML file with a section per subcommand, e.g. 'fetch: {...}'",
    )
    subcommands = parser.add_subcommands(dest="subcommand")
    for name, function in SUBCOMMANDS.items():
        summary = (function.__doc__ or name).strip().splitlines()[0]
        subparser = ArgumentParser(description=summary)
        subparser.add_function_arguments(
            function, skip=_SKIPPED.get(name, set())
        )
        if name == "query":
            subparser.add_argument(
                "--output",
                type=Path,
                required=True,
                help="segment file to write ('start end' per line)",
            )
        subcommands.add_subcommand(name, subparser, help=summary)
    return parser


def run(config: Namespace) -> str:
    """Run the subcommand chosen in a parsed ``config``; return a summary."""
    name = config.subcommand
    arguments = dict(vars(config[name]))
    if arguments.get("output_dir"):
        # temporaries of writers killed in an earlier run
        remove_stale_partials(arguments["output_dir"], recursive=True)
    if name == "query":
        output = arguments.pop("output")
        segments = query_segments(**arguments)
        write_segments(output, segments)
        total = sum(end - start for start, end in segments)
        return f"{len(segments)} segments ({total:.0f} s) -> {output}"
    if name == "replay":
        frames = replay(**arguments)
        return f"{len(frames)} frame pairs -> {arguments['output_dir']}"
    return str(SUBCOMMANDS[name](**arguments))


def parse_and_run(argv: Sequence[str]) -> None:
    """Parse ``argv``, run the subcommand and print its summary."""
    parser = build_parser()
    config = parser.instantiate(parser.parse_args(argv))
    print(run(config))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``deepclean-data``.

    Errors caused by the input (bad spans, channels, files, missing
    credentials) end the program with their message and exit status 1,
    SIGTERM with status 143 (:mod:`deepclean_io.commands`).
    """
    run_command_line("deepclean-data", parse_and_run, argv)


if __name__ == "__main__":
    main()
