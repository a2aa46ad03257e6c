"""DeepClean training with Lightning."""
