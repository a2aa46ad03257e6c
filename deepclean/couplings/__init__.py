"""Registry of subtraction problems: which witnesses clean which band.

A *subtraction problem* (for example ``60Hz``) maps each interferometer to a
:class:`Coupling`: the frequency band in Hz where noise couples into strain
and the auxiliary witness channels that record its sources. Several problems
can be cleaned at once; :func:`resolve` combines them into one validated set
of bands and one deterministic, de-duplicated channel list.

Problems come from the built-in modules of this package and from coupling
files (see :mod:`deepclean.couplings.files` for the format), which users
write without editing the package.
"""

from deepclean.couplings.registry import (
    Coupling,
    CouplingError,
    Registry,
    Resolved,
    SubtractionProblem,
    default_registry,
    resolve,
)

__all__ = [
    "Coupling",
    "CouplingError",
    "Registry",
    "Resolved",
    "SubtractionProblem",
    "default_registry",
    "resolve",
]
