"""One checkpoint format for the token decoders: a folder with

    config.json         {"kind": "generative" | "ret" | ..., ...the model's config dataclass fields}
    model.safetensors   the weights (tied weights stored once; float32, or bfloat16 for a large model,
                        loaded into a float32 model either way)
    tokenizer.json      the tokenizer, for models that have a trained one (RET's bytes need none,
                        nor does the screen, which reads text through MiniLM; the word probe's is
                        its word list)

`load` first checks the files against the folder's MANIFEST.json (size and sha256, see
decoders/assets.py; `save` records them), then rebuilds the config (unknown or missing keys are
an error), checks that the tokenizer matches it (vocabulary size, <pad>/<bos>/<eos> ids) and
loads the weights.
Training state (optimizer, step) lives beside them in train_state.pt, written by `training`.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, fields
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model

from . import assets

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"   # written by tokenizers that have a vocabulary to save
MODEL_FILES = (CONFIG, WEIGHTS, TOKENIZER)


def save(directory: Path, model: nn.Module, tokenizer, kind: str, dtype: torch.dtype | None = None,
         command: str | None = None) -> None:
    """Write config.json (with `kind`), model.safetensors (in `dtype`, default the model's) and the
    tokenizer's files into `directory`; `command` (default `python -m training KIND --out DIR`) is the
    manifest's rebuild command."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    st_save_model(copy.deepcopy(model).to(dtype) if dtype is not None else model, str(directory / WEIGHTS))
    (directory / CONFIG).write_text(json.dumps({"kind": kind, **asdict(model.cfg)}, indent=2) + "\n")
    tokenizer.save(directory)
    assets.record(directory, [f for f in MODEL_FILES if (directory / f).exists()],
                  command or f"python -m training {kind} --out {assets.shown(directory)}")


def read_config(directory: Path) -> dict:
    """config.json of a checkpoint folder, `kind` included."""
    path = Path(directory) / CONFIG
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint in {directory} (no {CONFIG}): train one with `python -m training`")
    data = json.loads(path.read_text())
    if "kind" not in data:
        raise ValueError(f"{path} has no \"kind\" field; expected one of the model kinds, e.g. \"generative\"")
    return data


def config_from_dict(config_cls, data: dict, source: str = "config"):
    """`config_cls(**data)`, with unknown keys named in a ValueError instead of a TypeError."""
    valid = {f.name for f in fields(config_cls)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ValueError(f"{source}: unknown {config_cls.__name__} key(s) {unknown}; valid keys: {', '.join(sorted(valid))}")
    return config_cls(**data)


def check_tokenizer(tokenizer, cfg, source: str = "tokenizer") -> None:
    """ValueError unless the tokenizer's vocabulary size and special-token ids equal the config's
    (where the config has them: the screen reads text through another encoder and has neither)."""
    if hasattr(cfg, "vocab_size") and tokenizer.vocab_size != cfg.vocab_size:
        raise ValueError(f"{source} has {tokenizer.vocab_size} tokens but the config says vocab_size={cfg.vocab_size}")
    got = tokenizer.special_ids
    want = {k: getattr(cfg, f"{k}_id") for k in ("pad", "bos", "eos") if hasattr(cfg, f"{k}_id")}
    if got != want:
        raise ValueError(f"{source} special token ids {got} differ from the config's {want}")


def load(directory: Path, kind: str, config_cls, model_cls, tokenizer_cls, device: str = "cpu"):
    """(model in eval mode on `device`, tokenizer) from a checkpoint folder of model kind `kind`."""
    directory = Path(directory)
    if (directory / CONFIG).exists():  # else read_config says there is no checkpoint here
        assets.verify(directory, MODEL_FILES)
    data = read_config(directory)
    if data["kind"] != kind:
        raise ValueError(f"{directory / CONFIG} holds a {data['kind']!r} model, not {kind!r}")
    cfg = config_from_dict(config_cls, {k: v for k, v in data.items() if k != "kind"}, str(directory / CONFIG))
    tokenizer = tokenizer_cls.load(directory)
    check_tokenizer(tokenizer, cfg, f"the tokenizer in {directory}")
    if not (directory / WEIGHTS).exists():
        raise FileNotFoundError(f"no weights in {directory} (no {WEIGHTS}): train them with `python -m training`")
    model = model_cls(cfg)
    st_load_model(model, str(directory / WEIGHTS), device=str(device))
    return model.to(device).eval(), tokenizer
