"""`python -m raylab`, with `$RAYLAB_TEST_FAULT` (kill or interrupt, or `kill:N`; read here, never
by raylab) sent to the driver once, right after the first (the N-th) trial is recorded as ended
(tests only)."""
from __future__ import annotations

import os
import sys

from raylab.cli import run
from tests.fault_injection import signal_after_record

if os.environ.get("RAYLAB_TEST_FAULT"):
    fault, _, nth = os.environ["RAYLAB_TEST_FAULT"].partition(":")
    signal_after_record(fault, int(nth or 1))
sys.exit(run(sys.argv[1:]))
