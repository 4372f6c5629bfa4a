"""The IEMOCAP reader on the hand-written fixture corpus and on bad label files."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from raylab.data.corpora import iemocap
from raylab.errors import DataError
from tests.corpus_factory import TURNS, make_iemocap_corpus

BAD = Path(__file__).parent / "data" / "corpora"
SES03 = "Session3/dialog/EmoEvaluation/Ses03M_impro01.txt"


def _corpus_with(tmp_path: Path, bad_file: str) -> Path:
    root = make_iemocap_corpus(tmp_path / "corpus")
    shutil.copy(BAD / bad_file, root / SES03)
    return root


def test_reads_every_turn_and_ignores_subfolders(iemocap_corpus):
    corpus = iemocap.read_corpus(iemocap_corpus)
    assert corpus.problems == []
    assert [t.utterance_id for t in corpus.turns] == sorted(TURNS, key=list(TURNS).index)
    assert "Ses02F_impro02_F099" not in {t.utterance_id for t in corpus.turns}  # decoy file


def test_speaker_is_session_plus_the_turns_own_letter(iemocap_corpus):
    turns = {t.utterance_id: t for t in iemocap.read_corpus(iemocap_corpus).turns}
    assert turns["Ses01F_impro01_M000"].speaker == "Ses01M"
    assert turns["Ses01M_script01_1_F000"].speaker == "Ses01F"
    assert turns["Ses03M_impro01_F000"].session == 3
    wav = turns["Ses01M_script01_1_F000"].wav
    assert wav.parts[-4:] == ("sentences", "wav", "Ses01M_script01_1", "Ses01M_script01_1_F000.wav")


def test_rating_lines_with_comments_multi_categories_and_missing_values(iemocap_corpus):
    turns = {t.utterance_id: t for t in iemocap.read_corpus(iemocap_corpus).turns}
    m000 = {(r.kind, r.evaluator): r for r in turns["Ses01F_impro01_M000"].ratings}
    assert m000[("C", "E2")].category == "Anger;Frustration"
    assert (m000[("A", "E3")].valence, m000[("A", "E3")].arousal, m000[("A", "E3")].dominance) == (2, 4, 4)
    assert m000[("A", "M1")].valence == 1
    f001 = {(r.kind, r.evaluator): r for r in turns["Ses01F_impro01_F001"].ratings}
    assert f001[("C", "E3")].category == "Surprise;Other"
    assert (f001[("A", "E3")].valence, f001[("A", "E3")].arousal) == (2.5, 3.5)
    m000s = {(r.kind, r.evaluator): r for r in turns["Ses01M_script01_1_M000"].ratings}
    assert m000s[("A", "E1")].valence is None and m000s[("A", "E1")].arousal == 4


def test_evaluator_counts(iemocap_corpus):
    counts = iemocap.evaluator_counts(iemocap.read_corpus(iemocap_corpus).turns)
    assert counts == {"E1": {"C": 8, "A": 9}, "E2": {"C": 10, "A": 10}, "E3": {"C": 6, "A": 6},
                      "F1": {"C": 1, "A": 1}, "M1": {"C": 2, "A": 2}}


@pytest.mark.parametrize("evaluator, column", [("E2", 1), ("mean", 2)])
def test_labels_per_evaluator(iemocap_corpus, evaluator, column):
    turns = iemocap.read_corpus(iemocap_corpus).turns
    got = {t.utterance_id: iemocap.labels_for(t, evaluator) for t in turns}
    assert got == {u: row[column] for u, row in TURNS.items()}


def test_rounding_rule_is_half_up():
    assert [iemocap.rating_to_class(x) for x in (1, 1.5, 2.25, 2.5, 3.4999, 3.5, 5)] == [0, 1, 1, 2, 2, 3, 4]


def test_unknown_evaluator_lists_the_available_ones_with_counts(iemocap_corpus):
    turns = iemocap.read_corpus(iemocap_corpus).turns
    with pytest.raises(DataError, match=r"'E9' has no dimensional .*available: E1 \(9\), E2 \(10\), "
                                        r"E3 \(6\), F1 \(1\), M1 \(2\)"):
        iemocap.check_evaluator(turns, "E9", iemocap_corpus)
    with pytest.raises(DataError, match="'E4'"):  # categorical lines only: no labels
        iemocap.check_evaluator(turns, "E4", iemocap_corpus)


def test_malformed_block_problems_name_file_and_line(tmp_path):
    corpus = iemocap.read_corpus(_corpus_with(tmp_path, "malformed_block.txt"))
    found = [(p.where.rsplit(":", 1)[1], p.reason, p.utterance_id) for p in corpus.problems]
    assert found == [("6", "malformed_block", "Ses03M_impro01_F000"),
                     ("10", "malformed_block", "Ses03M_impro01_M000")]
    assert all(p.where.startswith(str(corpus.root / SES03)) for p in corpus.problems)
    assert "'val two'" in str(corpus.problems[0]) and "C-<id>: or A-<id>:" in str(corpus.problems[1])


def test_rating_out_of_range_and_bad_turn_name(tmp_path):
    corpus = iemocap.read_corpus(_corpus_with(tmp_path, "rating_out_of_range.txt"))
    assert [str(p).split(SES03)[1] for p in corpus.problems] == [
        ":6: A-E2: val 7 is outside the rating scale 1..5"]
    corpus = iemocap.read_corpus(_corpus_with(tmp_path / "b", "bad_turn_name.txt"))
    assert [p.where.rsplit(":", 1)[1] for p in corpus.problems] == ["3"]
    assert "does not end in an F/M segment" in str(corpus.problems[0])


def test_not_a_corpus(tmp_path):
    with pytest.raises(DataError, match="corpus folder not found"):
        iemocap.read_corpus(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no label files Session\*/dialog/EmoEvaluation/\*.txt"):
        iemocap.read_corpus(tmp_path)


def test_annotations_table_keeps_every_rating(iemocap_corpus):
    turns = iemocap.read_corpus(iemocap_corpus).turns
    table = iemocap.annotations_table(turns)
    assert table.num_rows == sum(len(t.ratings) for t in turns) == 55
    rows = table.to_pylist()
    assert {"utterance_id": "Ses01F_impro01_F001", "evaluator": "E3", "kind": "A", "valence": 2.5,
            "arousal": 3.5, "dominance": 3.0, "category": None} in rows
