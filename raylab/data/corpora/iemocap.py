"""The IEMOCAP reader: EmoEvaluation label files, evaluators, and the labels of one evaluator.

Layout (IEMOCAP_full_release): `SessionN/dialog/EmoEvaluation/<dialog>.txt` holds the labels of a
dialog, `SessionN/sentences/wav/<dialog>/<turn>.wav` its turns. Only the `.txt` files directly in
`EmoEvaluation/` are read: its `Categorical/`, `Attribute/` and `Self-evaluation/` subfolders use
other formats, and `._*` files (macOS resource forks found in some copies) are ignored.

A label file is a `%` header, then one block per turn separated by blank lines:

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]
    C-E2:	Neutral;	()
    C-F1:	Neutral; Frustration;	(a bit tired, polite)
    A-E3:	val 3; act 2; dom  2;	()

`C-<id>` lines give categories, `A-<id>` lines valence/activation/dominance ratings 1..5; ids `E<k>`
are external evaluators, `F1`/`M1` the actors' self-ratings. Comments (in parentheses) may hold
commas and semicolons; values may be fractional or missing. The speaker of a turn is its session plus
the letter of the turn's last name segment (`Ses01F_impro01_M003` -> `Ses01M`).

Labels: class = round(rating) - 1, rounding half up (2.5 -> 3 -> class 2), for one evaluator's A
line, or for `mean`, the mean of the external evaluators' ratings of that dimension rounded the same
way. A turn the chosen evaluator did not rate (or rated without valence or activation) is left out.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from raylab.data.dataset import ANNOTATION_SCHEMA
from raylab.errors import DataError

MEAN = "mean"
LABEL_GLOB = "Session*/dialog/EmoEvaluation/*.txt"

_HEADER = re.compile(r"^\[\s*([0-9.]+)\s*-\s*([0-9.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[([^\]]*)\]\s*$")
_TURN = re.compile(r"^Ses(\d{2})[A-Za-z]*_.+_([A-Za-z])[A-Za-z0-9]*$")
_RATER = re.compile(r"^([CA])-([A-Za-z0-9]+):\s*(.*)$")
_VALUE = re.compile(r"^(val|act|dom)\s*([0-9]*\.?[0-9]*)$")
_DIMENSION_OF = {"val": "valence", "act": "arousal", "dom": "dominance"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input; `reason` is a short key, counted in meta.json `skipped`."""

    where: str                    # "path" or "path:line"
    reason: str
    message: str
    utterance_id: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class Rating:
    evaluator: str
    kind: str                     # "C" or "A"
    valence: float | None = None
    arousal: float | None = None
    dominance: float | None = None
    category: str | None = None   # "Neutral;Frustration"


@dataclass
class Turn:
    utterance_id: str
    dialog: str
    session: int
    speaker: str                  # e.g. "Ses01M"
    start: float
    end: float
    wav: Path
    where: str                    # "label file:line" of the block
    ratings: list[Rating] = field(default_factory=list)


@dataclass
class Corpus:
    root: Path
    turns: list[Turn]
    problems: list[Problem]


def rating_to_class(rating: float) -> int:
    """Rating 1..5 (possibly fractional) -> class 0..4, rounding half up (documented tie rule)."""
    return int(math.floor(rating + 0.5)) - 1


def _parse_rater(match: re.Match, where: str, utterance_id: str) -> tuple[Rating | None, Problem | None]:
    kind, evaluator, body = match.group(1), match.group(2), match.group(3)
    values_text = body.split("(", 1)[0]  # everything from the first "(" on is the comment
    if kind == "C":
        cats = [c.strip() for c in values_text.split(";") if c.strip()]
        return Rating(evaluator, "C", category=";".join(cats) or None), None
    values: dict[str, float | None] = {}
    for part in (p.strip() for p in values_text.split(";")):
        if not part:
            continue
        found = _VALUE.match(part)
        if not found:
            return None, Problem(where, "malformed_block", f"A-{evaluator}: cannot read {part!r}; "
                                 "expected 'val X; act X; dom X;'", utterance_id)
        text = found.group(2)
        if text in ("", "."):
            values[_DIMENSION_OF[found.group(1)]] = None
            continue
        value = float(text)
        if not 1.0 <= value <= 5.0:
            return None, Problem(where, "rating_out_of_range", f"A-{evaluator}: {found.group(1)} "
                                 f"{text} is outside the rating scale 1..5", utterance_id)
        values[_DIMENSION_OF[found.group(1)]] = value
    return Rating(evaluator, "A", **values), None


def _turn_from_header(match: re.Match, where: str, session_dir: Path, dialog: str
                      ) -> tuple[Turn | None, Problem | None]:
    name = match.group(3)
    parts = _TURN.match(name)
    if not parts or parts.group(2) not in "FM":
        return None, Problem(where, "malformed_block", f"turn name {name!r} does not end in an "
                             "F/M segment like Ses01F_impro01_M003", name)
    start, end = float(match.group(1)), float(match.group(2))
    session = int(parts.group(1))
    wav = session_dir / "sentences" / "wav" / dialog / f"{name}.wav"
    return Turn(name, dialog, session, f"Ses{session:02d}{parts.group(2)}", start, end, wav, where), None


def parse_label_file(path: Path, session_dir: Path) -> tuple[list[Turn], list[Problem]]:
    """Read one EmoEvaluation file; every malformed line becomes a Problem with its line number."""
    turns: list[Turn] = []
    problems: list[Problem] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        return [], [Problem(str(path), "unreadable_labels", f"cannot read ({err.strerror})")]
    turn: Turn | None = None
    broken = False  # inside a block whose first line was unreadable
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        where = f"{path}:{number}"
        if not line:
            turn, broken = None, False
            continue
        if line.startswith("%"):
            continue
        header = _HEADER.match(line)
        if header:
            turn, problem = _turn_from_header(header, where, session_dir, path.stem)
            if problem:
                problems.append(problem)
                broken = True
            else:
                broken = False
                turns.append(turn)
            continue
        rater = _RATER.match(line)
        if rater and turn is not None:
            rating, problem = _parse_rater(rater, where, turn.utterance_id)
            if problem:
                problems.append(problem)
            else:
                turn.ratings.append(rating)
        elif not broken:
            expected = ("a block header like '[6.29 - 8.23]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>"
                        "[2.5, 2.5, 2.5]'" if turn is None else "a C-<id>: or A-<id>: line")
            problems.append(Problem(where, "malformed_block", f"cannot read {line[:60]!r}; expected "
                                    f"{expected}", turn.utterance_id if turn else None))
    return turns, problems


def read_corpus(root: str | Path) -> Corpus:
    """Parse every label file of an IEMOCAP release; problems are collected, not raised."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: corpus folder not found")
    files = sorted(p for p in root.glob(LABEL_GLOB) if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"{root}: no label files {LABEL_GLOB}; expected an IEMOCAP_full_release "
                        "folder (Session1 ... Session5)")
    turns: list[Turn] = []
    problems: list[Problem] = []
    first_seen: dict[str, str] = {}
    for path in files:
        found, bad = parse_label_file(path, path.parents[2])
        problems.extend(bad)
        for turn in found:
            if turn.utterance_id in first_seen:
                problems.append(Problem(turn.where, "duplicate_turn", f"turn {turn.utterance_id} "
                                        f"already labelled at {first_seen[turn.utterance_id]}",
                                        turn.utterance_id))
                continue
            first_seen[turn.utterance_id] = turn.where
            turns.append(turn)
    return Corpus(root, turns, problems)


def evaluator_counts(turns: list[Turn]) -> dict[str, dict[str, int]]:
    """{evaluator: {"C": turns with a categorical line, "A": turns with a dimensional line}}."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for turn in turns:
        for kind, evaluator in {(r.kind, r.evaluator) for r in turn.ratings}:
            counts[evaluator][kind] += 1
    order = sorted(counts, key=lambda e: (not e.startswith("E"), len(e), e))
    return {e: {"C": counts[e]["C"], "A": counts[e]["A"]} for e in order}


def turn_ratings(turn: Turn, evaluator: str) -> tuple[float, float] | None:
    """(valence, arousal) ratings of one evaluator or of the external evaluators' `mean`."""
    if evaluator == MEAN:
        rated = [r for r in turn.ratings if r.kind == "A" and r.evaluator.startswith("E")]
        val = [r.valence for r in rated if r.valence is not None]
        aro = [r.arousal for r in rated if r.arousal is not None]
        return (sum(val) / len(val), sum(aro) / len(aro)) if val and aro else None
    for r in turn.ratings:
        if r.kind == "A" and r.evaluator == evaluator and r.valence is not None \
                and r.arousal is not None:
            return r.valence, r.arousal
    return None


def check_evaluator(turns: list[Turn], evaluator: str, source: str | Path) -> None:
    """An evaluator with no dimensional ratings is an error listing the ones that exist."""
    counts = {e: c["A"] for e, c in evaluator_counts(turns).items() if c["A"]}
    if evaluator == MEAN:
        if any(e.startswith("E") for e in counts):
            return
    elif evaluator in counts:
        return
    available = ", ".join(f"{e} ({n})" for e, n in counts.items()) or "none"
    raise DataError(f"{source}: evaluator {evaluator!r} has no dimensional (A-) ratings; "
                    f"available: {available}, or 'mean' of the E* evaluators")


def labels_for(turn: Turn, evaluator: str) -> tuple[int, int] | None:
    """(valence class, arousal class) of a turn for an evaluator, or None if it did not rate it."""
    ratings = turn_ratings(turn, evaluator)
    if ratings is None:
        return None
    return rating_to_class(ratings[0]), rating_to_class(ratings[1])


def annotations_table(turns: list[Turn]) -> pa.Table:
    """Every evaluator's rating of every turn, in the dataset's `annotations.parquet` schema."""
    rows = [(t.utterance_id, r) for t in turns for r in t.ratings]
    return pa.table({
        "utterance_id": [u for u, _ in rows],
        "evaluator": [r.evaluator for _, r in rows],
        "kind": [r.kind for _, r in rows],
        "valence": [r.valence for _, r in rows],
        "arousal": [r.arousal for _, r in rows],
        "dominance": [r.dominance for _, r in rows],
        "category": [r.category for _, r in rows],
    }, schema=ANNOTATION_SCHEMA)


def describe_evaluators(root: str | Path) -> str:
    """What `raylab data evaluators` prints: each evaluator's turns, categorical and dimensional."""
    corpus = read_corpus(root)
    counts = evaluator_counts(corpus.turns)
    lines = [f"{len(corpus.turns)} turns in {corpus.root}", "",
             f"{'evaluator':<10}{'kind':<10}{'C (categories)':>16}{'A (val/act/dom)':>17}"]
    for evaluator, c in counts.items():
        kind = "external" if evaluator.startswith("E") else "self"
        lines.append(f"{evaluator:<10}{kind:<10}{c['C']:>16}{c['A']:>17}")
    rated = sum(1 for t in corpus.turns if turn_ratings(t, MEAN) is not None)
    lines.append(f"{MEAN:<10}{'E* mean':<10}{'':>16}{rated:>17}")
    if corpus.problems:
        lines += ["", f"{len(corpus.problems)} problem(s) in the label files, first: "
                      f"{corpus.problems[0]} (`raylab data prepare` lists them all)"]
    return "\n".join(lines)
