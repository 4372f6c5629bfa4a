"""`raylab serve`'s deployment on a local Ray Serve (127.0.0.1 only): a WAV POSTed gets the JSON of
`raylab predict`; garbage, an empty body and too long audio get a 4xx and the replica serves on."""
from __future__ import annotations

import io
import socket

import numpy as np
import pytest
import soundfile as sf

from tests.test_predict import SR, make_run, tone

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wav_bytes(wave: np.ndarray, sr: int = SR) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_endpoint_answers_as_predict_and_refuses_bad_requests(ray_local, tmp_path):
    import requests
    from ray import serve

    from raylab.predict.ray_batch import predict_paths
    from raylab.predict.runner import load_predictor
    from raylab.predict.runs import fold_checkpoints
    from raylab.predict.ray_serve import build_app, start

    run_dir = make_run(tmp_path / "run", "elor")
    (tmp_path / "a.wav").write_bytes(wav_bytes(tone(2.6)))
    expected = predict_paths(load_predictor(str(run_dir), None, tmp_path, "cpu"),
                             [str(tmp_path / "a.wav")], progress=False).frame
    app = build_app(fold_checkpoints(run_dir), num_cpus=0.5, device="cpu", max_seconds=5)
    url = start(app, "127.0.0.1", free_port())
    try:
        post = lambda body: requests.post(url, data=body, timeout=60)  # noqa: E731
        answer = post((tmp_path / "a.wav").read_bytes())
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        assert doc["model"].startswith("ELoR, mean of 2 fold networks")
        windows = expected[expected["level"] == "window"]
        assert len(doc["windows"]) == len(windows) == 3
        for got, (_, row) in zip(doc["windows"], windows.iterrows()):
            assert got["window"] == row["window"] and got["arousal_class"] == row["arousal_class"]
            np.testing.assert_allclose([got[f"valence_p{r}"] for r in range(1, 6)],
                                       [row[f"valence_p{r}"] for r in range(1, 6)], atol=1e-6)
        whole = expected[expected["level"] == "file"].iloc[0]
        assert doc["file"]["valence_expected"] == pytest.approx(whole["valence_expected"], abs=1e-6)
        for body, status, says in [(b"this is not audio", 400, "not audio"),
                                   (b"", 400, "empty body"),
                                   (wav_bytes(tone(6.5)), 413, "more than the limit of 5 s")]:
            bad = post(body)
            assert bad.status_code == status and says in bad.json()["error"], bad.text
        assert post(wav_bytes(tone(0.3), 8000)).status_code == 200  # still serving
        info = requests.get(url, timeout=30).json()
        assert info["arch"] == "elor" and info["folds"] == ["Ses01F", "Ses02M"]
    finally:
        serve.shutdown()


def test_serve_starts_ray_quietly(tmp_path):
    """`raylab serve` in a process of its own: the terminal holds the address it serves at and the
    log's name; Ray's and Serve's lines go to `<results>/logs/serve.log`. SIGTERM stops it."""
    import signal
    import threading

    import requests

    from tests.test_predict import RAY_LOG_LINE, raylab_process

    run_dir = make_run(tmp_path / "run", "elor")
    results = tmp_path / "results"
    server = raylab_process("--results", str(results), "serve", "--run", str(run_dir), "--port",
                            str(free_port()), "--num-cpus", "0.5")
    try:
        watchdog = threading.Timer(300, server.kill)  # a server that never prints fails, not hangs
        watchdog.start()
        try:
            first = server.stdout.readline()
        finally:
            watchdog.cancel()
        assert first.startswith(f"serving {run_dir} at http://127.0.0.1:"), first
        url = first.split(" at ")[1].split()[0]
        assert requests.post(url, data=wav_bytes(tone(1.2)), timeout=60).status_code == 200
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    shown = [first, *out.splitlines(), *err.splitlines()]
    assert not [line for line in shown if RAY_LOG_LINE.search(line)], shown
    assert not out.strip(), out
    log_line = f"log: {results / 'logs' / 'serve.log'}"
    assert err.splitlines() == [log_line, "raylab: interrupted"], err
    assert "Started a local Ray instance" in (results / "logs" / "serve.log").read_text()
