"""Subtraction problems defined in a user's coupling file.

A coupling file is INI text with one section per problem, named
``problem NAME``; each IFO takes a ``band`` (two frequencies in Hz), a
``witnesses`` list (one channel per line or comma separated, without the
IFO prefix) and optionally a ``line_witness``, the one of its witnesses
that records the power line (the simulated detector's mains monitor and
the channel the evaluation's ``Wiener + products`` baseline multiplies
with the others, NOMAD's noise witness; both need one)::

    [problem 120Hz]
    description = first harmonic of the mains line
    H1.band = 118 122
    H1.witnesses =
        PEM-CS_MAINSMON_EBAY_1_DQ
        ASC-CHARD_P_OUT_DQ
    H1.line_witness = PEM-CS_MAINSMON_EBAY_1_DQ

Point DeepClean at the file with ``couplings_file`` in the ``[deepclean]``
section of ``luigi.cfg`` or with ``$DEEPCLEAN_COUPLINGS``.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from deepclean.couplings.registry import (
    Coupling,
    CouplingError,
    SubtractionProblem,
)

_SECTION = re.compile(r"^problem\s+(?P<name>\S+)$")
_KEY = re.compile(
    r"^(?P<ifo>[A-Z][0-9])\.(?P<field>band|witnesses|line_witness)$"
)


def read_couplings_file(path: Path) -> list[SubtractionProblem]:
    """Parse the problems of a coupling file.

    Raises:
        CouplingError: naming the file, section and key that is malformed.
    """
    if not path.is_file():
        raise CouplingError(f"coupling file {path} does not exist")
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    try:
        parser.read(path)
    except configparser.Error as err:
        raise CouplingError(f"coupling file {path}: {err}") from err

    problems = []
    for section in parser.sections():
        match = _SECTION.match(section)
        if match is None:
            raise CouplingError(
                f"{path}: section [{section}] must be named [problem NAME]"
            )
        problems.append(
            _read_problem(path, section, match["name"], parser[section])
        )
    return problems


def _read_problem(
    path: Path,
    section: str,
    name: str,
    entries: configparser.SectionProxy,
) -> SubtractionProblem:
    fields: dict[str, dict[str, str]] = {}
    for key, value in entries.items():
        if key == "description":
            continue
        match = _KEY.match(key)
        if match is None:
            raise CouplingError(
                f"{path} [{section}]: unknown key {key!r}; use "
                "'description', 'IFO.band', 'IFO.witnesses' or "
                "'IFO.line_witness'"
            )
        fields.setdefault(match["ifo"], {})[match["field"]] = value

    couplings = {}
    for ifo, values in fields.items():
        missing = {"band", "witnesses"} - set(values)
        if missing:
            raise CouplingError(
                f"{path} [{section}]: {ifo} lacks "
                f"{', '.join(f'{ifo}.{m}' for m in sorted(missing))}"
            )
        try:
            low, high = (float(f) for f in values["band"].split())
        except ValueError:
            raise CouplingError(
                f"{path} [{section}]: {ifo}.band must be two frequencies "
                f"in Hz, got {values['band']!r}"
            ) from None
        witnesses = tuple(
            w.strip()
            for w in re.split(r"[,\n]", values["witnesses"])
            if w.strip()
        )
        try:
            couplings[ifo] = Coupling(
                low,
                high,
                witnesses,
                values.get("line_witness", "").strip() or None,
            )
        except CouplingError as err:
            raise CouplingError(f"{path} [{section}] {ifo}: {err}") from None
    if not couplings:
        raise CouplingError(f"{path} [{section}]: defines no IFO coupling")
    return SubtractionProblem(
        name=name,
        description=entries.get("description", ""),
        couplings=couplings,
    )
