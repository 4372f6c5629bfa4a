"""Search-space files: YAML in, frozen dataclasses out, every rule checked before Ray starts.

A file (see `search_spaces/elor.yaml`) names the network, the metric and mode, the trial budget,
the resources per trial, the values held fixed, the flat search space in a compact form
(`lr: {type: float, low: 1.0e-4, high: 0.1, log: true}`), the first point evaluated (the paper's
values, Tables 1-4 and the model defaults) and an optional `demo:` budget for the demo corpus.
Every broken rule is a `ConfigError` naming the file and the key.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from raylab.errors import ConfigError
from raylab.limits import limit_error
from raylab.train.params import PAPER_HPARAMS, TrainConfig, read_yaml, split_params

if TYPE_CHECKING:
    import numpy as np

METRICS = ("val_acc_mean", "val_uar_mean")  # validation WAR / UAR averaged over the two dimensions
MODES = ("max", "min")
PARAM_TYPES = ("float", "int", "choice")
TOP_KEYS = {"arch", "metric", "mode", "num_samples", "n_initial_points", "max_concurrent",
            "resources", "fixed", "space", "start", "demo"}
REQUIRED_KEYS = ("arch", "space")
DEMO_KEYS = {"num_samples", "n_initial_points", "epochs", "max_concurrent", "resources", "fixed"}
RESOURCE_KEYS = {"cpus_per_trial", "gpus_per_trial"}
ENTRY_KEYS = {"float": {"type", "low", "high", "log", "q"},
              "int": {"type", "low", "high", "log", "step"},
              "choice": {"type", "values"}}
NOT_SEARCHABLE = {"device"}  # chosen by the trial's resources, never a hyperparameter
SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: a float or int range (optionally log or stepped) or a choice."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None  # int: grid step; float: quantisation q
    values: tuple = ()

    def contains(self, value: Any) -> bool:
        if self.type == "choice":
            return any(_same(value, v) for v in self.values)
        if not _is_number(value) or (self.type == "int" and not _is_int(value)):
            return False
        if not self.low <= value <= self.high:
            return False
        return self.step is None or _on_grid(value, self.step)

    def describe(self) -> str:
        """The distribution drawn from, e.g. `loguniform(0.0001, 0.1)` or `choice(16, 32)`."""
        if self.type == "choice":
            return f"choice({', '.join(map(str, self.values))})"
        if self.type == "int":
            kind = "lograndint" if self.log else "randint"
            step = f", step={self.step}" if self.step not in (None, 1) else ""
            return f"{kind}({self.low}, {self.high}{step})"
        kind = ("q" if self.step else "") + ("loguniform" if self.log else "uniform")
        return f"{kind}({self.low}, {self.high}" + (f", {self.step})" if self.step else ")")


@dataclass(frozen=True)
class Resources:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


@dataclass(frozen=True)
class DemoBudget:
    """The budget used on the demo corpus: a few short trials of toy-size networks."""

    num_samples: int = 4
    n_initial_points: int = 2
    epochs: int | None = 2
    max_concurrent: int | None = None
    resources: Resources | None = None
    fixed: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSpace:
    arch: str
    params: tuple[Param, ...]
    start: dict
    fixed: dict = field(default_factory=dict)
    metric: str = "val_acc_mean"
    mode: str = "max"
    num_samples: int = 20
    n_initial_points: int = 10
    max_concurrent: int = 4
    resources: Resources = Resources()
    demo: DemoBudget | None = None
    source: str = "<memory>"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def draw(self, rng: "np.random.Generator") -> dict[str, Any]:
        """One point drawn as TPE draws its initial points: uniform over each range (over log
        values for `log: true`, over the grid for a step), a choice uniformly; `fixed` added."""
        point = dict(self.fixed)
        for p in self.params:
            if p.type == "choice":
                point[p.name] = p.values[rng.integers(len(p.values))]
            elif p.type == "int":
                step = p.step or 1
                value = (round(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
                         if p.log else p.low + step * rng.integers((p.high - p.low) // step + 1))
                point[p.name] = int(value)
            else:
                value = (math.exp(rng.uniform(math.log(p.low), math.log(p.high))) if p.log
                         else rng.uniform(p.low, p.high))
                point[p.name] = p.step * round(value / p.step) if p.step else float(value)
        return point

    def with_fixed(self, values: Mapping[str, Any]) -> "SearchSpace":
        """Hold `values` fixed: they leave the space and the start point and join `fixed`."""
        if not values:
            return self
        keep = tuple(p for p in self.params if p.name not in values)
        start = {k: v for k, v in self.start.items() if k not in values}
        return dataclasses.replace(self, params=keep, start=start, fixed={**self.fixed, **values})

    def for_demo(self) -> "SearchSpace":
        """The demo budget applied: fewer trials, fewer epochs, toy-size networks."""
        demo = self.demo or DemoBudget()
        fixed = dict(demo.fixed)
        if demo.epochs is not None:
            fixed["epochs"] = demo.epochs
        space = dataclasses.replace(
            self, num_samples=demo.num_samples, n_initial_points=demo.n_initial_points,
            max_concurrent=demo.max_concurrent or self.max_concurrent,
            resources=demo.resources or self.resources)
        return space.with_fixed(fixed)


def default_space_file(arch: str) -> Path:
    """`search_spaces/<arch>.yaml` of this checkout."""
    path = SPACES_DIR / f"{arch}.yaml"
    if not path.is_file():
        raise ConfigError(f"no search space for {arch!r} at {path}; pass one with --space FILE")
    return path


def load_search_space(path: str | Path, arch: str | None = None) -> SearchSpace:
    """Read and validate a search-space file; `arch`, when given, must match the file's."""
    path = Path(path)
    space = parse_search_space(read_yaml(path, "the search-space file"), str(path))
    if arch is not None and space.arch != arch:
        raise ConfigError(f"{path}: arch: the file is for {space.arch!r}, not {arch!r}")
    return space


def parse_search_space(raw: Any, source: str = "<memory>") -> SearchSpace:
    """Build a `SearchSpace` from the parsed YAML mapping, checking every rule."""
    err = _Errors(source)
    top = err.mapping(raw, "", TOP_KEYS)
    for key in REQUIRED_KEYS:
        if key not in top:
            err.fail(key, "missing (required)")
    arch = _check_arch(top["arch"], err)
    known = known_params(arch)
    metric = top.get("metric", "val_acc_mean")
    if metric not in METRICS:
        err.fail("metric", f"expected one of {', '.join(METRICS)}, found {metric!r}")
    mode = top.get("mode", "max")
    if mode not in MODES:
        err.fail("mode", f"expected one of {', '.join(MODES)}, found {mode!r}")
    fixed = _parse_fixed(top.get("fixed") or {}, "fixed", known, err)
    params = tuple(_parse_param(name, entry, known, err)
                   for name, entry in err.mapping(top["space"], "space").items())
    if not params:
        err.fail("space", "empty: name at least one hyperparameter to search")
    for p in params:
        _check_name(p.name, f"space.{p.name}", known, err)
        if p.name in fixed:
            err.fail(f"fixed.{p.name}", "is both fixed and searched; keep it in one place")
    try:
        paper = paper_values(arch, fixed.get("preset"))
    except ConfigError as error:
        err.fail("fixed.preset", str(error))
    for p in params:
        if p.name in paper and not p.contains(paper[p.name]):
            err.fail(f"space.{p.name}", f"the paper's value {paper[p.name]!r} lies outside "
                                        f"{_describe(p)}; widen the range")
    start = _parse_start(top.get("start"), params, paper, err)
    _check_trainable(arch, start, fixed, params, err)
    return SearchSpace(
        arch=arch, params=params, start=start, fixed=fixed, metric=metric, mode=mode,
        num_samples=err.integer(top.get("num_samples", 20), "num_samples", minimum=1),
        n_initial_points=err.integer(top.get("n_initial_points", 10), "n_initial_points", 1),
        max_concurrent=err.integer(top.get("max_concurrent", 4), "max_concurrent", minimum=1),
        resources=_parse_resources(top.get("resources") or {}, "resources", err),
        demo=_parse_demo(top["demo"], known, params, err) if "demo" in top else None,
        source=source)


def _check_trainable(arch: str, start: dict, fixed: dict, params: tuple[Param, ...],
                     err: "_Errors") -> None:
    """Values a trial hands to the trainer must pass its own rules (e.g. `update`), so that a bad
    one fails here, before Ray starts, rather than in every trial and each of its retries."""
    def check(key: str, values: dict) -> None:
        try:
            split_params(arch, values)
        except ConfigError as error:
            err.fail(key, str(error))

    check("fixed", {**start, **fixed})
    for p in params:
        for value in p.values:
            check(f"space.{p.name}", {**start, **fixed, p.name: value})


def dump_search_space(space: SearchSpace) -> str:
    """The resolved space as a search-space file (no `demo:`) that `load_search_space` reads back."""
    def entry(p: Param) -> dict:
        if p.type == "choice":
            return {"type": "choice", "values": list(p.values)}
        out = {"type": p.type, "low": p.low, "high": p.high}
        if p.log:
            out["log"] = True
        if p.step is not None:
            out["step" if p.type == "int" else "q"] = p.step
        return out

    doc = {"arch": space.arch, "metric": space.metric, "mode": space.mode,
           "num_samples": space.num_samples, "n_initial_points": space.n_initial_points,
           "max_concurrent": space.max_concurrent,
           "resources": dataclasses.asdict(space.resources), "fixed": dict(space.fixed),
           "space": {p.name: entry(p) for p in space.params}, "start": dict(space.start)}
    return f"# resolved from {space.source}\n" + yaml.safe_dump(doc, sort_keys=False)


def known_params(arch: str) -> dict[str, Any]:
    """Every flat parameter `arch` takes, with its default (model defaults + Tables 1-4)."""
    from raylab.models import SHAPE_KEYS, model_defaults
    from raylab.models.presets import DEFAULT_PRESET

    train = {f.name: f.default for f in dataclasses.fields(TrainConfig)
             if f.name not in NOT_SEARCHABLE}
    model = {k: v for k, v in model_defaults(arch).items() if k not in SHAPE_KEYS}
    return {**train, **PAPER_HPARAMS[arch], **model, "preset": DEFAULT_PRESET}


def paper_values(arch: str, preset: str | None = None) -> dict[str, Any]:
    """The paper's configuration: Tables 1-4 for training, the model defaults (or those of
    `preset`) for the network."""
    from raylab.models import SHAPE_KEYS, model_defaults
    from raylab.models.presets import DEFAULT_PRESET, preset_values

    model = model_defaults(arch) | preset_values(arch, preset or DEFAULT_PRESET)
    model = {k: v for k, v in model.items() if k not in SHAPE_KEYS}
    return {**model, **PAPER_HPARAMS[arch]}


class _Errors:
    """Raises `ConfigError`s that name the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> None:
        raise ConfigError(f"{self.source}: {key}: {message}" if key else f"{self.source}: {message}")

    def mapping(self, value: Any, key: str, allowed: set[str] | None = None) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, found {_kind(value)}")
        for k in value:
            if not isinstance(k, str):
                self.fail(key, f"keys must be names, found {k!r}")
            if allowed is not None and k not in allowed:
                where = f"{key}.{k}" if key else k
                self.fail(where, f"unknown key; expected one of {', '.join(sorted(allowed))}")
        return value

    def number(self, value: Any, key: str) -> float | int:
        if isinstance(value, str):
            hint = ""
            try:
                float(value)
                hint = " (YAML reads numbers like 1e-4 as strings; write 1.0e-4)"
            except ValueError:
                pass
            self.fail(key, f"expected a number, found the string {value!r}{hint}")
        if not _is_number(value):
            self.fail(key, f"expected a number, found {_kind(value)}")
        return value

    def integer(self, value: Any, key: str, minimum: int | None = None) -> int:
        if not _is_int(self.number(value, key)):
            self.fail(key, f"expected an integer, found {value!r}")
        if minimum is not None and value < minimum:
            self.fail(key, f"expected an integer >= {minimum}, found {value}")
        return int(value)


def _check_arch(arch: Any, err: _Errors) -> str:
    from raylab.models import MODEL_NAMES

    if arch not in MODEL_NAMES:
        err.fail("arch", f"unknown network {arch!r}; expected one of {', '.join(MODEL_NAMES)}")
    return arch


def _check_name(name: str, key: str, known: dict, err: _Errors) -> None:
    if name not in known:
        err.fail(key, f"not a parameter of this network; expected one of {', '.join(known)}")


def _parse_param(name: str, entry: Any, known: dict, err: _Errors) -> Param:
    key = f"space.{name}"
    _check_name(name, key, known, err)
    kind = err.mapping(entry, key).get("type")
    if kind not in PARAM_TYPES:
        err.fail(f"{key}.type", f"expected one of {', '.join(PARAM_TYPES)}, found {kind!r}")
    err.mapping(entry, key, ENTRY_KEYS[kind])
    default = known[name]
    if kind == "choice":
        values = entry.get("values")
        if not isinstance(values, list) or not values:
            err.fail(f"{key}.values", f"expected a non-empty list, found {_kind(values)}")
        for i, v in enumerate(values):
            _check_value(name, v, default, f"{key}.values[{i}]", err)
        return Param(name, kind, values=tuple(values))
    if _is_int(default) and kind == "float":
        err.fail(f"{key}.type", f"{name} is an integer; use type: int (or choice)")
    if isinstance(default, str):
        err.fail(f"{key}.type", f"{name} takes names ({default!r}); use type: choice")
    for bound in ("low", "high"):
        if bound not in entry:
            err.fail(f"{key}.{bound}", "missing (required)")
    number = err.integer if kind == "int" else err.number
    low, high = number(entry["low"], f"{key}.low"), number(entry["high"], f"{key}.high")
    if low >= high:
        err.fail(key, f"inverted or empty range: low {low} must be below high {high}")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        err.fail(f"{key}.log", f"expected true or false, found {log!r}")
    if log and low <= 0:
        err.fail(f"{key}.low", f"a log range needs positive bounds, found low {low}")
    step_key = "step" if kind == "int" else "q"
    step = entry.get(step_key)
    if step is not None:
        step = number(step, f"{key}.{step_key}")
        if step <= 0:
            err.fail(f"{key}.{step_key}", f"expected a positive step, found {step}")
        for bound, v in (("low", low), ("high", high)):
            if not _on_grid(v, step):  # hyperopt's quantised draws are multiples of the step
                err.fail(f"{key}.{bound}", f"{v} is not a multiple of {step_key} {step}")
        if log and kind == "int":
            err.fail(f"{key}.{step_key}", "an int range takes log or step, not both")
    for bound, v in (("low", low), ("high", high)):
        _check_limits(name, v, f"{key}.{bound}", err)
    return Param(name, kind, low=low, high=high, log=log, step=step)


def _check_value(name: str, value: Any, default: Any, key: str, err: _Errors) -> None:
    """A fixed value or a choice: the type of the parameter's default, within its limits."""
    if isinstance(default, str) or isinstance(value, str):
        if isinstance(value, str) and isinstance(default, str):
            return
        if isinstance(value, str):
            err.number(value, key)
        err.fail(key, f"expected a name like {default!r}, found {value!r}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            err.fail(key, f"expected true or false, found {value!r}")
        return
    if _is_int(default) and not isinstance(default, float):
        err.integer(value, key)
    else:
        err.number(value, key)
    _check_limits(name, value, key, err)


def _check_limits(name: str, value: float, key: str, err: _Errors) -> None:
    message = limit_error(name, value)
    if message:
        err.fail(key, message)


def _parse_fixed(raw: Any, key: str, known: dict, err: _Errors) -> dict:
    fixed = dict(err.mapping(raw, key))
    for name, value in fixed.items():
        _check_name(name, f"{key}.{name}", known, err)
        _check_value(name, value, known[name], f"{key}.{name}", err)
    return fixed


def _parse_start(raw: Any, params: tuple[Param, ...], paper: dict, err: _Errors) -> dict:
    """The first point: every searched parameter, inside the space (default: the paper's values)."""
    names = [p.name for p in params]
    if raw is None:
        raw = {n: paper[n] for n in names if n in paper}
    start = dict(err.mapping(raw, "start"))
    for name, value in start.items():
        if name not in names:
            err.fail(f"start.{name}", f"not a searched parameter; searched: {', '.join(names)}")
        p = params[names.index(name)]
        if not p.contains(value):
            err.fail(f"start.{name}", f"{value!r} lies outside {_describe(p)}")
    missing = [n for n in names if n not in start]
    if missing:  # hyperopt cannot evaluate a partial point (GarbageCollected switch)
        err.fail("start", f"missing searched parameters: {', '.join(missing)}")
    return start


def _parse_resources(raw: Any, key: str, err: _Errors) -> Resources:
    res = err.mapping(raw, key, RESOURCE_KEYS)
    cpus = err.number(res.get("cpus_per_trial", 1.0), f"{key}.cpus_per_trial")
    gpus = err.number(res.get("gpus_per_trial", 0.0), f"{key}.gpus_per_trial")
    if cpus <= 0:
        err.fail(f"{key}.cpus_per_trial", f"expected a positive number, found {cpus}")
    if gpus < 0 or (gpus > 1 and not _is_int(gpus)):
        err.fail(f"{key}.gpus_per_trial", f"expected a fraction in [0, 1] or a whole number, "
                                          f"found {gpus}")
    return Resources(float(cpus), float(gpus))


def _parse_demo(raw: Any, known: dict, params: tuple[Param, ...], err: _Errors) -> DemoBudget:
    demo = err.mapping(raw, "demo", DEMO_KEYS)
    epochs = demo.get("epochs", 2)
    return DemoBudget(
        num_samples=err.integer(demo.get("num_samples", 4), "demo.num_samples", minimum=1),
        n_initial_points=err.integer(demo.get("n_initial_points", 2), "demo.n_initial_points", 1),
        epochs=None if epochs is None else err.integer(epochs, "demo.epochs", minimum=1),
        max_concurrent=(err.integer(demo["max_concurrent"], "demo.max_concurrent", minimum=1)
                        if "max_concurrent" in demo else None),
        resources=(_parse_resources(demo["resources"], "demo.resources", err)
                   if "resources" in demo else None),
        fixed=_parse_fixed(demo.get("fixed") or {}, "demo.fixed", known, err))


def _describe(p: Param) -> str:
    if p.type == "choice":
        return f"the choices {list(p.values)}"
    extra = " (log)" if p.log else f" step {p.step}" if p.step else ""
    return f"[{p.low}, {p.high}]{extra}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _on_grid(value: float, step: float) -> bool:
    ratio = value / step
    return math.isclose(ratio, round(ratio), rel_tol=1e-9, abs_tol=1e-9)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b or (_is_number(a) and _is_number(b) and a == b)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"
