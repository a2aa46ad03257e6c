"""DeepClean file formats: gwpy HDF5 and GWF frames."""

from deepclean_io.hdf5 import (
    TimeSeriesInfo,
    TimeSeriesWriter,
    file_info,
    hdf5_name,
    parse_hdf5_name,
    read_timeseries,
    write_timeseries,
)

__all__ = [
    "TimeSeriesInfo",
    "TimeSeriesWriter",
    "file_info",
    "hdf5_name",
    "parse_hdf5_name",
    "read_timeseries",
    "write_timeseries",
]
