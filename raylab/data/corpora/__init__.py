"""Corpus readers: IEMOCAP, the synthetic demo corpus (IEMOCAP layout), generic CSV manifests."""
