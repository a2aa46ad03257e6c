"""DeepClean cleaning engine and signal-processing modules."""
