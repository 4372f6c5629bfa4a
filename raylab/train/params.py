"""Training parameters: the flat parameter dict, `TrainConfig` and the paper's Tables 1-4.

`split_params` turns a flat dict (a search trial's point, `--set`, a `best.yaml`) into a network's
constructor arguments and a `TrainConfig`, the paper's Tables 1-4 filling the rest; every value is
checked against `raylab.limits`, the table the search-space parser checks too. Nothing of
`raylab.search` here: the search imports this module, never the reverse. `read_yaml` is the one
YAML reader of configuration files (search spaces, `--config`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from raylab.errors import ConfigError
from raylab.limits import limit_error
from raylab.models import model_defaults
from raylab.models.presets import DEFAULT_PRESET, preset_values


def read_yaml(path: Path, what: str = "") -> Any:
    """The parsed YAML of `path`; a ConfigError naming the file (and `what` it is) when it cannot
    be read, and the line when it is not valid YAML."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read{' ' + what if what else ''} ({err.strerror})") from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML: {getattr(err, 'problem', err)}") from err


UPDATES = ("alternate", "joint")
LOSS_REDUCTIONS = ("sum", "mean")    # eq. (3) sums over the samples; "mean" is ours
IS10_SCALINGS = ("none", "zscore")   # section 2.2.2 feeds the features directly; z-scores are ours
# Tables 1-4 of the paper: batch size, learning rate, epochs, decay per epoch, momentum, alpha_w.
PAPER_HPARAMS: dict[str, dict[str, Any]] = {
    "elor": dict(batch_size=15, lr=0.006, epochs=9, lr_decay=0.9, momentum=0.65, l2=1e-9),
    "lom": dict(batch_size=5, lr=0.08, epochs=14, lr_decay=0.75, momentum=0.7, l2=0.001),
    "ftr": dict(batch_size=30, lr=0.00004, epochs=16, lr_decay=0.99, momentum=0.65, l2=3.4e-8),
    "elor_ftr": dict(batch_size=15, lr=0.005, epochs=6, lr_decay=0.9, momentum=0.65, l2=1e-9),
}


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (defaults: Table 1, ELoR). `amp`: bf16 autocast, used on CUDA only
    (`amp=false`: fp32 everywhere; `compute_dtype` names what a run computed in).
    `compile`: train through `torch.compile(model)` (pays on long trials; see bench/fast_path.py).
    `loss_reduction`, `is10_scaling`: see `raylab.train.loop` and docs/protocol.md.
    """

    batch_size: int = 15
    lr: float = 0.006
    epochs: int = 9
    lr_decay: float = 0.9
    momentum: float = 0.65
    l2: float = 1e-9
    update: str = "alternate"
    seed: int = 0
    device: str = "cpu"
    amp: bool = True
    compile: bool = False
    loss_reduction: str = "sum"      # eq. (3) as written; docs/protocol.md has the measurement
    is10_scaling: str = "zscore"     # ours; "none" is section 2.2.2's "directly" (docs/protocol.md)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            message = limit_error(f.name, getattr(self, f.name))  # the one table of limits
            if message:
                raise ConfigError(f"{f.name}={getattr(self, f.name)!r}: {message}")
        for name, allowed in (("update", UPDATES), ("loss_reduction", LOSS_REDUCTIONS),
                              ("is10_scaling", IS10_SCALINGS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected one of "
                                  f"{', '.join(allowed)}")


def compute_dtype(cfg: TrainConfig, device: str) -> str:
    """What the network computes in: "bf16" with `amp` on a CUDA device, else "fp32"."""
    return "bf16" if str(device).startswith("cuda") and cfg.amp else "fp32"


def recorded_settings(cfg: TrainConfig, device: str) -> dict[str, Any]:
    """The protocol choices every run records (MLflow params, config.yaml, run.json)."""
    return {"loss_reduction": cfg.loss_reduction, "is10_scaling": cfg.is10_scaling,
            "amp": cfg.amp, "compute_dtype": compute_dtype(cfg, device)}


def worker_batch_size(batch_size: int, world: int) -> int:
    """The windows each of `world` data-parallel workers takes per batch, so that the global
    batch stays `batch_size`; a batch that does not divide is a ConfigError."""
    if world < 1 or batch_size % world:
        raise ConfigError(f"batch_size={batch_size} does not divide over {world} workers per "
                          f"fold; choose a batch size that is a multiple of {world} (the global "
                          "batch is split evenly)")
    return batch_size // world


def _coerce(key: str, value: Any, default: Any) -> Any:
    """`value` as the type of `default` (YAML reads 1e-9 as a string; --set gives strings)."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if isinstance(value, bool):
                return value
            raise ValueError
        if isinstance(default, int):
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, bool) or not float(number).is_integer():
                raise ValueError
            return int(number)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        return str(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        kind = type(default).__name__
        raise ConfigError(f"{key}={value!r}: expected {'an' if kind == 'int' else 'a'} {kind}") from None


def split_params(name: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], TrainConfig]:
    """A flat parameter dict -> (all constructor arguments of `name`, TrainConfig).

    Missing keys take the network's defaults (or those of `preset`, `raylab.models.presets`) and
    the paper's Tables 1-4; an unknown key is a ConfigError listing the valid ones.
    """
    model = model_defaults(name)
    train = {f.name: f.default for f in dataclasses.fields(TrainConfig)} | PAPER_HPARAMS[name]
    unknown = sorted(set(params) - set(model) - set(train) - {"preset"})
    if unknown:
        raise ConfigError(f"unknown parameter(s) for {name}: {', '.join(unknown)}; valid: "
                          f"{', '.join(list(train) + list(model))}, preset")
    model |= preset_values(name, params.get("preset", DEFAULT_PRESET))
    pick = lambda defaults: {k: _coerce(k, params[k], d) if k in params else d  # noqa: E731
                             for k, d in defaults.items()}
    model_kwargs = pick(model)
    for key in params:
        message = limit_error(key, model_kwargs[key]) if key in model_kwargs else None
        if message:
            raise ConfigError(f"{key}={params[key]!r}: {message}")
    return model_kwargs, TrainConfig(**pick(train))


def load_params_file(path: str | Path, arch: str) -> dict[str, Any]:
    """The flat `params` of a YAML file with keys `arch` and `params` (e.g. a search's best.yaml).

    Other top-level keys (the search's metric and score) are ignored; the parameters are checked
    with `split_params`.
    """
    path = Path(path)
    doc = read_yaml(path)
    if not isinstance(doc, dict) or "params" not in doc:
        raise ConfigError(f"{path}: expected a mapping with keys 'arch' and 'params'")
    if doc.get("arch") != arch:
        raise ConfigError(f"{path}: arch: the file is for {doc.get('arch')!r}, not {arch!r}")
    params = doc["params"] or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: params: expected a flat mapping, found {type(params).__name__}")
    try:
        split_params(arch, params)
    except ConfigError as err:
        raise ConfigError(f"{path}: params: {err}") from None
    return dict(params)
