"""Throughput of the trained networks in use: `raylab predict` and the `raylab serve` endpoint.

- predict: files of `--seconds` of audio through `raylab.predict.ray_batch.predict_paths` (read,
  resample, cut, features, the networks): windows/s and seconds per file;
- endpoint: `--clients` concurrent clients POSTing one such file each, `--requests` in all, to
  the Serve deployment on 127.0.0.1: requests/s and p50/p95 latency;
- beside them, the same network's training-forward throughput (train mode, autograd on, batches
  of 64 windows) and its eval forward alone, so the overhead of audio and serving shows.

Without `--run`, a toy ELoR run (two fold networks, CNN of 4 filters) is made in a temporary
folder. Usage: python bench/predict_throughput.py [--run RUN] [--files 8] [--clients 4]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import io
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import median, time_call  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from raylab import IS10_DIM, MFCC_SHAPE, SAMPLE_RATE, WINDOW_SAMPLES  # noqa: E402

TOY_CNN = dict(conv1_filters=4, conv1_kernel=40, pool1=8, conv2_filters=4, conv2_kernel=8, pool2=8,
               conv3_filters=4, conv3_kernel=8, pool3=8, hidden1=16, hidden2=8)


def toy_run(folder: Path) -> Path:
    from raylab.train.checkpoint import save_checkpoint
    from raylab.models import build_model

    for k, fold in enumerate(("Ses01F", "Ses01M")):
        torch.manual_seed(k)
        save_checkpoint(folder / "folds" / fold / "checkpoint.pt", build_model("elor", **TOY_CNN),
                        "elor", None, {"fold": fold}, window_samples=WINDOW_SAMPLES)
    (folder / "run.json").write_text(json.dumps({"kind": "crossval", "arch": "elor"}))
    return folder


def wav(seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.02 * rng.standard_normal(len(t))
    buffer = io.BytesIO()
    sf.write(buffer, wave, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def forward_rates(predictor, batch: int = 64) -> dict[str, float]:
    member = predictor.members[0]
    model, device = member.model, predictor.device
    shapes = {"waveform": (member.info["window_samples"],), "is10": (IS10_DIM,), "mfcc": MFCC_SHAPE}
    x = [torch.randn(batch, *shapes[k], device=device) for k in model.inputs]
    model.train()
    train = time_call(lambda: sum(v.sum() for v in model(*x).values()).backward(), str(device))
    model.eval()
    with torch.no_grad():
        infer = time_call(lambda: model(*x), str(device))
    return {"train_forward_backward": batch / median(train), "eval_forward": batch / median(infer)}


def bench_endpoint(run: Path, body: bytes, clients: int, requests_total: int) -> dict[str, float]:
    import ray
    import requests
    from ray import serve

    from raylab.predict.runs import locate
    from raylab.predict.ray_serve import build_app, start

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        app = build_app(locate(str(run), run.parent).checkpoints, num_cpus=1, device="cpu")
        url = start(app, "127.0.0.1", port)
        requests.post(url, data=body, timeout=120).raise_for_status()  # warm-up

        def one(_: int) -> float:
            began = time.perf_counter()
            requests.post(url, data=body, timeout=120).raise_for_status()
            return time.perf_counter() - began

        began = time.perf_counter()
        with cf.ThreadPoolExecutor(clients) as pool:
            latencies = sorted(pool.map(one, range(requests_total)))
        wall = time.perf_counter() - began
    finally:
        serve.shutdown()
        ray.shutdown()
    return {"requests_per_s": requests_total / wall, "p50_s": float(np.percentile(latencies, 50)),
            "p95_s": float(np.percentile(latencies, 95))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a trained run (default: a toy ELoR run)")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=13.0, help="seconds of audio per file")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from raylab.predict.ray_batch import predict_paths
    from raylab.predict.runner import load_predictor

    with tempfile.TemporaryDirectory(prefix="raylab-bench-predict-") as tmp:
        run = args.run or toy_run(Path(tmp) / "toy-elor")
        predictor = load_predictor(str(run), None, Path(tmp), args.device)
        files = []
        for i in range(args.files):
            files.append(Path(tmp) / f"clip{i}.wav")
            files[-1].write_bytes(wav(args.seconds, i))
        runs = []
        wall = median(time_call(lambda: runs.append(predict_paths(
            predictor, [str(f) for f in files], workers=1, progress=False)), repeats=3))
        result = runs[-1]
        rates = forward_rates(predictor)
        endpoint = bench_endpoint(run, files[0].read_bytes(), args.clients, args.requests)
    load = os.getloadavg()[0]
    print(f"network: {predictor.describe()}; {os.cpu_count()} CPUs, load {load:.1f}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"predict : {args.files} files of {args.seconds:g} s, {result.windows} windows: "
          f"{result.windows / wall:.1f} windows/s, {wall / args.files:.3f} s per file (median of 3)")
    print(f"endpoint: {args.clients} clients, {args.requests} requests of {args.seconds:g} s: "
          f"{endpoint['requests_per_s']:.1f} requests/s, p50 {endpoint['p50_s'] * 1e3:.0f} ms, "
          f"p95 {endpoint['p95_s'] * 1e3:.0f} ms")
    print(f"network alone (one fold, batch 64): training forward+backward "
          f"{rates['train_forward_backward']:.1f} windows/s, eval forward {rates['eval_forward']:.1f} "
          f"windows/s (the ensemble runs {len(predictor.members)} of them)")


if __name__ == "__main__":
    main()
