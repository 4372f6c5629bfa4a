"""Table 5 as an MLflow run of its own (`raylab report`): the table as artifacts, its rows as
metrics and params.

The run is named `table5` and sits in the experiment of the runs it compares. Its artifacts are
the table in Markdown, CSV and HTML; each network's pooled WAR/UAR is a metric
`test/<arch>_<dimension>_<war|uar>` and the run folder it came from a param `runs/<arch>`. The
baselines and the paper's figures are in the table (the baselines are also metrics of each
ten-fold run). Reporting the same runs again replaces the earlier `table5` run of those runs
(marked deleted), so the runs list holds one table per selection of runs.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from raylab.report.table5 import FORMATS, render, table5
from raylab.runtime.tracking import DEFAULT_EXPERIMENT, KIND_TAG, NOTE_TAG, SOURCES_TAG, Tracker

RUN_NAME = "table5"
BASELINES = ("random", "most_frequent", "test_prior")  # the `arch` of the table's baseline rows
KIND = "report"


def log_table5(results: Path, runs: list[str] | None = None) -> tuple[str, str, str]:
    """Log Table 5 of `results` (the latest run of each network, or `runs`) as a run `table5`;
    returns (tracking URI, experiment id, run id)."""
    results = Path(results)
    rows = table5(results, runs)
    networks = [row for row in rows if row["arch"] not in BASELINES]
    sources = sorted(str((results / row["run"]).resolve()) for row in networks)
    tracker = Tracker(results)
    experiment = tracker.experiment_id(DEFAULT_EXPERIMENT)
    earlier = tracker.client.search_runs([experiment], f"tags.`{KIND_TAG}` = '{KIND}'")
    note = ("Table 5 of the paper from the ten-fold runs " + ", ".join(r["run"] for r in networks)
            + ": pooled WAR/UAR per network, baselines and the paper's figures (artifacts).")
    with tracker.start_run(RUN_NAME, tags={KIND_TAG: KIND, NOTE_TAG: note,
                                           SOURCES_TAG: json.dumps(sources)}) as run:
        run.log_params({f"runs/{row['arch']}": row["run"] for row in networks})
        run.log_metrics({f"test/{row['arch']}_{column}": row[column] for row in networks
                         for column in ("arousal_war", "arousal_uar", "valence_war", "valence_uar")
                         if row[column] is not None})
        with tempfile.TemporaryDirectory(prefix="raylab-table5-") as tmp:
            for fmt in FORMATS:
                path = Path(tmp) / f"table5.{fmt}"
                path.write_text(render(rows, fmt))
                run.log_artifact(path)
    for old in earlier:
        if old.data.tags.get(SOURCES_TAG) == json.dumps(sources):
            tracker.client.delete_run(old.info.run_id)
    return tracker.uri, experiment, run.run_id
