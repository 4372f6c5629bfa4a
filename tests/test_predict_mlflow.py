"""The pyfunc model logged with a run: loaded through `mlflow.pyfunc.load_model` alone, it gives
`raylab predict`'s per-file figures for paths and for base64 WAV bytes."""
from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.test_predict import SR, make_run, tone

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize("arch", ["elor", "elor_ftr"])
def test_logged_model_matches_predict(arch, results, tmp_path):
    import mlflow

    from raylab.predict.ray_batch import predict_paths
    from raylab.predict.mlflow_model import log_model
    from raylab.predict.runner import load_predictor
    from raylab.predict.runs import fold_checkpoints
    from raylab.predict.tables import file_rows
    from raylab.runtime.tracking import Tracker

    run_dir = make_run(tmp_path / "run", arch)
    files = [tmp_path / "a.wav", tmp_path / "b.wav"]
    sf.write(files[0], tone(2.5), SR)
    sf.write(files[1], tone(0.7, 22_050, channels=2), 22_050)
    tracker = Tracker(results)
    with tracker.start_run("predict-model") as run:
        assert log_model(run, fold_checkpoints(run_dir))
    mlflow.set_tracking_uri(tracker.uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run.run_id}/model")
    assert [c.name for c in model.metadata.get_input_schema().inputs] == ["path", "wav_base64"]
    by_path = model.predict(pd.DataFrame({"path": [str(f) for f in files]}))
    by_bytes = model.predict(pd.DataFrame({"wav_base64": [
        base64.b64encode(f.read_bytes()).decode() for f in files]}))
    expected = file_rows(predict_paths(load_predictor(str(run_dir), None, results, "cpu"),
                                       [str(f) for f in files], progress=False).frame)
    columns = [c for c in expected.columns if c not in ("file", "end_s")]
    for got in (by_path, by_bytes):
        assert len(got) == 2
        np.testing.assert_allclose(got[columns].to_numpy(float), expected[columns].to_numpy(float),
                                   atol=1e-5)
        np.testing.assert_allclose(got["seconds"], [2.5, 0.7], atol=1e-3)
    assert list(by_path["file"]) == [str(f) for f in files]
