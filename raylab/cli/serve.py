"""`raylab serve --run RUN`: a trained network (or a run's ensemble) as an HTTP endpoint on Ray Serve."""
from __future__ import annotations

import argparse
import signal
import time

from raylab.runtime.settings import results_dir


def register(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "serve", parents=[common], help="serve a trained run over HTTP with Ray Serve",
        description="Deploy the run's network (the mean of its fold networks, or --fold) on Ray "
                    "Serve. POST WAV or FLAC bytes to the URL; the answer is the JSON of `raylab "
                    "predict` for that file. Runs until interrupted (Ctrl-C or SIGTERM), then shuts "
                    "Serve down.")
    parser.add_argument("--run", required=True, metavar="RUN",
                        help="run folder, fold folder, checkpoint file or MLflow run id")
    parser.add_argument("--fold", metavar="SPEAKER", help="only this fold's network (default: all, averaged)")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP host (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default: 8000)")
    parser.add_argument("--address", metavar="ADDR", help="Ray cluster, e.g. auto (default: a local Ray)")
    parser.add_argument("--num-replicas", type=int, default=1, metavar="N", help="replicas (default: 1)")
    parser.add_argument("--min-replicas", type=int, metavar="N", help="autoscaling: fewest replicas (default: no autoscaling, "
                                                              "--num-replicas)")
    parser.add_argument("--max-replicas", type=int, metavar="N", help="autoscaling: most replicas (default: no autoscaling)")
    parser.add_argument("--num-gpus", type=float, default=0.0, metavar="G",
                        help="GPUs per replica, fractional allowed (default: 0)")
    parser.add_argument("--num-cpus", type=float, default=1.0, metavar="C", help="CPUs per replica (default: 1)")
    parser.add_argument("--max-seconds", type=float, default=600.0, metavar="S",
                        help="longest audio accepted per request, in seconds (default: 600)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raylab.predict.ray_serve import build_app, start, stop
    from raylab.predict.runs import locate
    from raylab.runtime.console import quiet, say
    from raylab.runtime.ray_session import ray_session
    from raylab.runtime.settings import log_file

    results = results_dir(args.results)
    ref = locate(args.run, results)
    app = build_app(ref.pick(args.fold), num_replicas=args.num_replicas,
                    min_replicas=args.min_replicas, max_replicas=args.max_replicas,
                    num_gpus=args.num_gpus, num_cpus=args.num_cpus, max_seconds=args.max_seconds,
                    source=str(ref.run_dir or args.run))

    def interrupt(signum, frame):  # a service manager's SIGTERM shuts down as Ctrl-C does
        raise KeyboardInterrupt

    # Ray's, Serve's and the replicas' output to the log; the terminal keeps the address
    with quiet(log_file(results, command="serve"), args.verbose), ray_session(args.address):
        signal.signal(signal.SIGTERM, interrupt)  # after ray.init, which installs its own
        url = start(app, args.host, args.port)
        say(f"serving {args.run} at {url} (POST WAV or FLAC bytes; Ctrl-C stops)", "stdout")
        try:
            while True:
                time.sleep(3600)
        finally:
            stop()
