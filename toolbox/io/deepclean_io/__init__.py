"""DeepClean file formats: gwpy HDF5 and GWF frames."""
