"""Data stage: corpus readers, dataset preparation and storage, acoustic features, the demo corpus cache."""
