"""Train the corrector (decoders/corrector.py) on pairs from training/corrector_pairs.py.

    python -m training.corrector --pairs data/corrector_pairs --out assets/corrector \\
        --init-from assets/generative --minutes 8                                  # CPU, small
    python -m training.corrector --pairs data/corrector_pairs --out assets/corrector --device cuda \\
        --batch-size 512 --lr 2e-3 --minutes 8 --init-from assets/generative
    python -m training.corrector --pairs data/corrector_pairs --out assets/corrector --resume --minutes 4
    python -m training.corrector curve assets/corrector          # the learning curve as a markdown table

Each training example is a pair (target row r, hypothesis h with its embedding ê): the model
reads e = the embedding of row r, ê, e - ê and h, and learns cross-entropy on the text of row
r. A share `--empty-frac` of each batch is trained as an empty start (ê = 0, h = ""), which is
how the hybrid's first correction from nothing calls it. Target rows are split once into
train and dev (`--dev-frac`, seeded); the dev loss is teacher-forced on dev pairs.

With the encoder available, every evaluation also measures one correction step on the first
`--eval-n` sentences of `--eval-split` (default open-dev), taken source by source: the start is
the generative decoder's greedy output (or --eval-start bank: the bank's nearest phrase), re-encoded;
the corrector's greedy rewrite is re-encoded; the log records the mean round-trip cosine
before and after, the mean of the better of the two per sentence (what the hybrid's beam
keeps), the share of sentences it improved, and BLEU / exact match (eval.metrics).

`--init-from assets/generative` starts from the generative decoder: token embeddings, blocks,
final norm, and its bridge as the target projection, where the shapes match (the default
corrector Config has the generative decoder's shape). Checkpoint (decoders/checkpoint.py,
kind "corrector"), train_state.pt, train_args.json and train_log.jsonl as for the other models.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from decoders import checkpoint, corrector, generative
from decoders.base import Sampling
from decoders.encoder import encode
from decoders.encoder import is_available as encoder_available
from eval import metrics

from .config import parse_key_values
from .corrector_pairs import SOURCES, PairsDir, embedded_train
from .data import length_bucketed_batches, load_dev, pack_sequences
from .trainer import hardware, lr_at, make_optimizer, resolve_device, sequence_loss

STATE_KEYS = ("step", "samples_seen", "elapsed_s", "sessions")


def _help(text: str, **argparse_kw) -> dict:
    return {"help": text, "argparse": argparse_kw}


@dataclass
class CorrectorTrainConfig:
    pairs: str = field(default="", metadata=_help("pairs folder from training.corrector_pairs", required=True))
    out: str = field(default="", metadata=_help("checkpoint folder (e.g. assets/corrector)", required=True))
    sources: str = field(default=",".join(SOURCES), metadata=_help("comma list of pair sources to train on (those present)"))
    resume: bool = field(default=False, metadata=_help("continue from --out's checkpoint and optimizer state"))
    init_from: str | None = field(default=None, metadata=_help(
        "generative checkpoint to start from (e.g. assets/generative)", type=str))
    model: dict = field(default_factory=dict, metadata=_help(
        "corrector Config fields, e.g. n_layers=4 (values read as JSON, else strings)", flag="--set",
        nargs="*", metavar="KEY=VALUE"))
    steps: int = field(default=20000, metadata=_help("total steps of the schedule (over all sessions)"))
    minutes: float | None = field(default=None, metadata=_help("stop after this many minutes (the LR schedule ends on time)", type=float))
    batch_size: int = field(default=64, metadata=_help("pairs per step"))
    lr: float = field(default=1e-3, metadata=_help("peak learning rate (AdamW)"))
    weight_decay: float = field(default=0.1, metadata=_help("AdamW weight decay of matrices"))
    warmup: int = field(default=100, metadata=_help("linear warm-up steps"))
    clip: float = field(default=1.0, metadata=_help("gradient norm clip"))
    label_smoothing: float = field(default=0.0, metadata=_help("cross-entropy label smoothing"))
    empty_frac: float = field(default=0.05, metadata=_help("share of each batch trained as an empty start"))
    dev_frac: float = field(default=0.02, metadata=_help("share of target rows held out for the dev loss"))
    eval_every: int = field(default=200, metadata=_help("steps between evaluations (and checkpoints)"))
    eval_n: int = field(default=50, metadata=_help("sentences of --eval-split for the one-step measure (0 = off)"))
    eval_split: str = field(default="open-dev", metadata=_help("split of the one-step measure"))
    eval_start: str = field(default="generative", metadata=_help("start hypothesis of the one-step measure",
                                                                 choices=["generative", "bank"]))
    device: str = field(default="auto", metadata=_help("training device", choices=["auto", "cpu", "cuda"]))
    threads: int | None = field(default=None, metadata=_help("torch CPU threads", type=int))
    seed: int = field(default=0, metadata=_help("seeds init, dev split, batch order and empty rows"))

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("empty_frac", "dev_frac"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        bad = [s for s in self.sources.split(",") if s not in SOURCES]
        if bad:
            raise ValueError(f"unknown pair source(s) {bad}; valid sources: {', '.join(SOURCES)}")

    def save(self, directory: Path) -> None:
        (Path(directory) / "train_args.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.corrector", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(CorrectorTrainConfig):
        kw = dict(f.metadata["argparse"])
        flag = kw.pop("flag", "--" + f.name.replace("_", "-"))
        default = f.default_factory() if f.default is MISSING else f.default
        if isinstance(default, bool):
            kw["action"] = "store_true"
        elif "type" not in kw and "nargs" not in kw and "choices" not in kw:
            kw["type"] = type(default)
        if not kw.get("required"):
            kw["default"] = default
        p.add_argument(flag, dest=f.name, help=f.metadata["help"], **kw)
    return p


# --------------------------------------------------------------------------- data

@dataclass
class PairData:
    """Everything a batch is cut from, as tensors on the training device."""
    target_emb: torch.Tensor   # [R, 768] float16, one row per distinct target
    target_seq: torch.Tensor   # [R, max_len + 1] <bos> t .. <eos> <pad>
    target_len: np.ndarray     # [R] input positions
    pair_target: torch.Tensor  # [P] index into the targets
    pair_landed: torch.Tensor  # [P, 768] float16: ê
    pair_ids: torch.Tensor     # [P, hyp_len] hypothesis slot
    train: np.ndarray          # pair indices for training
    dev: np.ndarray            # pair indices for the dev loss


def load_pairs(pairs_dir: Path, sources: list[str], train_texts: list[str], train_emb: np.ndarray,
               tokenizer, cfg: corrector.Config, dev_frac: float, seed: int, device: torch.device,
               log=print) -> PairData:
    """The encoded pairs of `sources` (those present in the folder), tokenised, split by target row."""
    pairs = PairsDir(pairs_dir)
    rows, texts, landed = [], [], []
    for src in sources:
        if src not in pairs.manifest["sources"]:
            continue
        vecs, done = pairs.embeddings(src)
        keep = np.flatnonzero(done)
        lines = pairs.lines(src)
        rows.append(np.array([lines[i][0] for i in keep], dtype=np.int64))
        texts += [lines[i][1] for i in keep]
        landed.append(np.asarray(vecs[keep]))
        log(f"pairs: {len(keep):,} from {src}")
    if not texts:
        raise ValueError(f"no encoded pairs of sources {sources} in {pairs_dir}")
    rows = np.concatenate(rows)
    targets, pair_target = np.unique(rows, return_inverse=True)
    seqs, lengths = pack_sequences(tokenizer.encode([train_texts[r] for r in targets]), cfg.max_len,
                                   cfg.bos_id, cfg.eos_id, cfg.pad_id)
    rng = np.random.default_rng(seed)
    dev_targets = rng.random(len(targets)) < dev_frac
    is_dev = dev_targets[pair_target]
    t = lambda a, dtype=None: torch.as_tensor(a, device=device, dtype=dtype)  # noqa: E731
    return PairData(t(np.asarray(train_emb[targets]), torch.float16), t(seqs), lengths, t(pair_target),
                    t(np.concatenate(landed), torch.float16), t(corrector.hypothesis_ids(tokenizer, texts, cfg)),
                    np.flatnonzero(~is_dev), np.flatnonzero(is_dev))


def batch(data: PairData, idx: np.ndarray, cfg: corrector.Config, empty_frac: float = 0.0,
          gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(condition [B, cond_dim] float32, token sequence [B, L + 1]) for pair indices `idx`; a share
    `empty_frac` of the rows become an empty start (ê = 0, hypothesis "")."""
    i = torch.as_tensor(idx, device=data.pair_landed.device)
    tgt = data.pair_target[i]
    e, landed, ids = data.target_emb[tgt].float(), data.pair_landed[i].float(), data.pair_ids[i]
    if empty_frac > 0:
        empty = torch.rand(len(idx), device=e.device, generator=gen) < empty_frac
        landed = torch.where(empty[:, None], torch.zeros_like(landed), landed)
        blank = torch.full_like(ids, cfg.pad_id)
        blank[:, 0] = cfg.eos_id
        ids = torch.where(empty[:, None], blank, ids)
    L = int(data.target_len[tgt.cpu().numpy()].max())
    return corrector.condition(e, landed, ids), data.target_seq[tgt, : L + 1].long()


# --------------------------------------------------------------------------- model

def warm_start(model: corrector.CorrectorModel, source: torch.nn.Module) -> list[str]:
    """Copy the generative model's weights where names and shapes match (its `bridge` becomes the
    target projection); returns the corrector parameter names that were copied."""
    theirs = {k.replace("bridge.", "proj_target.", 1) if k.startswith("bridge.") else k: v
              for k, v in source.state_dict().items()}
    mine = model.state_dict()
    copied = [k for k, v in theirs.items() if k in mine and mine[k].shape == v.shape]
    model.load_state_dict({**mine, **{k: theirs[k] for k in copied}})
    return copied


def build_model(cfg: CorrectorTrainConfig, device: torch.device, log=print):
    """(model in train mode, tokenizer, saved train state or None)."""
    out = Path(cfg.out)
    if cfg.resume:
        if not (out / "train_state.pt").exists():
            raise FileNotFoundError(f"resume: no train_state.pt in {out}")
        model, tokenizer = corrector.load_model(out, device)
        saved = torch.load(out / "train_state.pt", map_location=device, weights_only=True)
        return model.train(), tokenizer, saved
    model_cfg = checkpoint.config_from_dict(corrector.Config, cfg.model, "--set")
    tokenizer = generative.BPETokenizer.load(corrector.TOKENIZER_DIR)
    checkpoint.check_tokenizer(tokenizer, model_cfg, f"the tokenizer in {corrector.TOKENIZER_DIR}")
    model = corrector.CorrectorModel(model_cfg)
    if cfg.init_from:
        source, _ = generative.load_model(Path(cfg.init_from))
        copied = warm_start(model, source)
        log(f"init from {cfg.init_from}: {sum(model.state_dict()[k].numel() for k in copied):,} of "
            f"{model.num_parameters():,} parameters copied ({len(copied)} tensors)")
    if model.num_parameters() > corrector.MAX_PARAMETERS:
        raise ValueError(f"corrector has {model.num_parameters():,} parameters; the limit is {corrector.MAX_PARAMETERS:,}")
    return model.to(device).train(), tokenizer, None


# --------------------------------------------------------------------------- evaluation

@torch.no_grad()
def dev_loss(model, data: PairData, device: torch.device, n: int = 2048, batch_size: int = 256) -> float | None:
    """Teacher-forced loss per token on the first n dev pairs (None without dev pairs)."""
    if len(data.dev) == 0:
        return None
    was = model.training
    model.eval()
    idx, total = data.dev[:n], 0.0
    for s in range(0, len(idx), batch_size):
        cond, seq = batch(data, idx[s:s + batch_size], model.cfg)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            total += sequence_loss(model, seq[:, :-1], seq[:, 1:], cond, model.cfg.pad_id).item() * len(seq)
    model.train(was)
    return total / len(idx)


class OneStep:
    """One correction step on `n` sentences of a split from a fixed start (module docstring)."""

    def __init__(self, split: str, n: int, start: str, device: torch.device):
        from decoders import get_decoder

        self.refs, target = load_dev(n, split)   # source by source, as `python -m eval --split` takes them
        self.target = target.float().numpy()
        start_decoder = get_decoder("generative" if start == "generative" else "phrase-bank", str(device))
        self.start = [row[0].text for row in start_decoder.decode(self.target, Sampling())]
        self.device = "cuda" if device.type == "cuda" else "cpu"
        self.landed = encode(self.start, strict=False, device=self.device)
        self.start_cos = (self.landed * self.target).sum(1)

    @torch.no_grad()
    def __call__(self, model, tokenizer, device: torch.device) -> dict:
        was = model.training
        model.eval()
        corr = corrector.Corrector(model, tokenizer, str(device))
        hyps = [h[0] for h in corr.propose(self.target, self.landed, self.start, Sampling(), 1)]
        model.train(was)
        cos = (encode(hyps, strict=False, device=self.device) * self.target).sum(1)
        return {"start_cos": float(self.start_cos.mean()), "step_cos": float(cos.mean()),
                "best_cos": float(np.maximum(cos, self.start_cos).mean()),
                "improved": float((cos > self.start_cos + 1e-6).mean()),
                "step_bleu": metrics.corpus_bleu(hyps, self.refs)[0],
                "step_exact": float(np.mean([metrics.exact_match(h, r) for h, r in zip(hyps, self.refs)])),
                "examples": [{"ref": r, "start": s, "step": h} for r, s, h in list(zip(self.refs, self.start, hyps))[:3]]}


# --------------------------------------------------------------------------- training

def train(cfg: CorrectorTrainConfig, quiet: bool = False,
          corpus: tuple[list[str], np.ndarray] | None = None) -> dict:
    """One training session; `corpus` (train texts, their embeddings) defaults to the train split
    and data/emb_train.npy. Returns the last train_log.jsonl record."""
    log = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer, saved = build_model(cfg, device, log)
    m = model.cfg
    train_texts, train_emb = corpus if corpus is not None else embedded_train()[:2]
    t0 = time.time()
    data = load_pairs(Path(cfg.pairs), cfg.sources.split(","), train_texts, train_emb, tokenizer, m,
                      cfg.dev_frac, cfg.seed, device, log)
    log(f"corrector: {model.num_parameters():,} parameters, {len(data.train):,} train / {len(data.dev):,} dev pairs "
        f"({len(data.target_len):,} targets), loaded in {time.time() - t0:.1f}s; device {device}")
    optimizer = make_optimizer(model, cfg, device, saved)
    state = {k: saved[k] for k in STATE_KEYS} if saved else dict(zip(STATE_KEYS, (0, 0, 0.0, 0)))
    one_step = OneStep(cfg.eval_split, cfg.eval_n, cfg.eval_start, device) \
        if cfg.eval_n and encoder_available() else None
    rng = np.random.default_rng(cfg.seed + state["step"])
    gen = torch.Generator(device=device).manual_seed(cfg.seed + state["step"])
    lengths = data.target_len[data.pair_target.cpu().numpy()[data.train]]
    batches: list = []
    window = {"loss": 0.0, "n": 0, "samples": 0, "t": time.time()}
    start = time.time()
    deadline = start + cfg.minutes * 60 if cfg.minutes else None
    lr = cfg.lr

    def evaluate_and_save(final: bool = False) -> dict:
        nonlocal window
        elapsed = state["elapsed_s"] + time.time() - start
        record = {"step": state["step"], "samples_seen": state["samples_seen"],
                  "epochs": round(state["samples_seen"] / max(1, len(data.train)), 3),
                  "train_loss": float(window["loss"]) / window["n"] if window["n"] else None, "lr": lr,
                  "samples_per_s": round(window["samples"] / max(1e-9, time.time() - window["t"]), 1),
                  "elapsed_s": round(elapsed, 1), "device": hardware(), "dev_loss": dev_loss(model, data, device)}
        if one_step is not None:
            record.update(one_step(model, tokenizer, device))
        with open(out / "train_log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        checkpoint.save(out, model, tokenizer, corrector.KIND)
        torch.save({"optimizer": optimizer.state_dict(), **state, "elapsed_s": elapsed,
                    "sessions": state["sessions"] + (1 if final else 0)}, out / "train_state.pt")
        cfg.save(out)
        log(f"step {record['step']} loss {record['train_loss'] or float('nan'):.3f} dev_loss {record['dev_loss'] or float('nan'):.3f}" +
            (f" one step: cos {record['start_cos']:.3f} -> {record['step_cos']:.3f} (best {record['best_cos']:.3f}, "
             f"improved {record['improved']:.0%}) | {record['examples'][0]}" if one_step is not None else ""))
        window = {"loss": 0.0, "n": 0, "samples": 0, "t": time.time()}
        return record

    if state["step"] == 0:
        evaluate_and_save()   # the starting point of the learning curve
    while state["step"] < cfg.steps and (deadline is None or time.time() < deadline):
        if not batches:
            batches = [data.train[b] for b in length_bucketed_batches(lengths, cfg.batch_size, rng)]
        idx = batches.pop()
        cond, seq = batch(data, idx, m, cfg.empty_frac, gen)
        time_frac = (time.time() - start) / (cfg.minutes * 60) if cfg.minutes else 0.0
        lr = lr_at(state["step"], cfg.steps, cfg.lr, cfg.warmup, time_frac=time_frac)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = sequence_loss(model, seq[:, :-1], seq[:, 1:], cond, m.pad_id, cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        state["step"] += 1
        state["samples_seen"] += len(idx)
        window["samples"] += len(idx)
        window["loss"] += loss.detach().float()
        window["n"] += 1
        if state["step"] % cfg.eval_every == 0 and state["step"] < cfg.steps:
            evaluate_and_save()
    return evaluate_and_save(final=True)


def learning_curve(log_path: Path) -> str:
    """train_log.jsonl as a markdown table (the card's learning curve)."""
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    f = lambda v, fmt: "" if v is None else format(v, fmt)  # noqa: E731
    out = ["| step | samples | epochs | train loss | dev loss | one step: start cos | after | best of both | improved |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['step']:,} | {r['samples_seen']:,} | {r['epochs']:.2f} | {f(r.get('train_loss'), '.3f')} | "
                   f"{f(r.get('dev_loss'), '.3f')} | {f(r.get('start_cos'), '.3f')} | {f(r.get('step_cos'), '.3f')} | "
                   f"{f(r.get('best_cos'), '.3f')} | {f(r.get('improved'), '.0%')} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["curve"]:   # python -m training.corrector curve assets/corrector
        if len(argv) != 2:
            print("usage: python -m training.corrector curve CHECKPOINT_DIR", file=sys.stderr)
            return 2
        print(learning_curve(Path(argv[1]) / "train_log.jsonl"))
        return 0
    p = build_parser()
    a = p.parse_args(argv)
    try:
        values = {f.name: getattr(a, f.name) for f in fields(CorrectorTrainConfig)}
        values["model"] = parse_key_values(values["model"]) if isinstance(values["model"], list) else values["model"]
        cfg = CorrectorTrainConfig(**values)
    except ValueError as e:
        p.error(str(e))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    record = train(cfg)
    print(json.dumps({k: v for k, v in record.items() if k != "examples"}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
