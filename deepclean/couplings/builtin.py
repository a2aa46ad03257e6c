"""Subtraction problems shipped with DeepClean."""

from deepclean.couplings.registry import Coupling, SubtractionProblem

MAINS_MONITOR = "PEM-CS_MAINSMON_EBAY_1_DQ"
ASC_LOOPS = (
    "INP1",
    "MICH",
    "PRC1",
    "PRC2",
    "SRC1",
    "SRC2",
    "DHARD",
    "CHARD",
    "DSOFT",
    "CSOFT",
)


def _asc(loops: tuple[str, ...], dofs: str, suffix: str) -> tuple[str, ...]:
    return tuple(
        f"ASC-{loop}_{dof}_{suffix}" for loop in loops for dof in dofs
    )


# 60 Hz mains: the line couples linearly, and bilinearly with slow angular
# control motion, which makes sidebands at 60 +/- f_asc. H1 uses the O3
# ``_INMON`` ASC channels; L1 the O4 ``_OUT_DQ`` ones, without the yaw of
# CSOFT, DSOFT and INP1.
L1_ASC_YAW_UNUSED = ("CSOFT", "DSOFT", "INP1")

SIXTY_HZ = SubtractionProblem(
    name="60Hz",
    description="60 Hz mains line and its sidebands from angular control",
    couplings={
        "H1": Coupling(
            55.0,
            65.0,
            (MAINS_MONITOR, *_asc(ASC_LOOPS, "PY", "INMON")),
            line_witness=MAINS_MONITOR,
        ),
        "L1": Coupling(
            58.0,
            62.0,
            (
                MAINS_MONITOR,
                *_asc(ASC_LOOPS, "P", "OUT_DQ"),
                *_asc(
                    tuple(
                        loop
                        for loop in ASC_LOOPS
                        if loop not in L1_ASC_YAW_UNUSED
                    ),
                    "Y",
                    "OUT_DQ",
                ),
            ),
            line_witness=MAINS_MONITOR,
        ),
    },
)

BUILTIN_PROBLEMS = (SIXTY_HZ,)
