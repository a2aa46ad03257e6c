"""Names of the candidate witnesses (see ``CandidateConfig``).

Each family of candidates takes its names from a vocabulary of
LIGO-style sensor channels (without the IFO prefix), in an order mixed
once by a fixed generator, so a few candidates already span several
kinds of sensor. Names of the simulation's other channels (strain, the
witnesses given, the decoys, the drift witness) are skipped. Beyond the
vocabulary the names repeat with a sensor number before ``_DQ``
(``..._X_2_DQ``), so any count has unique names. Nothing here depends on
the seed.
"""

import itertools
from dataclasses import dataclass

import numpy as np

from deepclean_data.simulation.blocks import stream_key
from deepclean_data.simulation.config import CandidateConfig

_AXES = ("X", "Y", "Z")
_ANGLES = ("PIT", "YAW")
_QUADS = ("ITMX", "ITMY", "ETMX", "ETMY")
# Suspensions whose top stage is M1 (quads have M0 and reaction R0).
_TRIPLES = (
    "BS",
    "PRM",
    "PR2",
    "PR3",
    "SRM",
    "SR2",
    "SR3",
    "MC1",
    "MC2",
    "MC3",
    "OMC",
    "TMSX",
    "TMSY",
)

# Broadband physical-environment sensors, spectra like the decoys'.
_ACCELEROMETER_MOUNTS = (
    "CS_ACC_HAM2_PRM",
    "CS_ACC_HAM3_PR2",
    "CS_ACC_HAM5_SRM",
    "CS_ACC_HAM6_OMC",
    "CS_ACC_BSC1_ITMY",
    "CS_ACC_BSC2_BS",
    "CS_ACC_BSC3_ITMX",
    "CS_ACC_PSL_TABLE1",
    "CS_ACC_ISCT1_REFL",
    "CS_ACC_ISCT6_AS",
    "CS_ACC_LVEAFLOOR_HAM1",
    "CS_ACC_LVEAFLOOR_BS",
    "CS_ACC_BEAMTUBE_MCTUBE",
    "CS_ACC_EBAY_FLOOR",
    "EX_ACC_BSC9_ETMX",
    "EX_ACC_VEA_FLOOR",
    "EX_ACC_EBAY_FLOOR",
    "EX_ACC_OPLEV_ETMX",
    "EX_ACC_ISCTEX_TRANS",
    "EY_ACC_BSC10_ETMY",
    "EY_ACC_VEA_FLOOR",
    "EY_ACC_EBAY_FLOOR",
    "EY_ACC_OPLEV_ETMY",
    "EY_ACC_ISCTEY_TRANS",
)
_MICROPHONES = (
    "CS_MIC_LVEA_BS",
    "CS_MIC_LVEA_HAM7",
    "CS_MIC_LVEA_VERTEX",
    "CS_MIC_LVEA_INPUTOPTICS",
    "CS_MIC_LVEA_OUTPUTOPTICS",
    "CS_MIC_LVEA_XMANSPOOL",
    "CS_MIC_LVEA_YMANSPOOL",
    "CS_MIC_PSL_CENTER",
    "CS_MIC_EBAY_RACKS",
    "EX_MIC_VEA_PLUSX",
    "EX_MIC_VEA_MINUSX",
    "EX_MIC_EBAY_RACKS",
    "EY_MIC_VEA_PLUSY",
    "EY_MIC_VEA_MINUSY",
    "EY_MIC_EBAY_RACKS",
)
_MAGNETOMETER_MOUNTS = (
    "CS_MAG_LVEA_VERTEX",
    "CS_MAG_LVEA_INPUTOPTICS",
    "CS_MAG_LVEA_OUTPUTOPTICS",
    "CS_MAG_EBAY_SUSRACK",
    "CS_MAG_EBAY_LSCRACK",
    "CS_MAG_PSL_TABLE",
    "EX_MAG_VEA_FLOOR",
    "EX_MAG_EBAY_SUSRACK",
    "EY_MAG_VEA_FLOOR",
    "EY_MAG_EBAY_SUSRACK",
)
BROADBAND_SENSORS = (
    *(f"PEM-{m}_{a}_DQ" for m in _ACCELEROMETER_MOUNTS for a in _AXES),
    *(f"PEM-{m}_DQ" for m in _MICROPHONES),
    *(f"PEM-{m}_{a}_DQ" for m in _MAGNETOMETER_MOUNTS for a in _AXES),
)

# Low-frequency sensors, spectra like the angular witnesses'.
_DAMPED_STAGES = (
    *(f"{optic}_{stage}" for optic in _QUADS for stage in ("M0", "R0")),
    *(f"{optic}_M1" for optic in _TRIPLES),
)
_GROUND_SEISMOMETERS = ("ITMY", "HAM2", "HAM5", "ETMX", "ETMY")
_PEM_SEISMOMETERS = ("CS_SEIS_LVEA_VERTEX", "EX_SEIS_VEA_FLOOR")
LOW_FREQUENCY_SENSORS = (
    *(
        f"SUS-{stage}_DAMP_{dof}_IN1_DQ"
        for stage in _DAMPED_STAGES
        for dof in ("L", "T", "V", "R", "P", "Y")
    ),
    *(
        f"SUS-{optic}_{stage}_WIT_{dof}_DQ"
        for optic in _QUADS
        for stage in ("L1", "L2")
        for dof in ("L", "P", "Y")
    ),
    *(f"ISI-GND_STS_{s}_{a}_DQ" for s in _GROUND_SEISMOMETERS for a in _AXES),
    *(f"PEM-{s}_{a}_DQ" for s in _PEM_SEISMOMETERS for a in _AXES),
)

# Other sensors of the angular loops: wavefront sensors, transmission
# QPDs and optical levers, for the candidates correlated with a coupled
# angular witness.
_LOOP_SENSORS = (
    *(
        f"{port}_{head}_{demodulation}"
        for port, demodulations in (
            ("AS", ("RF45_I", "RF45_Q", "RF36_I", "RF36_Q", "DC")),
            ("REFL", ("RF9_I", "RF9_Q", "RF45_I", "RF45_Q", "DC")),
        )
        for head in ("A", "B")
        for demodulation in demodulations
    ),
    "AS_C",
    "POP_A",
    "POP_B",
    "POP_X_RF_I",
    "POP_X_RF_Q",
    "OMC_A",
    "OMC_B",
    "X_TR_A",
    "X_TR_B",
    "Y_TR_A",
    "Y_TR_B",
)
_OPTICAL_LEVERS = (
    *(f"{optic}_L3" for optic in _QUADS),
    *(f"{optic}_M3" for optic in ("BS", "PR3", "SR3")),
)
LOOP_SENSORS = (
    *(f"ASC-{s}_{angle}_OUT_DQ" for s in _LOOP_SENSORS for angle in _ANGLES),
    *(
        f"SUS-{lever}_OPLEV_{angle}_OUT_DQ"
        for lever in _OPTICAL_LEVERS
        for angle in _ANGLES
    ),
)


def _family_names(
    vocabulary: tuple[str, ...],
    family: str,
    count: int,
    ifo: str,
    reserved: set[str],
) -> tuple[str, ...]:
    """The first ``count`` names of a family, prefixed and unreserved.

    Args:
        vocabulary: The family's names without IFO prefix, each ending
            in ``_DQ``.
        family: The family's name, which keys its fixed order.
        count: Names wanted.
        ifo: IFO prefix, e.g. ``"H1"``.
        reserved: Full names (with prefix) to skip.
    """
    order = np.random.default_rng(stream_key("candidate names", family))
    mixed = [vocabulary[i] for i in order.permutation(len(vocabulary))]
    names = (
        f"{ifo}:{name}"
        if repeat == 0
        else f"{ifo}:{name.removesuffix('_DQ')}_{repeat + 1}_DQ"
        for repeat in itertools.count()
        for name in mixed
    )
    return tuple(
        itertools.islice(
            (name for name in names if name not in reserved), count
        )
    )


@dataclass(frozen=True)
class CandidatePool:
    """Names of the candidate witnesses, by family.

    Attributes:
        broadband: Uncoupled, with PEM-like broadband spectra.
        low_frequency: Uncoupled, with angular-like low-frequency spectra.
        correlated: Recording a coupled angular witness's motion.
    """

    broadband: tuple[str, ...] = ()
    low_frequency: tuple[str, ...] = ()
    correlated: tuple[str, ...] = ()

    @classmethod
    def named(
        cls, ifo: str, reserved: set[str], config: CandidateConfig
    ) -> "CandidatePool":
        """The pool's names for a configuration.

        Args:
            ifo: IFO prefix of every name, e.g. ``"H1"``.
            reserved: Full channel names that no candidate may take.
            config: Counts of each family.
        """
        return cls(
            broadband=_family_names(
                BROADBAND_SENSORS,
                "broadband",
                config.num_uncoupled - config.num_low_frequency,
                ifo,
                reserved,
            ),
            low_frequency=_family_names(
                LOW_FREQUENCY_SENSORS,
                "low_frequency",
                config.num_low_frequency,
                ifo,
                reserved,
            ),
            correlated=_family_names(
                LOOP_SENSORS,
                "correlated",
                config.num_correlated,
                ifo,
                reserved,
            ),
        )

    @property
    def uncoupled(self) -> tuple[str, ...]:
        """Broadband then low-frequency candidates."""
        return (*self.broadband, *self.low_frequency)

    @property
    def channels(self) -> tuple[str, ...]:
        """Every candidate: uncoupled, then correlated."""
        return (*self.uncoupled, *self.correlated)
