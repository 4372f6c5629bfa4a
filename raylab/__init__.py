"""raylab: train, tune and explain speech-emotion networks (Wieser et al. 2018) on Ray."""
from __future__ import annotations

__version__ = "0.1.0"

DIMENSIONS = ("valence", "arousal")
NUM_CLASSES = 5
SAMPLE_RATE = 16_000
WINDOW_SECONDS = 6.0  # the paper's windows (section 3.1); a last cut is kept if > 3 s
MIN_LAST_SECONDS = 3.0
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)  # 96 000
IS10_DIM = 1582  # openSMILE's IS10 functionals per window
MFCC_SHAPE = (26, 599)  # MFCCs x frames of a window (25 ms window, 10 ms hop)
DEFAULT_EVALUATOR = "E2"  # the paper's evaluator of the IEMOCAP labels
PAPER_WINDOWS = 8522  # the paper's windows of the full IEMOCAP release labelled by E2 (section 3.1)
