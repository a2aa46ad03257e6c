"""DeepClean cleaning engine and signal-processing modules.

One engine turns a noise model's predictions into cleaned strain for
training validation, offline cleaning and online cleaning alike.
"""

from deepclean_engine.config import CleaningConfig
from deepclean_engine.engine import (
    CleanedSegment,
    CleaningEngine,
    FrameCleaner,
    NoiseModel,
    load_cleaning_engine,
)
from deepclean_engine.exported import (
    METADATA_NAME,
    MODEL_NAME,
    load_exported_model,
    save_exported_model,
)
from deepclean_engine.filters import (
    BandpassFilter,
    bandpass_settling_time,
    butterworth_sos,
    validate_bands,
)
from deepclean_engine.products import WitnessProducts
from deepclean_engine.scalers import ChannelStandardScaler, StrainScaler
from deepclean_engine.spectral import (
    ASDRatioLoss,
    Coherence,
    SpectralDensity,
    asd_ratio,
    in_band_mask,
    median_bias,
)
from deepclean_engine.stitching import overlap_add, stitch_window

__all__ = [
    "METADATA_NAME",
    "MODEL_NAME",
    "ASDRatioLoss",
    "BandpassFilter",
    "ChannelStandardScaler",
    "CleanedSegment",
    "CleaningConfig",
    "CleaningEngine",
    "Coherence",
    "FrameCleaner",
    "NoiseModel",
    "SpectralDensity",
    "StrainScaler",
    "WitnessProducts",
    "asd_ratio",
    "bandpass_settling_time",
    "butterworth_sos",
    "in_band_mask",
    "load_cleaning_engine",
    "load_exported_model",
    "median_bias",
    "overlap_add",
    "save_exported_model",
    "stitch_window",
    "validate_bands",
]
