"""Parts of the simulated detector (see ``deepclean_data.simulate``)."""

from deepclean_data.simulation.config import (
    BackgroundConfig,
    CouplingConfig,
    InjectionConfig,
    MainsConfig,
    MotionConfig,
    SimulationConfig,
    load_simulation_config,
)
from deepclean_data.simulation.detector import (
    DECOY_CHANNELS,
    DRIFT_CHANNEL,
    MAINS_MARKER,
    ChannelRoles,
    SimulatedDetector,
    decoy_channels,
    drift_channel,
    truth_channels,
)

__all__ = [
    "DECOY_CHANNELS",
    "DRIFT_CHANNEL",
    "MAINS_MARKER",
    "BackgroundConfig",
    "ChannelRoles",
    "CouplingConfig",
    "InjectionConfig",
    "MainsConfig",
    "MotionConfig",
    "SimulatedDetector",
    "SimulationConfig",
    "decoy_channels",
    "drift_channel",
    "load_simulation_config",
    "truth_channels",
]
