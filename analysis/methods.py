"""The generalize methods and their settings (`analysis.generalize`), apart so that the CLI can
offer them without importing torch."""
from __future__ import annotations

METHODS = ("prosody", "speech", "shaped", "paper")
DEFAULT_METHOD = "prosody"
# "paper": eq. (4) on raw samples, the class logit; "shaped": analysis.shaped's envelope × noise
# carrier, the class's log-softmax, averaged over jittered copies (time shifts, gains); "speech":
# analysis.shaped's SourceFilterSignal, the class's log-odds (the log-softmax stops rising once the
# class wins, and the signal with it), `starts` envelope starts per class optimised together for
# the first `explore` of the steps, then only the best one; f0 chosen from F0_GRID by evaluation;
# "prosody": analysis.shaped's ProsodySignal, as "speech" but the envelope is a syllable train
# whose rate and pause (together) and syllables per phrase are chosen from grids by evaluation, the
# starts differ by their gain only, ties on a grid (or on rate-and-pause pairs) go to the value
# that scores higher with the signal at `tie_drive` of its gain, and `prior` (analysis.prior,
# fitted by `raylab analyze generalize` on the other speakers' windows) is added to the objective.
METHOD_DEFAULTS = {"paper": {"steps": 2000, "l2": 1.0e-3, "lr": 1.0e-3, "objective": "logit"},
                   "shaped": {"steps": 150, "l2": 0.0, "lr": 0.1, "objective": "log_softmax"},
                   "speech": {"steps": 150, "l2": 0.0, "lr": 0.1, "objective": "log_odds",
                              "starts": 4, "explore": 0.4, "envelope_std": 3.0,
                              "gain_grid": (0.05, 1.0), "shift_ms": 300.0},
                   "prosody": {"steps": 150, "l2": 0.0, "lr": 0.1, "objective": "log_odds",
                               "starts": 4, "explore": 0.4, "gain_grid": (0.025, 0.45),
                               "max_gain": 0.5, "shift_ms": 300.0, "tie_drive": 0.25,
                               "prior": True}}


def with_prior(method: str, no_prior: bool = False) -> bool:
    """Whether `method` adds the data prior (analysis.prior): its default, unless `no_prior`."""
    return bool(METHOD_DEFAULTS[method].get("prior")) and not no_prior


# f0 candidates of the "speech" and "prosody" methods: third-octave steps from 60 Hz to 960 Hz
F0_GRID = tuple(round(60.0 * 2 ** (i / 3), 1) for i in range(13))
# the "prosody" method's syllable train: syllables per second (quarter-octave steps, 1.5 to 14.3),
# pause between phrases in s (none, then half-octave steps from 40 to 640 ms), syllables per phrase
RATE_GRID = tuple(round(1.5 * 2 ** (i / 4), 2) for i in range(14))
PAUSE_GRID = (0.0, *(round(0.04 * 2 ** (i / 2), 3) for i in range(9)))
PHRASE_GRID = (1, 2, 3, 5)
