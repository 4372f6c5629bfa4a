"""`python -m raylab`, with `$RAYLAB_TEST_FAULT` (read here, never by raylab; tests only): `kill`
or `interrupt` (or `kill:N`) is sent to the driver once, right after the first (the N-th) trial
is recorded as ended; `memory` makes the paper's point's trial take memory until Ray's memory
monitor kills it (`tests.fault_injection.trial_grows_until_killed`)."""
from __future__ import annotations

import os
import sys

from raylab.cli import run
from tests.fault_injection import signal_after_record

if os.environ.get("RAYLAB_TEST_FAULT") == "memory":
    import raylab.search.ray_tune
    from tests.fault_injection import trial_grows_until_killed

    raylab.search.ray_tune._trial = trial_grows_until_killed
elif os.environ.get("RAYLAB_TEST_FAULT"):
    fault, _, nth = os.environ["RAYLAB_TEST_FAULT"].partition(":")
    signal_after_record(fault, int(nth or 1))
sys.exit(run(sys.argv[1:]))
