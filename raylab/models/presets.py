"""Named architecture presets: `--set preset=small`, or `preset: small` in a search space's `fixed`.

"paper" (the default) is the network each model's constructor defaults describe: for ELoR and
ELoR+FTR the Trigeorgis-centred CNN of the paper's search (conv2 40 x 4000; see
`raylab.models.elor`). "small" is raylab's earlier reference network, conv2 and conv3 40 x 10 with
pools of 10: about 2.3 GFLOP per window forward, for laptops, tests and the demo. A preset fills
in the architecture values it names; values given explicitly (`--set`, a config file, a searched
parameter) win over it.
"""
from __future__ import annotations

from typing import Any

from raylab.errors import ConfigError

DEFAULT_PRESET = "paper"
SMALL_CNN = dict(conv1_filters=40, conv1_kernel=80, pool1=2, conv2_filters=40, conv2_kernel=10,
                 pool2=10, conv3_filters=40, conv3_kernel=10, pool3=10)
_RAW_CNN = {"paper": {}, "small": SMALL_CNN}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "elor": _RAW_CNN, "elor_ftr": _RAW_CNN, "lom": {"paper": {}}, "ftr": {"paper": {}}}


def preset_values(arch: str, preset: Any) -> dict[str, Any]:
    """The constructor arguments preset `preset` of network `arch` sets (empty for "paper")."""
    presets = PRESETS.get(arch, {"paper": {}})
    if preset not in presets:
        raise ConfigError(f"preset={preset!r}: expected one of {', '.join(presets)} for {arch}")
    return dict(presets[preset])
