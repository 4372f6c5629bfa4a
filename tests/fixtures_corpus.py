"""Corpus fixtures, built once per test session: a hand-written IEMOCAP release, the dataset
prepared from it, and a small learnable demo dataset (what the training, search, cross-validation
and analysis tests train on). Factories for variants are in `tests.corpus_factory`."""
from __future__ import annotations

import pytest

from tests.corpus_factory import make_demo_dataset, make_iemocap_corpus


@pytest.fixture(scope="session")
def iemocap_corpus(tmp_path_factory):
    """12 turns, 3 sessions, 6 speakers in the exact IEMOCAP layout (see corpus_factory.TURNS)."""
    return make_iemocap_corpus(tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release")


@pytest.fixture(scope="session")
def iemocap_dataset(iemocap_corpus, tmp_path_factory):
    """`iemocap_corpus` prepared with evaluator E2: 13 windows of 6 s, 6 speakers."""
    from raylab.data.prepare import prepare_iemocap

    out = tmp_path_factory.mktemp("iemocap-data") / "data"
    prepare_iemocap(iemocap_corpus, out, evaluator="E2", workers=1)
    return out


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """Demo corpus (seed 0, 10 speakers x 18 turns) prepared with E2: ~170 windows of 6 s whose
    arousal and valence are planted as acoustic cues (raylab.data.corpora.demo.CUES)."""
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "demo-data", turns_per_speaker=18)


@pytest.fixture
def demo_data_env(demo_dataset, monkeypatch):
    """Points `$RAYLAB_DEMO_DATA` at `demo_dataset`, so a command run without `--data` uses it
    instead of building the full-size demo dataset."""
    monkeypatch.setenv("RAYLAB_DEMO_DATA", str(demo_dataset))
    return demo_dataset
