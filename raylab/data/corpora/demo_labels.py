"""Label files of the demo corpus, written in the exact IEMOCAP EmoEvaluation format.

Evaluators: E1-E3 rate valence/activation/dominance (A- lines) and categories (C- lines), E4 only
categories, the speaking actor (F1 or M1) self-rates half of the turns. E2 rates ~90 % of turns and
agrees with the planted class 90 % of the time (else off by one); E1 and E3 add Gaussian noise of
0.7 rating points, E3 writes a half point now and then. Decoy files in the `Categorical/`,
`Attribute/` and `Self-evaluation/` subfolders use those folders' own formats.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
RATES = {"E1": 0.8, "E2": 0.9, "E3": 0.75}
_COMMENTS = ("", "", "", "", "calm, a bit tired", "sarcastic; smiling", "angry, irritated",
             "hesitant, low voice", "excited, laughing", "polite, but annoyed")
_ABBREV = {"Neutral": "neu", "Frustration": "fru", "Anger": "ang", "Sadness": "sad",
           "Happiness": "hap", "Excited": "exc", "Surprise": "sur", "Other": "oth"}


@dataclass(frozen=True)
class DemoTurn:
    """One planned turn: the audio (`demo.py`) and its label blocks (here) are both made from it."""

    utterance_id: str
    dialog: str
    session: int
    speaker: str
    seconds: float
    valence: int   # planted classes 0..4
    arousal: int


def _category(valence: int, arousal: int, rng: np.random.Generator) -> list[str]:
    if arousal >= 3:
        cats = ["Excited", "Happiness"] if valence >= 3 else (["Anger", "Frustration"] if valence <= 1
                                                             else ["Surprise", "Excited"])
    elif arousal <= 1:
        cats = ["Sadness", "Frustration"] if valence <= 1 else ["Neutral", "Sadness"]
    else:
        cats = ["Neutral", "Frustration"] if valence <= 2 else ["Neutral", "Happiness"]
    first = cats[0] if rng.random() < 0.75 else cats[1]
    return [first] + ([c for c in cats if c != first] if rng.random() < 0.2 else [])


def _rating(planted: int, evaluator: str, rng: np.random.Generator) -> float:
    if evaluator == "E2":
        value = planted + 1 + (0 if rng.random() < 0.9 else rng.choice([-1, 1]))
    else:
        value = round(planted + 1 + rng.normal(0, 0.7))
    if evaluator == "E3" and rng.random() < 0.1:
        value += 0.5
    return float(np.clip(value, 1, 5))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _block(turn: DemoTurn, start: float, rng: np.random.Generator) -> tuple[str, dict]:
    lines, dims, cats = [], {}, {}
    for evaluator in ("E1", "E2", "E3", "E4"):
        if rng.random() < RATES.get(evaluator, 0.7):
            cats[evaluator] = _category(turn.valence, turn.arousal, rng)
            if evaluator in RATES:
                dims[evaluator] = [_rating(turn.valence, evaluator, rng),
                                   _rating(turn.arousal, evaluator, rng),
                                   float(rng.integers(1, 6))]
    self_id = f"{turn.speaker[-1]}1"
    rate_self = rng.random() < 0.5
    for evaluator, cat in cats.items():
        lines.append(f"C-{evaluator}:\t{'; '.join(cat)};\t({rng.choice(_COMMENTS)})")
    if rate_self:
        lines.append(f"C-{self_id}:\t{_category(turn.valence, turn.arousal, rng)[0]};\t()")
    for evaluator, (v, a, d) in dims.items():
        lines.append(f"A-{evaluator}:\tval {_number(v)}; act {_number(a)}; dom  {_number(d)};"
                     f"\t({rng.choice(_COMMENTS)})")
    if rate_self:
        lines.append(f"A-{self_id}:\tval {turn.valence + 1}; act {turn.arousal + 1}; "
                     f"dom  {rng.integers(1, 6)};\t()")
    votes = Counter(c[0] for c in cats.values()).most_common(1)
    emotion = _ABBREV[votes[0][0]] if votes and votes[0][1] >= 2 else "xxx"
    mean = np.mean(list(dims.values()), axis=0) if dims else np.array([3.0, 3.0, 3.0])
    head = (f"[{start:.4f} - {start + turn.seconds:.4f}]\t{turn.utterance_id}\t{emotion}\t"
            f"[{mean[0]:.4f}, {mean[1]:.4f}, {mean[2]:.4f}]")
    return "\n".join([head] + lines) + "\n", {"cats": cats, "dims": dims}


def write_label_files(root: Path, turns: list[DemoTurn], rng: np.random.Generator) -> None:
    by_dialog: dict[str, list[DemoTurn]] = defaultdict(list)
    for turn in turns:
        by_dialog[turn.dialog].append(turn)
    for dialog, members in by_dialog.items():
        folder = root / f"Session{members[0].session}" / "dialog" / "EmoEvaluation"
        for sub in ("Categorical", "Attribute", "Self-evaluation"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        blocks, cat_lines, atr_lines = [], [], []
        start = rng.uniform(2, 8)
        for turn in members:
            text, rated = _block(turn, start, rng)
            blocks.append(text)
            start += turn.seconds + rng.uniform(0.2, 1.5)
            if "E1" in rated["cats"]:
                cat_lines.append(f"{turn.utterance_id} :{';'.join(rated['cats']['E1'])}; ()")
            if "E1" in rated["dims"]:
                v, a, d = rated["dims"]["E1"]
                atr_lines.append(f"{turn.utterance_id} :val {_number(v)}; act {_number(a)}; "
                                 f"dom {_number(d)}; ()")
        (folder / f"{dialog}.txt").write_text(HEADER + "\n".join(blocks) + "\n")
        (folder / "Categorical" / f"{dialog}_e1_cat.txt").write_text("\n".join(cat_lines) + "\n")
        (folder / "Attribute" / f"{dialog}_e1_atr.txt").write_text("\n".join(atr_lines) + "\n")
        (folder / "Self-evaluation" / f"{dialog}.anvil").write_text(
            f'<?xml version="1.0" encoding="ISO-8859-1"?>\n<annotation><head><video src="{dialog}.avi"/>'
            "</head><body/></annotation>\n")
