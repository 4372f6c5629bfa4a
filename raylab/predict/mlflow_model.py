"""The trained networks as MLflow pyfunc models (the second module of raylab that imports mlflow).

Every fold's run gets a `model` artifact with its network, and every ten-fold run's parent run one
with all its folds' networks (their mean). The model takes a DataFrame with one row per audio file
and one of two string columns: `path` (a WAV or FLAC file the loading process can read) or
`wav_base64` (the file's bytes, base64-encoded); it returns one row per file with the per-file
columns of `raylab predict` (`raylab.predict.tables`): `file`, `seconds`, `<dim>_p1..p5`,
`<dim>_class` (1-5), `<dim>_expected`. The features are computed inside, as in training, with
each fold's IS10 statistics from its checkpoint. Loading needs raylab importable (installed with
its pinned requirements, which the model lists): `mlflow models predict -m runs:/<id>/model
-i audio.csv -t csv --env-manager local`.
"""
from __future__ import annotations

import base64
import io
import sys
import tempfile
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from raylab import DIMENSIONS, SAMPLE_RATE

ARTIFACT = "model"
PATH_COLUMN, BYTES_COLUMN = "path", "wav_base64"


class EmotionModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of `raylab.predict.runner.Predictor`; artifacts are {fold: checkpoint}."""

    def load_context(self, context) -> None:
        from raylab.predict.runner import Predictor

        self.predictor = Predictor.from_checkpoints(dict(sorted(context.artifacts.items())),
                                                    source="MLflow model")

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from raylab.errors import DataError
        from raylab.predict.audio import read_clip, read_clip_bytes
        from raylab.predict.tables import file_rows, predictions_frame

        p = self.predictor
        clips = []
        for i, row in enumerate(model_input.to_dict(orient="records")):
            path, data = row.get(PATH_COLUMN), row.get(BYTES_COLUMN)
            if isinstance(path, str) and path:
                clips.append(read_clip(path, p.window))
            elif isinstance(data, str) and data:
                clips.append(read_clip_bytes(base64.b64decode(data), p.window, f"row {i}"))
            else:
                raise DataError(f"row {i}: give a `{PATH_COLUMN}` or a `{BYTES_COLUMN}` value")
        frame = predictions_frame(p.predict_clips(clips), p.window / p.sample_rate)
        return file_rows(frame).rename(columns={"end_s": "seconds"}).reset_index(drop=True)


def example_wav_base64(seconds: float = 1.0, sr: int = SAMPLE_RATE) -> str:
    """A short tone as base64 WAV bytes: the logged input example."""
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * 220 * t), sr, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from raylab.predict.tables import prob_columns

    outputs = [ColSpec("string", "file"), ColSpec("double", "seconds")]
    for dim in DIMENSIONS:
        outputs += [ColSpec("double", c) for c in prob_columns(dim)]
        outputs += [ColSpec("long", f"{dim}_class"), ColSpec("double", f"{dim}_expected")]
    return ModelSignature(
        inputs=Schema([ColSpec("string", PATH_COLUMN, required=False),
                       ColSpec("string", BYTES_COLUMN, required=False)]),
        outputs=Schema(outputs))


def requirements() -> list[str]:
    """raylab's own pinned dependencies (its installed metadata), for `--env-manager`."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        return [r for r in requires("raylab") or [] if "extra ==" not in r]
    except PackageNotFoundError:
        return []


def save_model(folder: str | Path, checkpoints: dict[str, str | Path]) -> Path:
    """Write the pyfunc model of these fold checkpoints to `folder` (which must not exist)."""
    mlflow.pyfunc.save_model(
        path=str(folder), python_model=EmotionModel(),
        artifacts={fold: str(path) for fold, path in checkpoints.items()},
        signature=signature(), input_example=pd.DataFrame({BYTES_COLUMN: [example_wav_base64()]}),
        pip_requirements=requirements(), metadata={"raylab.folds": sorted(checkpoints)})
    return Path(folder)


def log_model(run, checkpoints: dict[str, str | Path]) -> bool:
    """Save and log the model as artifact `model` of a `raylab.tracking.Run` (a no-op when
    tracking is off). A failure is a warning: the trained folds are already saved on disk."""
    if not run.enabled or not checkpoints:
        return False
    try:
        with tempfile.TemporaryDirectory(prefix="raylab-model-") as tmp:
            run.log_artifacts(save_model(Path(tmp) / ARTIFACT, checkpoints), ARTIFACT)
    except Exception as err:  # packaging must never lose a finished fold
        print(f"raylab: warning: MLflow model not logged ({type(err).__name__}: {err})",
              file=sys.stderr)
        return False
    return True
