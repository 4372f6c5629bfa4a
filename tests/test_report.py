"""`raylab report` (Table 5) on result folders written the way a ten-fold run writes them."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raylab import DIMENSIONS
from raylab.cli import main
from raylab.report.pooled import PROB_COLUMNS
from raylab.report.table5 import (DISPLAY, PAPER_TABLE5, compute_summary, summarize_run, table5,
                                  write_report)

SPEAKERS = ("Ses01F", "Ses01M", "Ses02F")
CLASS_PRIOR = (0.05, 0.2, 0.45, 0.25, 0.05)  # imbalanced like IEMOCAP's ratings


def fake_run(results: Path, name: str, arch: str, *, seed: int = 0, accuracy: float = 0.6,
             windows: int = 40, updated: str = "2026-01-01T00:00:00+00:00",
             failed: dict | None = None, corpus: str = "iemocap") -> Path:
    """A ten-fold run folder with realistic predictions: imbalanced targets, a network right
    `accuracy` of the time, softmax-like probabilities whose argmax is the prediction."""
    rng = np.random.default_rng(seed)
    run_dir = results / name
    for speaker in SPEAKERS:
        folder = run_dir / "folds" / speaker
        folder.mkdir(parents=True)
        parts = []
        for dim in DIMENSIONS:
            target = np.repeat(rng.choice(5, size=windows // 2, p=CLASS_PRIOR), 2)  # 2 per utterance
            predicted = np.where(rng.random(windows) < accuracy, target, rng.integers(0, 5, windows))
            probs = rng.dirichlet(np.ones(5), size=windows) * 0.5
            probs[np.arange(windows), predicted] += 0.5
            part = pd.DataFrame({"window_id": [f"{speaker}_w{i:03d}" for i in range(windows)],
                                 "utterance_id": [f"{speaker}_u{i // 2:03d}" for i in range(windows)],
                                 "speaker": speaker, "fold": speaker, "dimension": dim,
                                 "target": target, "predicted": predicted})
            for k, column in enumerate(PROB_COLUMNS):
                part[column] = probs[:, k].astype(np.float32)
            parts.append(part)
        pd.concat(parts, ignore_index=True).to_parquet(folder / "predictions.parquet")
        (folder / "split.json").write_text(json.dumps(
            {"test_speaker": speaker, "train_majority": {"valence": 2, "arousal": 2}}))
    run = {"kind": "crossval", "name": name, "arch": arch, "dataset": "/data/iemocap",
           "evaluator": "E2", "corpus": corpus, "windows": windows * len(SPEAKERS), "folds": list(SPEAKERS),
           "failed": failed or {}, "updated": updated, "mlflow_run_id": None}
    (run_dir / "run.json").write_text(json.dumps(run))
    return run_dir


@pytest.fixture
def two_networks(tmp_path):
    results = tmp_path / "results"
    fake_run(results, "ftr-tenfold", "ftr", seed=1, accuracy=0.4)
    fake_run(results, "elor-old", "elor", seed=2, accuracy=0.3, updated="2025-06-01T00:00:00+00:00")
    fake_run(results, "elor-tenfold", "elor", seed=3, accuracy=0.7)
    (results / "elor-search").mkdir()
    (results / "elor-search" / "run.json").write_text(json.dumps({"kind": "search", "arch": "elor"}))
    return results


def test_table5_rows_order_latest_run_and_baselines(two_networks):
    rows = table5(two_networks)
    assert [r["model"] for r in rows] == ["ELoR", "FTR", "Random guessing",
                                          "Most frequent label, test prior (paper's)",
                                          "Most frequent training label per fold (ours)"]
    elor = rows[0]
    assert elor["run"] == "elor-tenfold"  # the latest ELoR run, not elor-old
    assert (elor["paper_arousal_war"], elor["paper_valence_uar"]) == (0.524, 0.300)
    assert (elor["dataset"], elor["evaluator"], elor["windows"], elor["folds"]) == \
        ("/data/iemocap", "E2", 120, 3)
    pooled = pd.concat(pd.read_parquet(p) for p in
                       sorted((two_networks / "elor-tenfold" / "folds").glob("*/predictions.parquet")))
    part = pooled[pooled["dimension"] == "arousal"]
    assert elor["arousal_war"] == pytest.approx(float((part["target"] == part["predicted"]).mean()))
    assert rows[2]["arousal_war"] == 0.2 and rows[2]["paper_valence_uar"] == 0.2
    assert rows[3]["paper_arousal_war"] == 0.408 and rows[4]["paper_arousal_war"] is None
    assert rows[4]["arousal_war"] == pytest.approx(float((part["target"] == 2).mean()), abs=0.2)


def test_report_markdown_csv_html_and_out(two_networks, capsys):
    assert main(["--results", str(two_networks), "report"]) == 0
    text = capsys.readouterr().out
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| Model | Arousal WAR | Arousal UAR | Valence WAR | Valence UAR")
    assert lines[1].startswith("| ELoR | ") and "(0.524)" in lines[1] and "elor-tenfold" in lines[1]
    assert lines[2].startswith("| FTR | ") and "(0.466)" in lines[2]
    assert lines[3].startswith("| Random guessing | 0.200 (0.200)")
    assert lines[4].startswith("| Most frequent label, test prior (paper's) | ") and "(0.408)" in lines[4]
    assert lines[5].startswith("| Most frequent training label per fold (ours) | ")
    assert "(0.408)" not in lines[5]

    out = two_networks / "table5.csv"
    assert main(["--results", str(two_networks), "report", "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["model"] for r in rows][:2] == ["ELoR", "FTR"]
    assert float(rows[1]["paper_arousal_war"]) == 0.466 and rows[1]["evaluator"] == "E2"
    assert not list(two_networks.glob(".table5.csv.tmp-*"))

    page = two_networks / "t.html"
    assert main(["--results", str(two_networks), "report", "--format", "html", "--out", str(page)]) == 0
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html and "<td>ELoR</td>" in html
    assert "http" not in html and "<script" not in html and "<link" not in html


def test_report_named_runs_and_errors(two_networks, tmp_path, capsys):
    text = write_report(two_networks, "md", runs=["elor-old", "elor-tenfold"])
    assert text.count("| ELoR | ") == 2 and "| FTR |" not in text
    assert main(["--results", str(two_networks), "report", "--runs", "nope"]) == 1
    err = capsys.readouterr().err
    assert "--runs nope" in err and "elor-tenfold" in err and "elor-search" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--results", str(empty), "report"]) == 1
    assert "no finished ten-fold run" in capsys.readouterr().err


def test_summarize_run_writes_summary_and_table(two_networks):
    run_dir = two_networks / "ftr-tenfold"
    summary = summarize_run(run_dir)
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    table = (run_dir / "table.md").read_text()
    assert "pooled over the test folds" in table and "paper, pooled (Table 5)" in table
    assert "most frequent training label per fold (ours)" in table and "| Ses02F |" in table
    assert "most frequent label, pooled test prior (the paper's)" in table
    assert summary == compute_summary(run_dir)
    assert summary["baselines"]["most_frequent"]["arousal"]["labels"] == dict.fromkeys(SPEAKERS, 2)


def test_failed_folds_show_in_the_table(tmp_path):
    results = tmp_path / "results"
    fake_run(results, "lom-tenfold", "lom", failed={"Ses03F": "RuntimeError: boom"})
    rows = table5(results)
    assert rows[0]["model"] == "LoM" and rows[0]["failed"] == "Ses03F"
    assert "3 (failed: Ses03F)" in write_report(results)


def test_display_names_and_paper_table_match_the_models():
    from raylab.models import DISPLAY_NAMES, MODEL_NAMES

    assert DISPLAY == DISPLAY_NAMES and set(MODEL_NAMES) <= set(PAPER_TABLE5)


def test_demo_runs_are_not_set_beside_the_paper_and_collapse_is_flagged(tmp_path):
    """Issue: the paper's figures only beside runs on IEMOCAP with E2; a fold that predicts one
    class for every window is flagged in summary.json, the run's table and Table 5."""
    results = tmp_path / "results"
    run_dir = fake_run(results, "ftr-demo", "ftr", corpus="demo")
    frame = pd.read_parquet(run_dir / "folds" / "Ses01M" / "predictions.parquet")
    frame["predicted"] = 2                                    # a model that collapsed
    frame.to_parquet(run_dir / "folds" / "Ses01M" / "predictions.parquet")
    summary = summarize_run(run_dir)
    assert summary["collapsed"] == {"Ses01M": ["valence", "arousal"]}
    table = (run_dir / "table.md").read_text()
    assert "COLLAPSED folds" in table and "Ses01M (valence, arousal)" in table
    assert "not comparable with the paper's Table 5" in table and "paper, pooled" not in table
    rows = table5(results)
    assert rows[0]["paper_arousal_war"] is None and rows[0]["collapsed"] == "Ses01M"
    text = write_report(results)
    assert "| FTR * |" in text and "collapsed folds Ses01M" in text
    assert "Not comparable with the paper (IEMOCAP, E2): ftr-demo (demo, E2)" in text
    assert "(0.466)" not in text and "FTR 0.466/0.307" in text   # the paper's figures, apart
