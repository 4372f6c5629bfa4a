"""`python -m raylab`, with `$RAYLAB_TEST_FAULT` (kill or interrupt; read here, never by raylab)
sent to the driver once, right after the first trial is recorded as ended (tests only)."""
from __future__ import annotations

import os
import sys

from raylab.cli import run
from tests.fault_injection import signal_after_first_record

if os.environ.get("RAYLAB_TEST_FAULT"):
    signal_after_first_record(os.environ["RAYLAB_TEST_FAULT"])
sys.exit(run(sys.argv[1:]))
