"""DeepClean data: simulated detector, LIGO fetching, frame replay."""
