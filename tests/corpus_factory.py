"""Tiny corpora for the tests: a hand-written IEMOCAP release and a small learnable demo dataset.

`make_iemocap_corpus` writes 12 turns over three sessions in the exact IEMOCAP layout. Each turn is
a tone of a known length; `TURNS` lists them with the labels of E2 and of `mean`, worked out by hand
from the label text below (class = round-half-up(rating) - 1; `mean` averages E* lines only).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"

# utterance: (seconds, E2 (valence, arousal) or None, mean (valence, arousal), windows)
TURNS = {
    "Ses01F_impro01_F000": (1.5, (1, 2), (2, 2), 1),
    "Ses01F_impro01_M000": (7.0, (0, 4), (1, 4), 1),
    "Ses01F_impro01_F001": (13.0, None, (2, 2), 2),
    "Ses01F_impro01_M001": (9.0, (3, 2), (2, 1), 1),
    "Ses01M_script01_1_F000": (9.5, (4, 0), (4, 0), 2),
    "Ses01M_script01_1_M000": (2.0, (2, 2), (2, 3), 1),
    "Ses02F_impro02_F000": (15.5, (1, 3), (2, 4), 3),
    "Ses02F_impro02_M000": (6.0, (3, 0), (3, 1), 1),
    "Ses02F_impro02_M001": (12.5, None, (1, 0), 2),
    "Ses02F_impro02_F001": (2.5, (4, 4), (4, 4), 1),
    "Ses03M_impro01_F000": (3.0, (1, 1), (1, 2), 1),
    "Ses03M_impro01_M000": (4.0, (3, 3), (3, 3), 1),
}

LABELS = {
    "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt": """\
[6.2901 - 7.7901]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E1:\tNeutral;\t()
C-E2:\tNeutral;\t(calm, quiet)
C-F1:\tNeutral;\t()
A-E1:\tval 3; act 2; dom  2;\t()
A-E2:\tval 2; act 3; dom  3;\t(mildly aggravated, but staying polite)
A-F1:\tval 4; act 4; dom  1;\t()

[8.1000 - 15.1000]\tSes01F_impro01_M000\tang\t[1.5000, 4.5000, 4.0000]
C-E2:\tAnger; Frustration;\t(shouting, angry; irritated)
C-E3:\tAnger;\t()
C-M1:\tFrustration;\t()
A-E2:\tval 1; act 5; dom  4;\t()
A-E3:\tval 2; act 4; dom  4;\t(loud, fast, tense)
A-M1:\tval 1; act 1; dom  1;\t()

[16.0000 - 29.0000]\tSes01F_impro01_F001\txxx\t[3.2500, 3.2500, 3.0000]
C-E1:\tHappiness;\t()
C-E3:\tSurprise; Other;\t(amused, teasing, a bit sarcastic)
A-E1:\tval 4; act 3; dom  3;\t()
A-E3:\tval 2.5; act 3.5; dom  3;\t()

[30.0000 - 39.0000]\tSes01F_impro01_M001\tneu\t[3.2500, 2.2500, 2.5000]
C-E1:\tNeutral;\t()
C-E2:\tNeutral;\t()
A-E1:\tval 3; act 2; dom  2;\t()
A-E2:\tval 3.5; act 2.5; dom  3;\t(hard to say, in between)
""",
    "Session1/dialog/EmoEvaluation/Ses01M_script01_1.txt": """\
[0.5000 - 10.0000]\tSes01M_script01_1_F000\tsad\t[4.6667, 1.3333, 2.0000]
C-E1:\tSadness;\t(tired, slow, low)
C-E2:\tSadness;\t()
C-E3:\tSadness; Neutral;\t()
A-E1:\tval 4; act 2; dom  2;\t()
A-E2:\tval 5; act 1; dom  2;\t()
A-E3:\tval 5; act 1; dom  2;\t()

[10.5000 - 12.5000]\tSes01M_script01_1_M000\tneu\t[3.0000, 3.5000, 3.0000]
C-E2:\tNeutral;\t()
A-E1:\tval ; act 4; dom  3;\t(no valence given)
A-E2:\tval 3; act 3; dom  3;\t()
""",
    "Session2/dialog/EmoEvaluation/Ses02F_impro02.txt": """\
[1.0000 - 16.5000]\tSes02F_impro02_F000\tfru\t[2.5000, 4.5000, 4.0000]
C-E1:\tFrustration;\t()
C-E2:\tFrustration; Anger;\t(annoyed, raising voice)
A-E1:\tval 3; act 5; dom  4;\t()
A-E2:\tval 2; act 4; dom  4;\t()

[17.0000 - 23.0000]\tSes02F_impro02_M000\tsad\t[4.0000, 1.5000, 2.0000]
C-E2:\tSadness;\t()
C-E3:\tSadness;\t()
C-M1:\tSadness;\t(I was sad, really)
A-E2:\tval 4; act 1; dom  2;\t()
A-E3:\tval 4; act 2; dom  2;\t()
A-M1:\tval 5; act 1; dom  1;\t()

[23.5000 - 36.0000]\tSes02F_impro02_M001\txxx\t[1.5000, 1.0000, 1.5000]
C-E1:\tSadness;\t()
C-E3:\tFrustration;\t()
A-E1:\tval 1; act 1; dom  1;\t()
A-E3:\tval 2; act 1; dom  2;\t()

[36.5000 - 39.0000]\tSes02F_impro02_F001\texc\t[5.0000, 5.0000, 4.0000]
C-E2:\tExcited; Happiness;\t(laughing, loud)
A-E2:\tval 5; act 5; dom  4;\t()
""",
    "Session3/dialog/EmoEvaluation/Ses03M_impro01.txt": """\
[2.0000 - 5.0000]\tSes03M_impro01_F000\tfru\t[2.0000, 2.5000, 2.0000]
C-E1:\tFrustration;\t()
C-E2:\tFrustration;\t()
A-E1:\tval 2; act 3; dom  2;\t()
A-E2:\tval 2; act 2; dom  2;\t()

[5.5000 - 9.5000]\tSes03M_impro01_M000\thap\t[3.6667, 4.0000, 3.3333]
C-E1:\tHappiness;\t()
C-E2:\tHappiness;\t()
C-E3:\tHappiness;\t()
A-E1:\tval 4; act 5; dom  4;\t()
A-E2:\tval 4; act 4; dom  3;\t()
A-E3:\tval 3; act 3; dom  3;\t()
""",
}

DECOYS = {  # files in the EmoEvaluation subfolders (other formats) that the reader must not read
    "Session1/dialog/EmoEvaluation/Categorical/Ses01F_impro01_e2_cat.txt":
        "Ses01F_impro01_F000 :Neutral; ()\nSes01F_impro01_M000 :Anger; ()\n",
    "Session1/dialog/EmoEvaluation/Attribute/Ses01F_impro01_e2_atr.txt":
        "Ses01F_impro01_F000 :val 9; act 9; dom 9; ()\n",
    "Session2/dialog/EmoEvaluation/Self-evaluation/Ses02F_impro02.txt":
        "[0 - 1]\tSes02F_impro02_F099\tneu\t[1, 1, 1]\nA-F1:\tval 7;\t()\n",
    "Session1/dialog/EmoEvaluation/._Ses01F_impro01.txt": "\x00\x05\x16\x07 Mac OS X resource fork",
}


def wav_path(root: Path, utterance_id: str) -> Path:
    session = int(utterance_id[3:5])
    dialog = utterance_id.rsplit("_", 1)[0]
    return root / f"Session{session}" / "sentences" / "wav" / dialog / f"{utterance_id}.wav"


def tone(seconds: float, freq: float = 220.0, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    wave = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def make_iemocap_corpus(root: str | Path) -> Path:
    """The 12-turn IEMOCAP-layout corpus of `TURNS` under `root`; returns `root`."""
    root = Path(root)
    for index, (utterance, (seconds, *_)) in enumerate(TURNS.items()):
        path = wav_path(root, utterance)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(seconds, 150 + 20 * index), SR, subtype="PCM_16")
    for rel, text in {**LABELS, **DECOYS}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if rel in DECOYS else HEADER + text)
    return root


def make_demo_dataset(out: str | Path, *, turns_per_speaker: int = 18, seed: int = 0,
                      corpus: str | Path | None = None) -> Path:
    """A small demo dataset (10 speakers, ~160 windows with the default size) prepared with E2."""
    from raylab.data.corpora.demo import write_demo_corpus
    from raylab.data.prepare import prepare_iemocap

    out = Path(out)
    corpus = Path(corpus) if corpus else out.parent / f"{out.name}-corpus"
    write_demo_corpus(corpus, seed=seed, turns_per_speaker=turns_per_speaker)
    prepare_iemocap(corpus, out, evaluator="E2", workers=1)
    return out


def make_five_session_corpus(root: str | Path, turns_per_speaker: int = 2) -> Path:
    """A tiny corpus that looks like the full IEMOCAP release: five sessions, ten speakers, in its
    layout, without the demo's marker (so it is read as IEMOCAP, not as the demo)."""
    from raylab.data.corpora.demo import MARKER_FILE, write_demo_corpus

    root = write_demo_corpus(root, seed=1, turns_per_speaker=turns_per_speaker)
    (root / MARKER_FILE).unlink()
    return root
