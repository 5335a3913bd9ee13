"""Train the token decoders (generative, RET) on the corpus's train split.

The train rows embedded so far (WordNet + the open sources; `wordnet_weight` copies of each
WordNet row per epoch, `data_fraction` of the open rows) and, with `kd`, the teacher's outputs
for them (training/data.py) are tokenised once, batches are bucketed by length (little
padding), Gaussian noise is added to the input embeddings, and every `eval_every` steps the
model is scored on each dev set (`dev_splits`: WordNet dev and open-dev) with `eval.metrics`
(the benchmark's definitions: corpus BLEU, exact match, round-trip cosine when the encoder is
available; an empty output is scored as it is, see eval/metrics.py). A checkpoint
(decoders/checkpoint.py: config + weights + tokenizer, plus the optimizer state in
train_state.pt and the TrainConfig in train_args.json) is written at every evaluation and at
the end, so a run can be continued with `resume`.
"""
from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from decoders import checkpoint, generative, ret
from decoders.base import Sampling
from decoders.corpus import DATA_DIR
from decoders.encoder import is_available as encoder_available
from decoders.transformer import generate
from eval import metrics

from .config import TrainConfig
from .data import (Examples, add_noise, build_examples, epoch_examples, length_bucketed_batches, load_dev,
                   load_train_rows, pack_sequences, read_kd)

# model kind -> (config class, model class, tokenizer class)
MODELS = {
    generative.KIND: (generative.Config, generative.GenerativeDecoderModel, generative.BPETokenizer),
    ret.KIND: (ret.RETConfig, ret.RET, ret.ByteTokenizer),
}
STATE_KEYS = ("step", "samples_seen", "elapsed_s", "sessions")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def lr_at(step: int, total: int, lr: float, warmup: int, min_frac: float = 0.1, time_frac: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to min_frac * lr. Progress is the larger of the
    step fraction and `time_frac` (the elapsed share of --minutes), so a run limited by
    time still ends its schedule."""
    if step < warmup:
        return lr * (step + 1) / warmup
    p = min(1.0, max((step - warmup) / max(1, total - warmup), time_frac))
    return lr * (min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def sequence_loss(model, inp, tgt, emb, pad_id: int, label_smoothing: float = 0.0):
    logits = model(inp, emb=emb)
    return F.cross_entropy(logits.float().flatten(0, 1), tgt.flatten().long(), ignore_index=pad_id,
                           label_smoothing=label_smoothing)


@torch.no_grad()
def evaluate(model, tokenizer, texts: list[str], emb: torch.Tensor, device: torch.device, batch_size: int = 128,
             with_cosine: bool = True) -> dict:
    """Teacher-forced dev loss (per token, no label smoothing) and the greedy outputs scored with
    eval.metrics: dev_bleu (corpus BLEU), dev_exact, and dev_cos (round-trip cosine) when `with_cosine`."""
    was_training = model.training
    model.eval()
    cfg = model.cfg
    seqs, lengths = pack_sequences(tokenizer.encode(texts), cfg.max_len, cfg.bos_id, cfg.eos_id, cfg.pad_id)
    budget = cfg.max_len - 1
    hyps, losses = [], []
    for s in range(0, len(texts), batch_size):
        e = emb[s:s + batch_size].to(device)
        L = int(lengths[s:s + batch_size].max())
        seq = torch.as_tensor(seqs[s:s + batch_size, : L + 1], device=device).long()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            losses.append(sequence_loss(model, seq[:, :-1], seq[:, 1:], e, cfg.pad_id).item() * len(e))
            ids, _ = generate(model, e, Sampling(max_new_tokens=budget), cfg.bos_id, cfg.eos_id, budget)
        hyps += [tokenizer.decode(i) for i in ids]
    out = {"dev_loss": sum(losses) / len(texts), "dev_bleu": metrics.corpus_bleu(hyps, texts)[0],
           "dev_exact": float(np.mean([metrics.exact_match(h, t) for h, t in zip(hyps, texts)]))}
    if with_cosine:
        out["dev_cos"] = float(metrics.roundtrip_cosine(hyps, emb.float().numpy()).mean())
    out["examples"] = [{"ref": t, "hyp": h} for t, h in list(zip(texts, hyps))[:3]]
    model.train(was_training)
    return out


def build_model(cfg: TrainConfig, texts: list[str], device: torch.device):
    """(model in train mode, tokenizer, saved train state or None): resumed from cfg.out, started
    from cfg.init's weights (fine-tuning: new optimizer and schedule), or new from the model config
    fields (cfg.model_config, then cfg.model) with cfg.tokenizer or a new BPE tokenizer trained on `texts`."""
    Config, Model, Tokenizer = MODELS[cfg.kind]
    out = Path(cfg.out)
    if cfg.resume:
        if not (out / "train_state.pt").exists():
            raise FileNotFoundError(f"resume: no train_state.pt in {out}")
        model, tokenizer = checkpoint.load(out, cfg.kind, Config, Model, Tokenizer, device)
        saved = torch.load(out / "train_state.pt", map_location=device, weights_only=True)
        if cfg.model:
            print(f"resume: model settings come from {out}/config.json; ignoring {cfg.model}", file=sys.stderr)
        return model.train(), tokenizer, saved
    if cfg.init:
        kind = checkpoint.read_config(cfg.init)["kind"]
        if kind != cfg.kind:
            raise ValueError(f"--init {cfg.init} holds a {kind!r} checkpoint, not {cfg.kind!r}")
        model, tokenizer = checkpoint.load(Path(cfg.init), cfg.kind, Config, Model, Tokenizer, device)
        return model.train(), tokenizer, None
    model_cfg = checkpoint.config_from_dict(Config, cfg.model_fields(), "--model-config/--set")
    if cfg.tokenizer:
        path = Path(cfg.tokenizer)
        tokenizer = Tokenizer.load(path.parent if path.suffix == ".json" else path)
        checkpoint.check_tokenizer(tokenizer, model_cfg, f"--tokenizer {path}")
    else:
        tokenizer = Tokenizer.train(texts, model_cfg)
        checkpoint.check_tokenizer(tokenizer, model_cfg, f"the tokenizer trained on {len(texts)} texts")
    return Model(model_cfg).to(device).train(), tokenizer, None


def make_optimizer(model, cfg: TrainConfig, device: torch.device, saved: dict | None) -> torch.optim.Optimizer:
    """AdamW, weight decay on matrices only; state restored from `saved` when resuming."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.lr, betas=(0.9, 0.95), fused=device.type == "cuda")
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
    return optimizer


class Trainer:
    """One training session over in-memory data; `run()` trains until cfg.steps or cfg.minutes.

    `data`: the examples (training/data.py); `dev`: {split name: (texts, exact embeddings)}, the
    first one logged as dev_*, the others as <name>_* (open-dev -> open_dev_*)."""

    def __init__(self, cfg: TrainConfig, data: Examples, dev: dict[str, tuple[list[str], torch.Tensor]],
                 quiet: bool = False):
        self.cfg, self.quiet, self.out = cfg, quiet, Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(cfg.device)
        references = [t for t, kd in zip(data.texts, data.is_kd) if not kd]
        self.model, self.tokenizer, saved = build_model(cfg, references, self.device)
        self.optimizer = make_optimizer(self.model, cfg, self.device, saved)
        self.state = {k: saved[k] for k in STATE_KEYS} if saved else dict(zip(STATE_KEYS, (0, 0, 0.0, 0)))
        m = self.model.cfg
        t0 = time.time()
        seqs, self.lengths = pack_sequences(self.tokenizer.encode(data.texts), m.max_len, m.bos_id, m.eos_id, m.pad_id)
        self.seqs = torch.as_tensor(seqs, device=self.device)
        self.emb = torch.as_tensor(data.emb, device=self.device)
        self.emb_index = torch.as_tensor(data.emb_index, device=self.device)
        self.weight = data.weight
        self.n_train, self.dev, self.data_summary = data.n_rows, dev, data.summary()
        self.with_cos = encoder_available()
        self.rng = np.random.default_rng(cfg.seed + self.state["step"])
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed + self.state["step"])
        self.batches: list = []
        self.lr = cfg.lr
        self.window = {"loss": 0.0, "n": 0, "samples": 0, "t": time.time()}
        if not quiet:
            print(f"{cfg.kind}: {self.model.num_parameters():,} parameters, data {self.data_summary}, mean length "
                  f"{self.lengths.mean():.1f} tokens, tokenised in {time.time() - t0:.1f}s; device {self.device}; "
                  f"dev cosine {'on' if self.with_cos else 'off (encoder not available here)'}", file=sys.stderr)

    def train_step(self, time_frac: float) -> None:
        """One optimizer step on the next length-bucketed batch."""
        cfg, m = self.cfg, self.model.cfg
        while not self.batches:  # (an epoch of fractional weights can come out empty: draw again)
            epoch = epoch_examples(self.weight, self.rng)
            self.batches = [epoch[b] for b in length_bucketed_batches(self.lengths[epoch], cfg.batch_size, self.rng)]
        b = self.batches.pop()
        idx = torch.as_tensor(b, device=self.device)
        seq = self.seqs[idx, : int(self.lengths[b].max()) + 1].long()
        e = add_noise(self.emb[self.emb_index[idx]].float(), cfg.noise, self.gen)
        self.lr = lr_at(self.state["step"], cfg.steps, cfg.lr, cfg.warmup, time_frac=time_frac)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            loss = sequence_loss(self.model, seq[:, :-1], seq[:, 1:], e, m.pad_id, cfg.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
        self.optimizer.step()
        self.state["step"] += 1
        self.state["samples_seen"] += len(idx)
        self.window["samples"] += len(idx)
        self.window["loss"] += loss.detach().float()  # a device tensor: no sync per step
        self.window["n"] += 1

    def evaluate_and_save(self, session_start: float, final: bool = False) -> dict:
        """Score on dev, append the record to train_log.jsonl, write the checkpoint; returns the record."""
        elapsed = self.state["elapsed_s"] + time.time() - session_start
        scores = {}
        for i, (split, (texts, emb)) in enumerate(self.dev.items()):
            s = evaluate(self.model, self.tokenizer, texts, emb, self.device, with_cosine=self.with_cos)
            prefix = "dev_" if i == 0 else split.replace("-", "_") + "_"  # open-dev: open_dev_loss, ...
            scores.update({prefix + k.removeprefix("dev_"): v for k, v in s.items()})
        w = self.window
        record = {"step": self.state["step"], "samples_seen": self.state["samples_seen"],
                  "epochs": round(self.state["samples_seen"] / self.data_summary["copies_per_epoch"], 3),
                  "train_loss": float(w["loss"]) / max(1, w["n"]), "lr": self.lr,
                  "samples_per_s": round(w["samples"] / max(1e-9, time.time() - w["t"]), 1),
                  "elapsed_s": round(elapsed, 1), "device": hardware(), "data": self.data_summary, **scores}
        with open(self.out / "train_log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        state = {**self.state, "elapsed_s": elapsed, "sessions": self.state["sessions"] + (1 if final else 0)}
        checkpoint.save(self.out, self.model, self.tokenizer, self.cfg.kind)
        torch.save({"optimizer": self.optimizer.state_dict(), **state}, self.out / "train_state.pt")
        self.cfg.save(self.out)
        if not self.quiet:
            ex = scores["dev_examples"][0]
            tqdm.write(f"step {record['step']} loss {record['train_loss']:.3f} dev_loss {scores['dev_loss']:.3f} "
                       f"bleu {scores['dev_bleu']:.1f} cos {scores.get('dev_cos', float('nan')):.3f} "
                       f"{record['samples_per_s']:.0f} samples/s | {ex['ref']!r} -> {ex['hyp']!r}", file=sys.stderr)
        self.window = {"loss": 0.0, "n": 0, "samples": 0, "t": time.time()}
        return record

    def run(self) -> dict:
        """Train until cfg.steps (over all sessions) or cfg.minutes (this session); returns the last record."""
        cfg = self.cfg
        start = time.time()
        deadline = start + cfg.minutes * 60 if cfg.minutes else None
        bar = tqdm(total=cfg.steps, initial=self.state["step"], desc=f"train {cfg.kind}", unit="step",
                   disable=self.quiet, mininterval=5)
        while self.state["step"] < cfg.steps and (deadline is None or time.time() < deadline):
            self.train_step(time_frac=(time.time() - start) / (cfg.minutes * 60) if cfg.minutes else 0.0)
            bar.update(1)
            step = self.state["step"]
            if step in cfg.snapshot_at:
                checkpoint.save(self.out / "snapshots" / f"step{step:07d}", self.model, self.tokenizer, cfg.kind)
            if step % cfg.eval_every == 0 and step < cfg.steps:
                self.evaluate_and_save(start)
        bar.close()
        return self.evaluate_and_save(start, final=True)


def load_examples(cfg: TrainConfig) -> Examples:
    """The train examples of a run: embedded train rows (cfg.embeddings or cfg.data_dir), selected and
    weighted by cfg.data_fraction / cfg.limit / cfg.wordnet_weight, with cfg.kd's teacher outputs."""
    rows, emb = load_train_rows(cfg.embeddings, data_dir(cfg))
    kd = read_kd(Path(cfg.kd)) if cfg.kd else None
    return build_examples(rows, emb, cfg.wordnet_weight, cfg.data_fraction, cfg.limit, kd, cfg.kd_weight)


def data_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.data_dir) if cfg.data_dir else DATA_DIR


def train(cfg: TrainConfig, quiet: bool = False) -> dict:
    """Load the train examples and cfg.eval_n sentences of each dev split, then run a session."""
    data = load_examples(cfg)
    dev = {split: load_dev(cfg.eval_n, split, data_dir(cfg)) for split in cfg.dev_splits}
    return Trainer(cfg, data, dev, quiet).run()


def score(directories: list[Path], n: int = 256, splits: tuple[str, ...] = ("dev", "open-dev")) -> list[dict]:
    """Dev metrics of saved checkpoints (the trainer's evaluation on the first n sentences of each
    split, with their exact embeddings), one row per checkpoint and split; the model kind is read
    from each config.json."""
    dev = {split: load_dev(n, split) for split in splits}
    rows = []
    for d in directories:
        kind = checkpoint.read_config(d)["kind"]
        if kind not in MODELS:
            raise ValueError(f"{d}: model kind {kind!r} is not trainable; trainable kinds: {', '.join(MODELS)}")
        model, tok = checkpoint.load(d, kind, *MODELS[kind])
        for split, (texts, emb) in dev.items():
            m = evaluate(model, tok, texts, emb, torch.device("cpu"), with_cosine=encoder_available())
            rows.append({"checkpoint": str(d), "split": split, "params": model.num_parameters(),
                         **{k: round(v, 4) for k, v in m.items() if k != "examples"}})
    return rows
