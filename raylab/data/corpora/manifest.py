"""Any corpus through a CSV manifest: `path,speaker,valence,arousal` (+ optional `utterance_id`,
`session`), one labelled utterance per row, paths relative to the CSV's folder.

`labels="ratings"`: valence/arousal are ratings 1..5 (fractional allowed), class = round-half-up
(rating) - 1 as for IEMOCAP; `labels="classes"`: they are already classes 0..4 (integers). The
utterance id defaults to the file name without its extension and must be unique.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa

from raylab.data.corpora.iemocap import Problem, rating_to_class
from raylab.data.dataset import ANNOTATION_SCHEMA
from raylab.errors import ConfigError, DataError

REQUIRED = ("path", "speaker", "valence", "arousal")
OPTIONAL = ("utterance_id", "session")
LABEL_KINDS = ("ratings", "classes")


def _label(text: str, labels: str) -> tuple[int, float]:
    """(class, rating as written); ValueError with the rule when the text breaks it."""
    if labels == "classes":
        if not text.strip().isdigit() or not 0 <= int(text) <= 4:
            raise ValueError(f"class {text!r} is not a whole number 0..4")
        return int(text), float(int(text) + 1)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"rating {text!r} is not a number") from None
    if not 1.0 <= value <= 5.0:
        raise ValueError(f"rating {text!r} outside 1..5")
    return rating_to_class(value), value


def read_manifest(path: str | Path, labels: str = "ratings") -> tuple[list[dict], list[Problem], pa.Table]:
    """Rows as dicts (utterance_id, wav, speaker, session, valence, arousal), problems by line,
    and the annotations table (evaluator `manifest`)."""
    if labels not in LABEL_KINDS:
        raise ConfigError(f"--labels {labels!r}: expected one of {', '.join(LABEL_KINDS)}")
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    rows: list[dict] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected "
                            f"{','.join(REQUIRED)} (optional {','.join(OPTIONAL)}); found: "
                            f"{','.join(columns) or 'nothing'}")
        for raw in reader:
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
            where = f"{path}:{reader.line_num}"
            wav = path.parent / row["path"]
            utterance = row.get("utterance_id") or Path(row["path"]).stem
            try:
                if not row["path"] or not row["speaker"]:
                    raise ValueError("empty path or speaker")
                if "/" in row["speaker"] or "\\" in row["speaker"] or row["speaker"] in (".", ".."):
                    raise ValueError(f"speaker {row['speaker']!r} names a fold's folder: no '/' or "
                                     "'\\', not '.' or '..'")
                (val, val_raw), (aro, aro_raw) = _label(row["valence"], labels), _label(row["arousal"], labels)
                session = int(row.get("session") or 0)
            except ValueError as err:
                problems.append(Problem(where, "bad_row", f"{err}; labels are {labels} "
                                        f"({'1..5' if labels == 'ratings' else '0..4'})", utterance))
                continue
            if utterance in seen:
                problems.append(Problem(where, "duplicate_utterance", f"utterance id {utterance!r} "
                                        f"already on line {seen[utterance]}; add an utterance_id column",
                                        utterance))
                continue
            seen[utterance] = reader.line_num
            rows.append({"utterance_id": utterance, "wav": str(wav), "speaker": row["speaker"],
                         "session": session, "valence": val, "arousal": aro,
                         "ratings": (val_raw, aro_raw)})
    annotations = pa.table({
        "utterance_id": [r["utterance_id"] for r in rows],
        "evaluator": ["manifest"] * len(rows),
        "kind": ["A"] * len(rows),
        "valence": [r["ratings"][0] for r in rows],
        "arousal": [r["ratings"][1] for r in rows],
        "dominance": [None] * len(rows),
        "category": [None] * len(rows),
    }, schema=ANNOTATION_SCHEMA)
    if not rows and not problems:
        raise DataError(f"{path}: the manifest has no rows")
    return rows, problems, annotations
