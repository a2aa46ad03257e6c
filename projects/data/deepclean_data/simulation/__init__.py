"""Parts of the simulated detector (see ``deepclean_data.simulate``)."""

from deepclean_data.simulation.config import (
    BackgroundConfig,
    CandidateConfig,
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
    ChannelRoles,
    SimulatedDetector,
    candidate_channels,
    decoy_channels,
    drift_channel,
)

__all__ = [
    "DECOY_CHANNELS",
    "DRIFT_CHANNEL",
    "BackgroundConfig",
    "CandidateConfig",
    "ChannelRoles",
    "CouplingConfig",
    "InjectionConfig",
    "MainsConfig",
    "MotionConfig",
    "SimulatedDetector",
    "SimulationConfig",
    "candidate_channels",
    "decoy_channels",
    "drift_channel",
    "load_simulation_config",
]
