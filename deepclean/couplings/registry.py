"""Data types and resolution logic of the couplings registry."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

COUPLINGS_FILE_ENV = "DEEPCLEAN_COUPLINGS"


class CouplingError(ValueError):
    """A subtraction problem or coupling is unknown or inconsistent."""


@dataclass(frozen=True)
class Coupling:
    """Noise coupling of one interferometer in one frequency band.

    Args:
        freq_low: Lower edge of the band in Hz.
        freq_high: Upper edge of the band in Hz.
        witnesses: Witness channel names without the ``IFO:`` prefix.
        line_witness: The witness that records the power line (the mains
            monitor), one of ``witnesses``; None when the problem has
            none. The simulated detector makes it its mains monitor, and
            the evaluation's ``Wiener + products`` baseline multiplies it
            with every other witness (NOMAD's noise witness).
    """

    freq_low: float
    freq_high: float
    witnesses: tuple[str, ...]
    line_witness: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.freq_low < self.freq_high:
            raise CouplingError(
                f"band {self.freq_low}-{self.freq_high} Hz is invalid: "
                "freq_low must be above 0 Hz and below freq_high"
            )
        if not self.witnesses:
            raise CouplingError(
                f"band {self.freq_low}-{self.freq_high} Hz has no witnesses"
            )
        for name in self.witnesses:
            if ":" in name:
                raise CouplingError(
                    f"witness {name!r} carries an IFO prefix; list witnesses "
                    "without it, the registry adds the chosen IFO"
                )
        if (
            self.line_witness is not None
            and self.line_witness not in self.witnesses
        ):
            raise CouplingError(
                f"line witness {self.line_witness!r} of band "
                f"{self.freq_low}-{self.freq_high} Hz is not among its "
                f"witnesses {list(self.witnesses)}; add it to the witnesses "
                "or name one of them"
            )

    @property
    def band(self) -> tuple[float, float]:
        return (self.freq_low, self.freq_high)


@dataclass(frozen=True)
class SubtractionProblem:
    """A named noise problem with one :class:`Coupling` per IFO."""

    name: str
    description: str
    couplings: Mapping[str, Coupling] = field(default_factory=dict)

    def for_ifo(self, ifo: str) -> Coupling:
        try:
            return self.couplings[ifo]
        except KeyError:
            valid = ", ".join(sorted(self.couplings)) or "none"
            raise CouplingError(
                f"problem {self.name!r} has no coupling for IFO {ifo!r}; "
                f"it is defined for: {valid}"
            ) from None


@dataclass(frozen=True)
class Resolved:
    """Bands and channels of one or more problems for one IFO.

    Attributes:
        ifo: Interferometer prefix, e.g. ``"H1"``.
        problems: Names of the combined problems.
        bands: Non-overlapping ``(freq_low, freq_high)`` pairs in Hz, sorted
            by frequency.
        witnesses: Full channel names (``"H1:..."``), de-duplicated and
            sorted, which fixes the channel order a model is trained with.
        line_witness: Full name of the line (mains) witness the problems
            name, None when none does.
    """

    ifo: str
    problems: tuple[str, ...]
    bands: tuple[tuple[float, float], ...]
    witnesses: tuple[str, ...]
    line_witness: str | None = None

    def require_line_witness(self, purpose: str) -> str:
        """:attr:`line_witness`, for a use that needs one.

        Args:
            purpose: What needs it, for the message, e.g. ``"the
                simulated detector's mains monitor"``.

        Raises:
            CouplingError: none of the problems names a line witness.
        """
        if self.line_witness is None:
            raise CouplingError(
                f"{purpose} is the line witness of the subtraction "
                f"problems, and none of {', '.join(self.problems)} names "
                f"one for {self.ifo}; add '{self.ifo}.line_witness = "
                "CHANNEL' (one of its witnesses) to the problem in the "
                "coupling file"
            )
        return self.line_witness


class Registry:
    """A collection of :class:`SubtractionProblem` objects by name."""

    def __init__(self, problems: Iterable[SubtractionProblem] = ()) -> None:
        self._problems: dict[str, SubtractionProblem] = {}
        for problem in problems:
            self.register(problem)

    def register(self, problem: SubtractionProblem) -> None:
        if problem.name in self._problems:
            raise CouplingError(
                f"problem {problem.name!r} is defined twice; rename one"
            )
        self._problems[problem.name] = problem

    def names(self) -> list[str]:
        return sorted(self._problems)

    def __contains__(self, name: str) -> bool:
        return name in self._problems

    def __getitem__(self, name: str) -> SubtractionProblem:
        try:
            return self._problems[name]
        except KeyError:
            raise CouplingError(
                f"unknown subtraction problem {name!r}; valid problems are: "
                f"{', '.join(self.names())}. Define new ones in a coupling "
                f"file (see deepclean.couplings.files) named by "
                f"${COUPLINGS_FILE_ENV} or `couplings_file` in luigi.cfg"
            ) from None

    def ifos(self) -> list[str]:
        return sorted(
            {i for p in self._problems.values() for i in p.couplings}
        )

    def resolve(
        self,
        ifo: str,
        problems: Sequence[str],
        sample_rate: float | None = None,
    ) -> Resolved:
        """Combine ``problems`` for ``ifo`` into bands and channels.

        Args:
            ifo: interferometer, e.g. ``H1``.
            problems: names of registered problems.
            sample_rate: data sample rate, Hz; every band must lie below
                its Nyquist frequency.

        Raises:
            CouplingError: for unknown problems or IFOs, an empty problem
                list, bands that overlap or reach the Nyquist frequency,
                or problems naming different line witnesses.
        """
        names = [p.strip() for p in problems if p.strip()]
        if not names:
            raise CouplingError(
                "no subtraction problem chosen; pick one or more of: "
                f"{', '.join(self.names())}"
            )
        if ifo not in self.ifos():
            raise CouplingError(
                f"unknown IFO {ifo!r}; the registry knows: "
                f"{', '.join(self.ifos())}"
            )
        names = list(dict.fromkeys(names))
        couplings = {name: self[name].for_ifo(ifo) for name in names}
        ordered = sorted(couplings.items(), key=lambda item: item[1].band)
        for (name_a, a), (name_b, b) in pairwise(ordered):
            if b.freq_low < a.freq_high:
                raise CouplingError(
                    f"bands of {name_a!r} ({a.freq_low}-{a.freq_high} Hz) "
                    f"and {name_b!r} ({b.freq_low}-{b.freq_high} Hz) overlap "
                    f"for {ifo}; merge them into one problem"
                )
        if sample_rate is not None:
            nyquist = sample_rate / 2
            for name, coupling in ordered:
                if coupling.freq_high >= nyquist:
                    raise CouplingError(
                        f"band of {name!r} for {ifo} "
                        f"({coupling.freq_low}-{coupling.freq_high} Hz) "
                        f"reaches the Nyquist frequency {nyquist:g} Hz of "
                        f"{sample_rate:g} Hz data; raise sample_rate above "
                        f"{2 * coupling.freq_high:g} Hz or drop the problem"
                    )
        witnesses = sorted(
            {f"{ifo}:{w}" for c in couplings.values() for w in c.witnesses}
        )
        lines = {
            name: coupling.line_witness
            for name, coupling in ordered
            if coupling.line_witness is not None
        }
        if len(set(lines.values())) > 1:
            named = ", ".join(f"{n!r}: {w}" for n, w in lines.items())
            raise CouplingError(
                f"the problems name different line witnesses for {ifo} "
                f"({named}); the pipeline uses one mains monitor: name the "
                "same one in each, or clean the problems separately"
            )
        line = next(iter(lines.values()), None)
        return Resolved(
            ifo=ifo,
            problems=tuple(name for name, _ in ordered),
            bands=tuple(c.band for _, c in ordered),
            witnesses=tuple(witnesses),
            line_witness=None if line is None else f"{ifo}:{line}",
        )


def default_registry(
    couplings_file: str | os.PathLike | None = None,
) -> Registry:
    """The built-in problems plus those of a coupling file.

    Args:
        couplings_file: Path of a coupling file. Defaults to the value of
            ``$DEEPCLEAN_COUPLINGS`` when set; an empty value means none.
    """
    from deepclean.couplings.builtin import BUILTIN_PROBLEMS
    from deepclean.couplings.files import read_couplings_file

    registry = Registry(BUILTIN_PROBLEMS)
    if couplings_file is None:
        couplings_file = os.environ.get(COUPLINGS_FILE_ENV) or None
    if couplings_file:
        for problem in read_couplings_file(Path(couplings_file)):
            registry.register(problem)
    return registry


def resolve(
    ifo: str,
    problems: Sequence[str] | str,
    couplings_file: str | os.PathLike | None = None,
    sample_rate: float | None = None,
) -> Resolved:
    """Resolve problems (a sequence or a comma list) for one IFO, with
    bands checked against the Nyquist frequency of ``sample_rate``."""
    if isinstance(problems, str):
        problems = problems.split(",")
    return default_registry(couplings_file).resolve(ifo, problems, sample_rate)
