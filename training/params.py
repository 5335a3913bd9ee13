"""Parameter counts of model configs, by part, and the value of one config field that matches a
target count: comparisons between conditionings are made at equal parameters.

    python -m training params generative --model-config assets/generative/config.json
    python -m training params generative --model-config assets/generative/config.json \
        --set conditioning=adaln n_prefix=0 bridge_per_layer=false --fit ffn_hidden --target 1934595
"""
from __future__ import annotations

from collections import Counter

from decoders import checkpoint

from .trainer import MODELS


def build(kind: str, fields: dict):
    Config, Model, _ = MODELS[kind]
    return Model(checkpoint.config_from_dict(Config, fields, "--model-config/--set"))


def count_by_part(model) -> dict[str, int]:
    """Parameters per top-level part (tok_emb, blocks, bridge, norm) with the adaLN modulations
    apart, tied weights counted once."""
    parts: Counter = Counter()
    seen = set()
    for name, p in model.named_parameters():  # shared (tied) parameters are listed once
        if id(p) in seen:
            continue
        seen.add(id(p))
        parts["adaln_modulation" if ".modulation." in name else name.split(".")[0]] += p.numel()
    return dict(parts)


def parameter_table(kind: str, fields: dict) -> dict:
    model = build(kind, fields)
    return {"kind": kind, "params": model.num_parameters(), "by_part": count_by_part(model),
            "config": {k: v for k, v in vars(model.cfg).items()}}


def fit(kind: str, fields: dict, name: str, target: int, step: int = 8) -> int:
    """The multiple of `step` for integer field `name` whose parameter count is closest to `target`
    without exceeding it (the count grows with the field). ValueError if none fits."""
    Config = MODELS[kind][0]
    if name not in Config.__dataclass_fields__ or not isinstance(getattr(Config(), name), int):
        raise ValueError(f"--fit {name!r}: not an integer field of {Config.__name__}")

    def count(v):
        try:
            return build(kind, {**fields, name: v}).num_parameters()
        except ValueError:  # e.g. d_model that does not split into the heads: skip that value
            return None

    lo, hi = step, step
    while (c := count(hi)) is None or c <= target:
        lo, hi = hi, hi * 2
        if hi > 1 << 20:
            raise ValueError(f"{name} up to {hi} stays under {target} parameters")
    if (c := count(lo)) is None or c > target:
        raise ValueError(f"even {name}={step} gives more than {target} parameters")
    while hi - lo > step:  # invariant: count(lo) <= target < count(hi) (or hi invalid)
        mid = (lo + hi) // 2 // step * step
        c = count(mid)
        if c is not None and c <= target:
            lo = mid
        else:
            hi = mid
    return lo
