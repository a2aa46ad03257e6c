"""DeepClean offline cleaning and evaluation."""
