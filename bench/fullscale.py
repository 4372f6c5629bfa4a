"""IEMOCAP scale on one machine: the real CLI, stage by stage, with wall time, memory, object store,
spill and disk use per stage.

    PYTHONPATH=. .venv/bin/python bench/fullscale.py [--scale 1.0] [--workdir DIR] [--out bench/fullscale.md]

Builds an IEMOCAP-sized corpus with the demo synthesiser (`raylab data demo`: five sessions, ten
speakers, in IEMOCAP's on-disk layout; at `--scale 1` about 9 000 turns and about 8 500 windows,
the paper's `raylab.PAPER_WINDOWS`), then runs, each as its own `raylab` process as a user would:
`data prepare`, `features`, a 2-trial search of one epoch each (the small ELoR preset, both trials
at once), and ten folds of one epoch of the small ELoR and of FTR.

While a stage runs, its process tree is sampled from /proc (psutil is not in the lock file):
peak resident memory of every process (VmHWM, and private/anonymous against shared memory: the
object store's pages are shared), the tree's proportional set size (PSS: shared pages counted
once, so the stage's real footprint), and the load average. The Ray session the stage starts is
found from its processes' command lines; the raylet's `debug_state.txt` (dumped every second here,
`RAY_debug_dump_period_milliseconds`) gives the object store's pinned bytes and the bytes spilled,
and the session's `ray_spilled_objects_*` folder what spilling wrote to disk. `RAY_ADDRESS` is
cleared for the stages, so each starts its own local Ray inside the sampled tree.

Writes the figures as a markdown table to `--out`, with the machine, the load and the date, and a
linear extrapolation to `--scale 1` for a smaller run (labelled as such).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import _common as C

from raylab import PAPER_WINDOWS

REPO = C.BENCH_DIR.parent
TICKS = os.sysconf("SC_CLK_TCK")
TURNS_PER_SPEAKER = 895   # x 10 speakers, ~90 % rated by E2, ~6 % over 9 s: ~8 500 windows
SPACE = """# bench/fullscale.py: the small ELoR, one epoch, two trials at once on the fixed search split
arch: elor
metric: val_acc_mean
mode: max
num_samples: 2
n_initial_points: 1
max_concurrent: 2
resources: {cpus_per_trial: 1, gpus_per_trial: 0}
fixed:
  preset: small
  epochs: 1
  batch_size: 15
space:
  lr:       {type: float, low: 1.0e-3, high: 1.1e-2}
  lr_decay: {type: float, low: 0.8, high: 1.0}
  momentum: {type: float, low: 0.35, high: 0.95}
  dropout:  {type: float, low: 0.0, high: 0.6}
start: {lr: 0.006, lr_decay: 0.9, momentum: 0.65, dropout: 0.3}
"""


STAGES = ("corpus", "prepare", "features", "search", "ftr", "elor")


def stages(work: Path, turns_per_speaker: int) -> dict[str, tuple[str, list[str]]]:
    """Each stage's key, title and `raylab` arguments, in order: the cheap ten folds first, so
    that a run stopped in the costly one has measured every other stage."""
    data = str(work / "data")
    return {
        "corpus": ("corpus (data demo)", ["data", "demo", "--out", str(work / "corpus"),
                                          "--turns-per-speaker", str(turns_per_speaker)]),
        "prepare": ("data prepare", ["data", "prepare", "iemocap", str(work / "corpus"),
                                     "--out", data]),
        "features": ("features", ["features", data]),
        "search": ("search: 2 trials x 1 epoch, small ELoR", [
            "tune", "elor", "--data", data, "--space", str(work / "space.yaml"),
            "--name", "fullscale-search"]),
        "ftr": ("ten folds x 1 epoch, FTR", ["train", "ftr", "--data", data, "--epochs", "1",
                                             "--name", "fullscale-ftr"]),
        "elor": ("ten folds x 1 epoch, small ELoR", [
            "train", "elor", "--data", data, "--set", "preset=small", "--epochs", "1",
            "--name", "fullscale-elor"]),
    }


@dataclass
class Proc:
    label: str
    rss: int = 0      # kB; the most of VmHWM and every sampled VmRSS
    anon: int = 0     # kB, private (RssAnon)
    shmem: int = 0    # kB, shared memory mapped (RssShmem: the object store's pages)
    cpu: float = 0.0  # CPU seconds (user + system) at its last sample


@dataclass
class Sample:
    """What one stage's process tree held at its peak, and the Ray session it started."""
    procs: dict[str, Proc] = field(default_factory=dict)
    most_at_once: int = 0
    pss_peak: int = 0                      # kB, the tree's PSS at its highest
    loads: list[float] = field(default_factory=list)
    sessions: set[Path] = field(default_factory=set)
    store_capacity: int = 0                # bytes
    pinned_peak: int = 0                   # bytes of primary copies in the object store
    spilled_peak: int = 0                  # bytes spilled at once (raylet's count)
    spill_requests: int = 0
    spill_dir_peak: int = 0                # bytes in the session's spill folder


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read(f"/proc/{entry}/stat")
            if stat:
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(root: int) -> list[int]:
    kids, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(kids.get(pid, ()))
    return found


def label_of(argv: list[str]) -> str:
    """`ray::ImplicitFunc.train` for a Ray worker, `raylab tune` for the driver, else the program."""
    if not argv:
        return "?"
    if argv[0].startswith("ray::"):
        return argv[0].split()[0]
    if "-m" in argv[:3] and argv[argv.index("-m") + 1:][:1] == ["raylab"]:
        rest = argv[argv.index("-m") + 2:]
        words = [w for w in rest if not w.startswith("-") and "/" not in w]
        return "raylab " + " ".join(words[:1])
    if "-c" in argv[1:3]:  # e.g. multiprocessing's forkserver of Ray's dashboard
        code = argv[argv.index("-c") + 1:][:1] or [""]
        return "python -c " + " ".join(code[0].split(";")[0].split()[:2])
    names = [Path(a).name for a in argv[:3] if a.endswith(".py")]
    return names[0] if names else Path(argv[0]).name


def _status(pid: int) -> dict[str, int]:
    fields = {}
    for line in _read(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssShmem"):
            fields[key] = int(value.split()[0])
    return fields


def _debug_state(session: Path) -> dict[str, int]:
    """The object store figures of the raylets' last debug dumps, summed over the session's nodes."""
    keys = {"pinned objects size": "pinned", "num bytes currently spilled": "spilled",
            "cumulative spill requests": "requests"}
    out = dict.fromkeys(keys.values(), 0)
    for dump in (session / "logs").glob("debug_state*.txt"):
        if "gcs" in dump.name:
            continue
        for line in _read(str(dump)).splitlines():
            key, _, value = line.strip("- ").partition(":")
            if key in keys and value.strip().isdigit():
                out[keys[key]] += int(value)
    return out


def disk_use(path: Path) -> int:
    """Bytes on disk (allocated blocks) under `path`."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                pass
    return total


class Sampler(threading.Thread):
    def __init__(self, root: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root, self.interval, self.sample = root, interval, Sample()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.once()
            self.done.wait(self.interval)
        self.once()

    def once(self) -> None:
        s = self.sample
        s.loads.append(os.getloadavg()[0])
        pids, pss = tree(self.root), 0
        s.most_at_once = max(s.most_at_once, len(pids))
        for pid in pids:
            argv = _read(f"/proc/{pid}/cmdline").split("\0")
            stat = _read(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()
            start = stat[19:20]
            status = _status(pid)
            if not status or not start:
                continue
            proc = s.procs.setdefault(f"{pid}/{start[0]}", Proc(label_of([a for a in argv if a])))
            rss = max(status.get("VmHWM", 0), status.get("VmRSS", 0))
            if rss > proc.rss:
                proc.rss, proc.label = rss, label_of([a for a in argv if a])
            proc.anon = max(proc.anon, status.get("RssAnon", 0))
            proc.shmem = max(proc.shmem, status.get("RssShmem", 0))
            proc.cpu = max(proc.cpu, (int(stat[11]) + int(stat[12])) / TICKS)
            for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
            for arg in argv:
                found = re.search(r"(/\S*?/session_[^/\s]+)", arg)
                if found:
                    s.sessions.add(Path(found.group(1)))
                if "object_store_memory," in arg:
                    s.store_capacity = max(s.store_capacity, int(float(
                        arg.split("object_store_memory,")[1].split(",")[0])))
        s.pss_peak = max(s.pss_peak, pss)
        for session in s.sessions:
            state = _debug_state(session)
            s.pinned_peak = max(s.pinned_peak, state["pinned"])
            s.spilled_peak = max(s.spilled_peak, state["spilled"])
            s.spill_requests = max(s.spill_requests, state["requests"])
            s.spill_dir_peak = max(s.spill_dir_peak, sum(
                disk_use(d) for d in session.glob("ray_spilled_objects*")))


@dataclass
class StageResult:
    name: str
    argv: list[str]
    rc: int
    wall: float
    sample: Sample
    wrote: int        # bytes the stage added under the workdir
    results: int      # bytes of the results folder after it
    started: str = ""

    @property
    def cpu(self) -> float:
        """CPU seconds of the tree's processes, as last sampled (a process's last interval is
        missed; Ray's workers are not reaped by the stage's process, so its rusage misses them)."""
        return sum(p.cpu for p in self.sample.procs.values())


def run_stage(name: str, argv: list[str], work: Path, interval: float) -> StageResult:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["RAY_debug_dump_period_milliseconds"] = "1000"
    command = [sys.executable, "-m", "raylab", "--results", str(work / "results"), *argv]
    before, clock = disk_use(work), datetime.datetime.now().astimezone().strftime("%H:%M")
    log = open(work / "logs" / f"{len(list((work / 'logs').iterdir())):02d}-{argv[0]}.log", "w")
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work,
                            start_new_session=True)
    sampler = Sampler(proc.pid, interval)
    sampler.start()
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, 2)
        proc.wait()
        raise
    finally:
        wall = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
        log.close()
    if rc != 0:
        print(f"{name}: exit {rc}; the end of {log.name}:\n" + Path(log.name).read_text()[-3000:],
              file=sys.stderr)
    return StageResult(name, argv, rc, wall, sampler.sample, disk_use(work) - before,
                       disk_use(work / "results"), clock)


def mb(kb_or_bytes: float, unit: str = "kB") -> str:
    value = kb_or_bytes / 1024 if unit == "kB" else kb_or_bytes / 2**20
    if value >= 1024:
        return f"{value / 1024:.2f} GiB"
    return f"{value:.1f} MiB" if value < 10 else f"{value:.0f} MiB"


def machine_line() -> str:
    ram = int(_read("/proc/meminfo").split("MemTotal:")[1].split()[0])
    return f"CPU {C.cpu_model_name()}, {os.cpu_count()} cores, {ram / 2**20:.1f} GiB RAM"


def dataset_line(work: Path) -> tuple[str, int]:
    meta = json.loads(_read(str(work / "data" / "meta.json")) or "{}")
    windows = int(meta.get("windows", 0))
    audio = windows * int(meta.get("window_samples", 96000)) * 2
    return (f"{meta.get('utterances', '?')} turns prepared of 10 speakers in 5 sessions, "
            f"{windows} windows (the paper: {PAPER_WINDOWS}); the audio, int16, one copy: "
            f"{mb(audio, 'B')}"), windows


def render(results: list[StageResult], args: argparse.Namespace, work: Path, date: str) -> str:
    text, windows = dataset_line(work)
    loads = [x for r in results for x in r.sample.loads]
    rows = []
    for r in results:
        s = r.sample
        top = max(s.procs.values(), key=lambda p: p.rss, default=Proc("-"))
        spill = (f"{mb(s.spilled_peak, 'B')} ({s.spill_requests} requests), folder "
                 f"{mb(s.spill_dir_peak, 'B')}" if s.sessions else "no Ray")
        store = (f"{mb(s.pinned_peak, 'B')} of {mb(s.store_capacity, 'B')}" if s.sessions else "no Ray")
        rows.append([r.name, f"{r.wall:.0f}" if r.rc == 0 else f"failed (exit {r.rc}) after {r.wall:.0f}",
                     f"{r.cpu:.0f}",
                     f"{min(s.loads):.1f}–{max(s.loads):.1f}", f"{s.most_at_once} / {len(s.procs)}",
                     f"{mb(top.rss)} (`{top.label}`)", mb(s.pss_peak), store, spill,
                     mb(r.wrote, "B"), mb(r.results, "B")])
    out = [f"# IEMOCAP scale on one machine (`bench/fullscale.py --scale {args.scale:g}`)", "",
           f"Run {date}. {machine_line()}; load average (1 min) during the run "
           f"{min(loads):.1f}–{max(loads):.1f}, mean {sum(loads) / len(loads):.1f}. "
           f"Python {sys.version.split()[0]}.", "",
           f"Corpus: the demo synthesiser at scale {args.scale:g}: {text}.", "",
           C.markdown_table(["stage", "wall s", "CPU s", "load avg", "processes (at once / started)",
                             "largest process: peak RSS", "tree PSS peak", "object store peak",
                             "spilled (peak)", "disk written", "results folder after"], rows), ""]
    if windows and args.scale != 1:
        full = windows / args.scale
        out += [f"Linear extrapolation to `--scale 1` (about {full:.0f} windows; start-up costs "
                "are scaled too, so these are upper bounds for short stages): " + "; ".join(
                    f"{r.name} ~{r.wall / args.scale / 60:.0f} min ({r.cpu / args.scale / 60:.0f} "
                    f"CPU-min)" for r in results if r.rc == 0)
                + ".", ""]
    out += [f"CPU s is the user + system time of the stage's process tree, summed over its "
            f"processes as sampled: on "
            f"a shared machine it moves far less than wall time does, and on an idle machine of "
            f"{os.cpu_count()} cores a stage that keeps them all busy takes about CPU s / "
            f"{os.cpu_count()} of wall time.", ""]
    out += ["## Peak memory and CPU time per process", "",
            "Per stage, processes grouped by name (`ray::…` is a Ray worker's title at its peak): "
            "how many, and the most any one of them held. Private is anonymous memory (its own "
            "copies); shared is mapped shared memory (the object store's pages, counted in every "
            "process that maps them and once in the tree's PSS).", ""]
    for r in results:
        groups: dict[str, list[Proc]] = {}
        for proc in r.sample.procs.values():
            groups.setdefault(proc.label, []).append(proc)
        ranked = sorted(groups.items(), key=lambda kv: -max(p.rss for p in kv[1]))[:args.top]
        out += [f"### {r.name}" + (f" (started {r.started})" if r.started else ""), "", f"`raylab {' '.join(r.argv)}`", "",
                C.markdown_table(["process", "count", "peak RSS", "peak private", "peak shared",
                                  "CPU s (all of them)"], [
                    [f"`{label}`", len(ps), mb(max(p.rss for p in ps)), mb(max(p.anon for p in ps)),
                     mb(max(p.shmem for p in ps)), f"{sum(p.cpu for p in ps):.0f}"]
                    for label, ps in ranked]), ""]
    return "\n".join(out)


def save(results: list[StageResult], work: Path, args: argparse.Namespace, date: str) -> None:
    """The figures so far: raw in <workdir>/fullscale.json (`--render` redraws them), as the
    markdown report in --out."""
    raw = {"date": date, "scale": args.scale, "stages": [dataclasses.asdict(r) for r in results]}
    C.write_atomic(work / "fullscale.json", json.dumps(raw, indent=1, default=lambda o: sorted(map(str, o)) if isinstance(o, set) else str(o)))
    C.write_atomic(args.out, render(results, args, work, date) + "\n")


def load(work: Path) -> tuple[list[StageResult], float, str]:
    raw = json.loads((work / "fullscale.json").read_text())
    results = []
    for stage in raw["stages"]:
        sample = stage["sample"]
        sample["procs"] = {key: Proc(**p) for key, p in sample["procs"].items()}
        sample["sessions"] = {Path(x) for x in sample["sessions"]}
        known = {k: v for k, v in stage.items() if k in StageResult.__dataclass_fields__}
        results.append(StageResult(**{**known, "sample": Sample(**sample)}))
    return results, raw["scale"], raw["date"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of IEMOCAP's size (default 1: ~8 500 windows)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raylab-fullscale"),
                        help="where the corpus, dataset, results and logs go (must be new or empty)")
    parser.add_argument("--out", type=Path, default=C.BENCH_DIR / "fullscale.md")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--top", type=int, default=8, help="process groups listed per stage")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"which of {','.join(STAGES)} to run (default: all); without corpus, "
                        "in the --workdir of an earlier run, whose figures are kept")
    parser.add_argument("--render", action="store_true",
                        help="only redraw --out from the figures of the run in --workdir")
    args = parser.parse_args()
    if args.render:
        results, args.scale, date = load(args.workdir.resolve())
        C.write_atomic(args.out, render(results, args, args.workdir.resolve(), date) + "\n")
        return 0
    if not 0 < args.scale <= 10:
        parser.error(f"--scale must be in (0, 10], got {args.scale}")
    work = args.workdir.resolve()
    chosen = args.stages.split(",")
    if set(chosen) - set(STAGES):
        parser.error(f"--stages: unknown {', '.join(sorted(set(chosen) - set(STAGES)))}; "
                     f"expected some of {','.join(STAGES)}")
    results: list[StageResult] = []
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    if "corpus" in chosen:
        if work.exists() and any(work.iterdir()):
            parser.error(f"--workdir {work} exists and is not empty; give a new one")
        (work / "logs").mkdir(parents=True, exist_ok=True)
        (work / "space.yaml").write_text(SPACE)
    elif not (work / "fullscale.json").is_file():
        parser.error(f"--stages without corpus needs the --workdir of an earlier run; "
                     f"{work / 'fullscale.json'} is missing")
    else:
        results, args.scale, date = load(work)
    turns = max(1, round(TURNS_PER_SPEAKER * args.scale))
    print(f"{machine_line()}; scale {args.scale:g}: 10 speakers x {turns} turns; workdir {work}")
    plan = stages(work, turns)
    for key in (k for k in STAGES if k in chosen):
        name, argv = plan[key]
        results = [r for r in results if r.name != name] + [run_stage(name, argv, work, args.interval)]
        results.sort(key=lambda r: [title for title, _ in plan.values()].index(r.name))
        save(results, work, args, date)
        r = next(r for r in results if r.name == name)
        top = max(r.sample.procs.values(), key=lambda p: p.rss, default=Proc("-"))
        print(f"{name}: {'exit ' + str(r.rc) + ' after ' if r.rc else ''}{r.wall:.0f} s, load "
              f"{max(r.sample.loads):.1f}, {len(r.sample.procs)} processes, largest {mb(top.rss)} "
              f"({top.label}), tree PSS {mb(r.sample.pss_peak)}, object store "
              f"{mb(r.sample.pinned_peak, 'B')}, spilled {mb(r.sample.spilled_peak, 'B')}, "
              f"wrote {mb(r.wrote, 'B')}", flush=True)
        if r.rc != 0:
            break
    print(f"\nwrote {args.out}")
    return 0 if all(r.rc == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
