"""Table 5 of the paper from the ten-fold runs under the results folder, beside the published figures.

A ten-fold run is a folder `<results>/<name>/` with `run.json` (`"kind": "crossval"`), one
`folds/<SPEAKER>/` folder per finished fold (`predictions.parquet`, `split.json`, ...) and, once the
run has been summarised (`summarize_run`), `summary.json`, `table.md` and the pooled confusion
matrices. `table5` collects one row per network (the latest run of each, or the runs named) and
`render` prints it as Markdown, CSV or a standalone HTML page.
"""
from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from raylab import DEFAULT_EVALUATOR, DIMENSIONS
from raylab.errors import ConfigError, DataError
from raylab.report.layout import (FOLDS_DIR, PREDICTIONS_FILE, RUN_FILE, SPLIT_FILE, SUMMARY_FILE,
                                  TABLE_FILE, confusion_file)
from raylab.report.pooled import RANDOM_BASELINE, summarize_predictions
from raylab.runtime.fsutil import atomic_path, write_atomic

FORMATS = ("md", "csv", "html")
ARCH_ORDER = ("elor", "lom", "ftr", "elor_ftr")  # the paper's row order
# raylab.models.DISPLAY_NAMES (a test keeps them equal), not imported: `raylab report` needs no torch.
DISPLAY = {"elor": "ELoR", "lom": "LoM", "ftr": "FTR", "elor_ftr": "ELoR+FTR"}
# Table 5 of the paper: (WAR, UAR) per dimension, predictions of the ten test folds pooled.
PAPER_TABLE5: dict[str, dict[str, tuple[float, float]]] = {
    "elor": {"arousal": (0.524, 0.394), "valence": (0.429, 0.300)},
    "lom": {"arousal": (0.510, 0.351), "valence": (0.424, 0.281)},
    "ftr": {"arousal": (0.466, 0.307), "valence": (0.412, 0.263)},
    "elor_ftr": {"arousal": (0.472, 0.362), "valence": (0.411, 0.302)},
    "random": {"arousal": (0.200, 0.200), "valence": (0.200, 0.200)},
    "most_frequent": {"arousal": (0.408, 0.200), "valence": (0.392, 0.200)},
}
TABLE_DIMENSIONS = DIMENSIONS[::-1]  # Table 5 lists arousal first
COLUMNS = [f"{dim}_{key}" for dim in TABLE_DIMENSIONS for key in ("war", "uar")]


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DataError(f"{path}: missing") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err


def finished_folds(run_dir: Path) -> list[str]:
    """Folds whose predictions were written (the file is renamed into place last, so it is whole)."""
    folds = run_dir / FOLDS_DIR
    return sorted(p.parent.name for p in folds.glob(f"*/{PREDICTIONS_FILE}")) if folds.is_dir() else []


def load_predictions(run_dir: Path, folds: list[str] | None = None) -> pd.DataFrame:
    """The pooled test predictions of the given (default: every finished) fold."""
    folds = finished_folds(run_dir) if folds is None else folds
    if not folds:
        raise DataError(f"{run_dir}: no finished fold (no {FOLDS_DIR}/*/{PREDICTIONS_FILE})")
    return pd.concat([pd.read_parquet(run_dir / FOLDS_DIR / f / PREDICTIONS_FILE) for f in folds],
                     ignore_index=True)


def compute_summary(run_dir: Path) -> dict:
    """Pooled figures, per-fold spread and baselines of a run's finished folds (nothing written)."""
    return _pooled(run_dir)[1]


def _pooled(run_dir: Path) -> tuple[pd.DataFrame, dict]:
    folds = finished_folds(run_dir)
    predictions = load_predictions(run_dir, folds)
    majority = {f: read_json(run_dir / FOLDS_DIR / f / SPLIT_FILE)["train_majority"] for f in folds}
    return predictions, summarize_predictions(predictions, majority)


def summarize_run(run_dir: Path) -> dict:
    """Compute the run's summary; write `summary.json`, `table.md` and the confusion matrices of
    the pooled predictions (`confusion_pooled_<dim>.png`) beside `run.json`."""
    import matplotlib.pyplot as plt

    from raylab.report.metrics import confusion
    from raylab.report.plots import plot_confusion

    run_dir = Path(run_dir)
    run = read_json(run_dir / RUN_FILE)
    predictions, summary = _pooled(run_dir)
    for dim, figures in summary["pooled"].items():
        part = predictions[predictions["dimension"] == dim]
        fig = plot_confusion(confusion(part["target"], part["predicted"]),
                             f"{run_dir.name}, {len(summary['folds'])} folds pooled, {dim}: "
                             f"WAR {figures['war']:.3f}, UAR {figures['uar']:.3f}")
        with atomic_path(run_dir / confusion_file(dim, pooled=True)) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
    write_atomic(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    write_atomic(run_dir / TABLE_FILE, render_run(run, summary))
    return summary


def comparable(run: dict) -> bool:
    """The paper's figures are on IEMOCAP with evaluator E2: only such runs are set beside them."""
    return run.get("corpus") == "iemocap" and run.get("evaluator") == DEFAULT_EVALUATOR


def collapse_note(collapsed: dict[str, list[str]]) -> str:
    return ("COLLAPSED folds (one class predicted for every test window; their figures are a "
            "constant guess): " + "; ".join(f"{fold} ({', '.join(dims)})"
                                            for fold, dims in sorted(collapsed.items())))


def render_run(run: dict, summary: dict) -> str:
    """Markdown view of one run: pooled, per-fold mean ± std, per utterance, baselines, folds."""
    arch = run.get("arch", "?")
    paper = PAPER_TABLE5.get(arch, {}) if comparable(run) else {}
    header = ["", *(f"{d.capitalize()} {k}" for d in TABLE_DIMENSIONS for k in ("WAR", "UAR", "F1"))]

    def line(label: str, figures: dict, fmt=lambda v: f"{v:.3f}") -> list[str]:
        return [label, *(fmt(figures[d][k]) if d in figures and k in figures[d] else "—"
                         for d in TABLE_DIMENSIONS for k in ("war", "uar", "f1"))]

    mean_std = lambda v: f"{v['mean']:.3f} ± {v['std']:.3f}"  # noqa: E731
    rows = [line("pooled over the test folds", summary["pooled"]),
            line("per fold, mean ± std", summary["per_fold"], mean_std),
            line("per utterance (majority vote), pooled", summary["utterance"])]
    if paper:
        rows.append(line("paper, pooled (Table 5)",
                         {d: {"war": w, "uar": u} for d, (w, u) in paper.items()}))
    rows.append(line("random guessing", summary["baselines"]["random"]))
    if "test_prior" in summary["baselines"]:
        rows.append(line("most frequent label, pooled test prior (the paper's)",
                         summary["baselines"]["test_prior"]))
    if "most_frequent" in summary["baselines"]:
        rows.append(line("most frequent training label per fold (ours)",
                         summary["baselines"]["most_frequent"]))
    fold_rows = [[fold, *(f"{summary['by_fold'][fold][d][k]:.3f}" if d in summary["by_fold"][fold] else "—"
                          for d in TABLE_DIMENSIONS for k in ("war", "uar", "f1"))]
                 for fold in summary["folds"]]
    failed = run.get("failed") or {}
    title = (f"# {run.get('name', '?')}: {DISPLAY.get(arch, arch)}, leave-one-speaker-out, "
             f"{len(summary['folds'])} of {len(run.get('folds', summary['folds']))} folds")
    notes = [f"dataset {run.get('dataset', '?')} · evaluator {run.get('evaluator', '?')} · "
             f"{summary['windows']} test windows, {summary['utterances']} utterances"]
    if failed:
        notes.append("FAILED folds (not in the figures): "
                     + "; ".join(f"{f}: {msg}" for f, msg in sorted(failed.items())))
    if summary.get("collapsed"):
        notes.append(collapse_note(summary["collapsed"]))
    if not comparable(run):
        notes.append(f"not comparable with the paper's Table 5 (IEMOCAP, evaluator E2): corpus "
                     f"{run.get('corpus', '?')}, evaluator {run.get('evaluator', '?')}")
    return "\n".join([title, "", *notes, "", markdown_table(header, rows), "",
                      markdown_table(["Fold", *header[1:]], fold_rows), ""])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    # Hand-written: a pipe table is three lines of code, not worth a dependency (tabulate).
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def crossval_runs(results: Path) -> dict[str, dict]:
    """`{name: run.json}` of every ten-fold run folder directly under the results folder."""
    runs = {}
    for path in sorted(Path(results).glob(f"*/{RUN_FILE}")):
        run = read_json(path)
        if run.get("kind") == "crossval":
            runs[path.parent.name] = run
    return runs


def run_summary(run_dir: Path) -> dict:
    """`summary.json` when it covers every finished fold, else computed afresh (nothing written)."""
    path = run_dir / SUMMARY_FILE
    if path.exists():
        summary = read_json(path)
        if summary.get("folds") == finished_folds(run_dir):
            return summary
    return compute_summary(run_dir)


def table5(results: Path, runs: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of Table 5: one per network (the latest run of each arch, or the runs named), baselines."""
    results = Path(results)
    available = crossval_runs(results)
    if runs:
        unknown = [name for name in runs if name not in available]
        if unknown:
            raise ConfigError(f"--runs {' '.join(unknown)}: no ten-fold run of that name under {results}; "
                              f"available: {', '.join(sorted(available)) or 'none'}")
        chosen = [(name, available[name]) for name in dict.fromkeys(runs)]
    else:
        latest: dict[str, tuple[str, dict]] = {}
        for name, run in available.items():
            if not finished_folds(results / name):
                continue
            key = (run.get("updated", ""), (results / name / RUN_FILE).stat().st_mtime)
            if run["arch"] not in latest or key > latest[run["arch"]][0]:
                latest[run["arch"]] = (key, (name, run))
        chosen = [pair for _, pair in latest.values()]
    if not chosen:
        raise DataError(f"{results}: no finished ten-fold run (a folder with run.json of kind crossval "
                        "and at least one fold's predictions); train one with `raylab train ARCH`")
    order = {arch: i for i, arch in enumerate(ARCH_ORDER)}
    chosen.sort(key=lambda pair: (order.get(pair[1]["arch"], len(order)), pair[0]))
    rows, groups = [], {}
    for name, run in chosen:
        summary = run_summary(results / name)
        paper = comparable(run)
        where = {"run": name, "dataset": run.get("dataset", ""), "evaluator": run.get("evaluator", ""),
                 "windows": summary["windows"], "folds": len(summary["folds"]),
                 "failed": ",".join(sorted(run.get("failed") or {})), "comparable": paper,
                 "corpus": run.get("corpus") or "?",
                 "collapsed": ",".join(sorted(summary.get("collapsed") or {}))}
        rows.append({"model": DISPLAY.get(run["arch"], run["arch"]), "arch": run["arch"], **where,
                     **_figures(summary["pooled"], PAPER_TABLE5.get(run["arch"]) if paper else None)})
        key = (where["dataset"], where["evaluator"], tuple(summary["folds"]))
        groups.setdefault(key, []).append((where, summary["baselines"]))
    rows.append({"model": "Random guessing", "arch": "random", "run": "", "dataset": "", "evaluator": "",
                 "windows": "", "folds": "", "failed": "", "comparable": True, "corpus": "",
                 "collapsed": "",
                 **_figures({d: {"war": RANDOM_BASELINE, "uar": RANDOM_BASELINE} for d in DIMENSIONS},
                            PAPER_TABLE5["random"])})
    for members in groups.values():
        where, baselines = members[0]
        runs = "" if len(groups) == 1 else f" ({', '.join(w['run'] for w, _ in members)})"
        for key, label, paper in (("test_prior", "Most frequent label, test prior (paper's)", True),
                                  ("most_frequent", "Most frequent training label per fold (ours)",
                                   False)):
            if key in baselines:
                rows.append({"model": label + runs, "arch": key, **where, "collapsed": "",
                             **_figures(baselines[key], PAPER_TABLE5["most_frequent"]
                                        if paper and where["comparable"] else None)})
    return rows


def _figures(ours: dict, paper: dict | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for dim in TABLE_DIMENSIONS:
        for i, key in enumerate(("war", "uar")):
            out[f"{dim}_{key}"] = ours[dim][key] if dim in ours else None
            out[f"paper_{dim}_{key}"] = paper[dim][i] if paper else None
    return out


def _cell(row: dict, column: str) -> str:
    ours, paper = row[column], row[f"paper_{column}"]
    text = "—" if ours is None else f"{ours:.3f}"
    return text if paper is None else f"{text} ({paper:.3f})"


TITLE = ("Table 5: WAR and UAR per network, predictions of all test folds pooled (paper in "
         "parentheses, for runs on IEMOCAP with evaluator E2 only)")
NOTE = ("Ours: pooled over the test folds of each run (section 4.1). Most frequent label, test "
        "prior (the paper's baseline): the most frequent label of all test folds pooled, one per "
        "dimension, predicted for every window. Most frequent training label per fold (ours): each "
        "fold's most frequent training label predicted for its whole test set, pooled. Paper: "
        "Wieser et al. 2018, Table 5 (IEMOCAP, evaluator E2, 8522 windows, ten folds).")


def _notes(rows: list[dict]) -> str:
    """NOTE, the collapsed folds, and the paper's figures where a run is not comparable."""
    notes = [NOTE]
    for row in rows:
        if row.get("collapsed"):
            notes.append(f"* {row['model']} ({row['run']}): collapsed folds {row['collapsed']} "
                         "(one class predicted for every test window of a dimension).")
    others = sorted({f"{r['run']} ({r['corpus']}, {r['evaluator']})" for r in rows
                     if not r.get("comparable", True)})
    if others:
        paper = "; ".join(f"{DISPLAY.get(a, a)} {f['arousal'][0]:.3f}/{f['arousal'][1]:.3f}, "
                          f"{f['valence'][0]:.3f}/{f['valence'][1]:.3f}"
                          for a, f in PAPER_TABLE5.items() if a not in ("random",))
        notes.append(f"Not comparable with the paper (IEMOCAP, E2): {', '.join(others)}; their "
                     f"rows show no paper figures. The paper's Table 5, arousal WAR/UAR, valence "
                     f"WAR/UAR: {paper}.")
    return "\n\n".join(notes)
HEADER = ["Model", "Arousal WAR", "Arousal UAR", "Valence WAR", "Valence UAR",
          "Run", "Dataset", "Evaluator", "Windows", "Folds"]


def _display_rows(rows: list[dict]) -> list[list[str]]:
    return [[row["model"] + (" *" if row.get("collapsed") else ""),
             *(_cell(row, c) for c in COLUMNS), row["run"], row["dataset"],
             row["evaluator"], str(row["windows"]),
             f"{row['folds']} (failed: {row['failed']})" if row["failed"] else str(row["folds"])]
            for row in rows]


def render(rows: list[dict], fmt: str = "md") -> str:
    """Table 5 as Markdown (terminal), CSV (one figure per column) or a standalone HTML page."""
    if fmt == "md":
        return f"## {TITLE}\n\n{markdown_table(HEADER, _display_rows(rows))}\n\n{_notes(rows)}\n"
    if fmt == "csv":
        fields = ["model", "arch", "run", *COLUMNS, *(f"paper_{c}" for c in COLUMNS),
                  "dataset", "corpus", "evaluator", "windows", "folds", "failed", "collapsed",
                  "comparable"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        return buffer.getvalue()
    if fmt == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>\n"
                       for cells in _display_rows(rows))
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(TITLE)}</title>\n<style>{_CSS}</style></head>\n<body>\n"
                f"<h1>{html.escape(TITLE)}</h1>\n<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
                f"{body}</tbody>\n</table>\n"
                + "".join(f"<p>{html.escape(n)}</p>\n" for n in _notes(rows).split("\n\n"))
                + "</body></html>\n")
    raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse}th,td{border:1px solid #bbb;padding:.3em .6em;text-align:right}"
        "th{background:#eee}td:first-child,th:first-child{text-align:left;font-weight:600}"
        "tbody tr:nth-child(even){background:#f7f7f7}p{max-width:60em;color:#555}")


def write_report(results: Path, fmt: str | None = None, out: Path | None = None,
                 runs: list[str] | None = None) -> str:
    """Render Table 5 (format from `fmt`, else `out`'s suffix, else Markdown); write `out` if given."""
    if fmt is None:
        suffix = Path(out).suffix.lower().lstrip(".") if out else "md"
        fmt = {"htm": "html", "markdown": "md"}.get(suffix, suffix if suffix in FORMATS else "md")
    text = render(table5(results, runs), fmt)
    if out is not None:
        write_atomic(Path(out), text)
    return text
