"""TrainConfig: every setting of a training run. It builds the command line (one flag per
field, help from the field's metadata) and is saved beside the checkpoint as train_args.json."""
from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from decoders import generative, ret

KINDS = (generative.KIND, ret.KIND)  # trainable model kinds (config.json "kind")
DEV_SPLITS = ("dev", "open-dev")     # corpus splits the trainer may score on (never test)


def _help(text: str, **argparse_kw) -> dict:
    return {"help": text, "argparse": argparse_kw}


@dataclass
class TrainConfig:
    kind: str = field(default="generative", metadata=_help("model kind", choices=KINDS))
    out: str = field(default="", metadata=_help("checkpoint folder (e.g. assets/generative)", required=True))
    resume: bool = field(default=False, metadata=_help("continue from --out's checkpoint and optimizer state"))
    init: str | None = field(default=None, metadata=_help(
        "fine-tune: start from this checkpoint's weights, config and tokenizer (e.g. assets/generative), "
        "with a new optimizer and LR schedule; --set/--model-config/--tokenizer do not apply", type=str))
    model: dict = field(default_factory=dict, metadata=_help(
        "model config fields, e.g. gate=pagated (values read as JSON, else as strings)", flag="--set",
        nargs="*", metavar="KEY=VALUE"))
    model_config: str | None = field(default=None, metadata=_help(
        "start the model config from this config.json (e.g. assets/generative-l/config.json); --set overrides",
        type=str))
    tokenizer: str | None = field(default=None, metadata=_help(
        "use this tokenizer.json (or a folder holding one) instead of training a BPE on the train texts "
        "(generative only; e.g. assets/tokenizers/bpe-2048/tokenizer.json)", type=str))
    steps: int = field(default=20000, metadata=_help("total steps of the schedule (over all sessions)"))
    minutes: float | None = field(default=None, metadata=_help(
        "stop (and checkpoint) after this many minutes; the LR schedule then ends on time", type=float))
    batch_size: int = field(default=128, metadata=_help("texts per step"))
    lr: float = field(default=3e-3, metadata=_help("peak learning rate (AdamW)"))
    weight_decay: float = field(default=0.1, metadata=_help("AdamW weight decay of matrices"))
    warmup: int = field(default=300, metadata=_help("linear warm-up steps"))
    clip: float = field(default=1.0, metadata=_help("gradient norm clip"))
    label_smoothing: float = field(default=0.1, metadata=_help("cross-entropy label smoothing"))
    noise: float = field(default=0.25, metadata=_help("embedding noise norm (cos to clean ~ 1/sqrt(1+n^2))"))
    eval_every: int = field(default=1000, metadata=_help("steps between dev evaluations (and checkpoints)"))
    eval_n: int = field(default=256, metadata=_help("dev sentences scored at each evaluation"))
    data_dir: str | None = field(default=None, metadata=_help(
        "folder of the corpus embeddings: emb_train.npy (the rows embedded so far), emb_dev.npy, "
        "emb_open-dev.npy (default: the repository's data/)", type=str))
    embeddings: str | None = field(default=None, metadata=_help(
        "train embeddings from a PQ pack (.npz, `python -m training pack`) instead of DATA_DIR/emb_train.npy",
        type=str))
    wordnet_weight: float = field(default=1.0, metadata=_help(
        "copies of each WordNet train row per epoch (e.g. 2.0, so the open sources do not drown it)"))
    data_fraction: float = field(default=1.0, metadata=_help(
        "keep this fraction of the open train rows (a fixed hash-based subset, nested: 0.1 is inside 0.3); "
        "WordNet rows are all kept"))
    kd: str | None = field(default=None, metadata=_help(
        "sequence-level distillation: teacher outputs per train row (`python -m tools.distill`)", type=str))
    kd_weight: float = field(default=1.0, metadata=_help(
        "copies per epoch of each teacher-output example, relative to its reference example (0 = off)"))
    dev_splits: list = field(default_factory=lambda: ["dev", "open-dev"], metadata=_help(
        "dev sets scored at each evaluation (eval_n rows each); the first is the log's dev_*, "
        "the others are prefixed with their name (open_dev_*)", nargs="+"))
    device: str = field(default="auto", metadata=_help("training device", choices=["auto", "cpu", "cuda"]))
    threads: int | None = field(default=None, metadata=_help("torch CPU threads (default: torch's choice)", type=int))
    seed: int = field(default=0, metadata=_help("seeds model init, batch order and noise"))
    limit: int | None = field(default=None, metadata=_help("use only the first N train texts (smoke tests)", type=int))
    snapshot_at: list = field(default_factory=list, metadata=_help(
        "steps at which to keep a weights copy in OUT/snapshots", type=int, nargs="*"))

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; trainable kinds: {', '.join(KINDS)}")
        for name in ("steps", "batch_size", "eval_every", "eval_n"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")
        if not 0.0 < self.data_fraction <= 1.0:
            raise ValueError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
        for name in ("wordnet_weight", "kd_weight", "noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.tokenizer and self.kind != generative.KIND:
            raise ValueError(f"--tokenizer is for the generative model; {self.kind} reads bytes")
        if self.init and (self.resume or self.model or self.model_config or self.tokenizer):
            raise ValueError("--init takes the model, config and tokenizer from its checkpoint: "
                             "it goes with neither --resume nor --set/--model-config/--tokenizer")
        unknown = [s for s in self.dev_splits if s not in DEV_SPLITS]
        if unknown or not self.dev_splits:
            raise ValueError(f"dev_splits {self.dev_splits}: valid dev splits are {', '.join(DEV_SPLITS)}")

    def save(self, directory: Path) -> None:
        (Path(directory) / "train_args.json").write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> "TrainConfig":
        return cls(**json.loads((Path(directory) / "train_args.json").read_text()))

    def model_fields(self) -> dict:
        """The model config fields of a new run: --model-config's (its "kind" checked), then --set."""
        base = {}
        if self.model_config:
            path = Path(self.model_config)
            if not path.exists():
                raise FileNotFoundError(f"--model-config {path}: no such file")
            base = json.loads(path.read_text())
            kind = base.pop("kind", self.kind)
            if kind != self.kind:
                raise ValueError(f"--model-config {path} holds a {kind!r} config, not {self.kind!r}")
        return {**base, **self.model}


def parse_key_values(items: list[str]) -> dict:
    """["gate=pagated", "dropout=0.1"] -> {"gate": "pagated", "dropout": 0.1} (JSON values, else strings)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def parse_plain_config(cls, argv: list[str] | None, prog: str, doc: str, data_dir: Path):
    """(cls(...), --data-dir) from a command line with one flag per field of a plain dataclass
    (type and default from the field's default) and --data-dir: the commands that fit the hybrid's
    helpers (training/word_probe.py, training/screen.py)."""
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in asdict(cls()).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    p.add_argument("--data-dir", type=Path, default=data_dir, help="where emb_train.npy and the dev embeddings are")
    a = vars(p.parse_args(argv))
    data_dir = a.pop("data_dir")
    return cls(**a), data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (`kind` positional); defaults are the dataclass's."""
    for f in fields(TrainConfig):
        kw = dict(f.metadata["argparse"])
        flag = kw.pop("flag", "--" + f.name.replace("_", "-"))
        default = f.default_factory() if f.default is MISSING else f.default
        if f.name == "kind":
            parser.add_argument("kind", choices=kw["choices"], help=f.metadata["help"])
            continue
        if isinstance(default, bool):
            kw["action"] = "store_true"
        elif "type" not in kw and "nargs" not in kw and "choices" not in kw:
            kw["type"] = type(default)
        if not kw.get("required"):
            kw["default"] = default
        parser.add_argument(flag, dest=f.name, help=f.metadata["help"], **kw)


def from_args(args: argparse.Namespace) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    values["model"] = parse_key_values(values["model"]) if isinstance(values["model"], list) else values["model"]
    return TrainConfig(**values)
