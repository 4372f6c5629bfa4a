"""raylab: train, tune and explain speech-emotion networks (Wieser et al. 2018) on Ray."""
from __future__ import annotations

__version__ = "0.1.0"

DIMENSIONS = ("valence", "arousal")
NUM_CLASSES = 5
SAMPLE_RATE = 16_000
PAPER_WINDOWS = 8522  # the paper's windows of the full IEMOCAP release labelled by E2 (section 3.1)
