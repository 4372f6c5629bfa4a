"""`raylab serve`: the network (or a run's ensemble) behind an HTTP endpoint on Ray Serve.

POST the bytes of a WAV or FLAC file to `/`; the answer is JSON with the same figures as
`raylab predict` (`file`: the file's row, `windows`: one row per window, the table's columns) and
`model`, `notes`. GET `/` describes the model. A body that is empty, not audio, or longer than
`max_seconds` of audio is answered 400 or 413 with `{"error": "..."}`, and the replica serves on.
The checkpoints travel to the replicas as bytes, so replicas on other nodes need no shared disk.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from raylab.errors import ConfigError, DataError

MAX_SECONDS = 600.0  # 10 minutes of audio per request
APP_NAME = "raylab"


class EmotionEndpoint:
    """The Ray Serve deployment class: one `Predictor` per replica."""

    def __init__(self, checkpoints: dict[str, bytes], device: str, max_seconds: float,
                 source: str) -> None:
        from raylab.predict.runner import Predictor

        self._tmp = tempfile.TemporaryDirectory(prefix="raylab-serve-")
        paths = {}
        for fold, payload in checkpoints.items():
            paths[fold] = Path(self._tmp.name) / f"{fold}.pt"
            paths[fold].write_bytes(payload)
        self.predictor = Predictor.from_checkpoints(paths, device, source=source)
        self.max_seconds = max_seconds

    def answer(self, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON document) of one request; plain Python, tested without Serve."""
        from raylab.predict.audio import TooLong, read_clip_bytes
        from raylab.predict.tables import predictions_frame

        p = self.predictor
        if method == "GET":
            return 200, {"model": p.describe(), "arch": p.arch, "folds": p.folds,
                         "window_seconds": p.window / p.sample_rate, "max_seconds": self.max_seconds}
        if method != "POST":
            return 405, {"error": f"{method}: POST the bytes of a WAV or FLAC file"}
        try:
            clip = read_clip_bytes(body, p.window, "request", self.max_seconds)
        except TooLong as err:
            return 413, {"error": str(err)}
        except DataError as err:
            return 400, {"error": str(err)}
        frame = predictions_frame(p.predict_clips([clip]), p.window / p.sample_rate)
        rows = frame.drop(columns=["file"]).to_dict(orient="records")
        return 200, {"model": p.describe(), "notes": clip.notes,
                     "file": {k: v for k, v in rows[0].items() if k not in ("level", "window")},
                     "windows": [{k: v for k, v in r.items() if k != "level"} for r in rows[1:]]}

    async def __call__(self, request) -> Any:
        from starlette.responses import JSONResponse

        body = await request.body() if request.method == "POST" else b""
        status, doc = self.answer(request.method, body)
        return JSONResponse(doc, status_code=status)


def build_app(checkpoints: dict[str, str | Path], *, num_replicas: int | None = 1,
              min_replicas: int | None = None, max_replicas: int | None = None,
              num_gpus: float = 0.0, num_cpus: float = 1.0, device: str = "auto",
              max_seconds: float = MAX_SECONDS, source: str = ""):
    """The bound Serve application: a fixed `num_replicas`, or autoscaling between
    `min_replicas` and `max_replicas`; `num_gpus` (fractional) and `num_cpus` per replica."""
    from ray import serve

    if (min_replicas is None) != (max_replicas is None):
        raise ConfigError("--min-replicas and --max-replicas go together (autoscaling)")
    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": num_cpus, "num_gpus": num_gpus}}
    if min_replicas is not None:
        if not 0 <= min_replicas <= max_replicas or max_replicas < 1:
            raise ConfigError(f"--min-replicas {min_replicas} --max-replicas {max_replicas}: "
                              "expected 0 <= min <= max and max >= 1")
        options["autoscaling_config"] = {"min_replicas": min_replicas, "max_replicas": max_replicas}
    elif num_replicas is not None and num_replicas < 1:
        raise ConfigError(f"--num-replicas {num_replicas}: expected at least 1")
    else:
        options["num_replicas"] = num_replicas
    if num_gpus < 0 or max_seconds <= 0:
        raise ConfigError(f"--num-gpus {num_gpus} / --max-seconds {max_seconds}: expected >= 0 / > 0")
    if device == "auto":
        device = "cuda" if num_gpus > 0 else "cpu"
    payload = {fold: Path(path).read_bytes() for fold, path in checkpoints.items()}
    deployment = serve.deployment(EmotionEndpoint, name="EmotionEndpoint", **options)
    return deployment.bind(payload, device, max_seconds, source)


def start(app, host: str = "127.0.0.1", port: int = 8000) -> str:
    """Run `app` on the Serve instance of the running Ray (started with these HTTP options);
    returns its URL."""
    from ray import serve

    serve.start(http_options={"host": host, "port": port})
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{host}:{port}/"


def stop() -> None:
    """Shut the Serve instance down (its replicas and HTTP proxy)."""
    from ray import serve

    serve.shutdown()
