"""Parts of the simulated detector (see ``deepclean_data.simulate``)."""

from deepclean_data.simulation.config import (
    BackgroundConfig,
    CouplingConfig,
    InjectionConfig,
    MainsConfig,
    MotionConfig,
    SimulationConfig,
)
from deepclean_data.simulation.detector import (
    DECOY_CHANNELS,
    ChannelRoles,
    SimulatedDetector,
    decoy_channels,
)

__all__ = [
    "DECOY_CHANNELS",
    "BackgroundConfig",
    "ChannelRoles",
    "CouplingConfig",
    "InjectionConfig",
    "MainsConfig",
    "MotionConfig",
    "SimulatedDetector",
    "SimulationConfig",
    "decoy_channels",
]
