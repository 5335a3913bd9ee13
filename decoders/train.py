"""Train the token decoders (generative, ret) on the corpus's train split.

    python -m decoders.train generative --out assets/generative --minutes 45          # CPU defaults
    python -m decoders.train generative --out assets/generative --resume --minutes 30 # go on later
    python -m decoders.train ret --out assets/ret --device cuda --batch-size 1024 --lr 3e-3

Data is tokenised once, batches are bucketed by length (little padding), Gaussian
noise is added to the input embeddings, and every `--eval-every` steps the model is
scored on dev sentences (greedy BLEU, and round-trip cosine when the encoder is
available). A checkpoint (weights + config + tokenizer + optimizer state) is written
at every evaluation and at the end, so a run can be continued with `--resume`.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .base import Sampling
from .corpus import DATA_DIR, load_split

KINDS = ("generative", "ret")


def model_kind(kind: str):
    """(Config class, model class, tokenizer class) for a trainable decoder."""
    if kind == "generative":
        from .generative import BPETokenizer, Config, GenerativeDecoderModel
        return Config, GenerativeDecoderModel, BPETokenizer
    if kind == "ret":
        from .ret import RET, ByteTokenizer, RETConfig
        return RETConfig, RET, ByteTokenizer
    raise ValueError(f"unknown model kind {kind!r}; trainable kinds: {', '.join(KINDS)}")


def load_embedding_file(path: Path) -> np.ndarray:
    """float16 [N, 768] from a .npy, or from a product-quantised pack (.npz: codes, centroids)."""
    path = Path(path)
    if path.suffix == ".npz":
        pack = np.load(path)
        codes, cent = pack["codes"], pack["centroids"].astype(np.float32)  # [N, M], [M, 256, dsub]
        out = np.empty((codes.shape[0], cent.shape[0] * cent.shape[2]), dtype=np.float16)
        for start in range(0, len(codes), 16384):
            c = codes[start:start + 16384]
            v = cent[np.arange(cent.shape[0])[None, :], c].reshape(len(c), -1)
            out[start:start + 16384] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out
    return np.load(path).astype(np.float16)


def pack_sequences(token_lists: list[list[int]], max_len: int, bos: int, eos: int, pad: int):
    """[N, max_len + 1] int array of <bos> t_1 .. t_n <eos> (truncated to max_len tokens), and lengths."""
    seqs = np.full((len(token_lists), max_len + 1), pad, dtype=np.int32)
    lengths = np.empty(len(token_lists), dtype=np.int32)
    for i, ids in enumerate(token_lists):
        s = [bos] + ids[: max_len - 1] + [eos]
        seqs[i, : len(s)] = s
        lengths[i] = len(s) - 1  # input positions
    return seqs, lengths


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, sort by length with jitter, cut into batches, shuffle the batch order."""
    order = np.argsort(lengths + rng.random(len(lengths)) * 2.0, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def add_noise(emb: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Unit vectors + isotropic Gaussian noise of total norm ~std, renormalised (cos to clean ~ 1/sqrt(1+std^2))."""
    if std <= 0:
        return emb
    noise = torch.randn(emb.shape, device=emb.device, generator=generator) * (std / math.sqrt(emb.shape[1]))
    return F.normalize(emb + noise, dim=-1)


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


def encoder_available() -> bool:
    from .encoder import resolve_model_dir
    try:
        return not resolve_model_dir().startswith("sentence-transformers/")
    except FileNotFoundError:
        return False


@torch.no_grad()
def evaluate(model, tokenizer, texts: list[str], emb: torch.Tensor, seqs, lengths, pad_id: int,
             device, batch_size: int = 128, with_cosine: bool = True) -> dict:
    """Teacher-forced dev loss, greedy BLEU, and round-trip cosine when the encoder is here."""
    import sacrebleu

    model.eval()
    cfg = model.cfg
    from .generative import generate
    hyps, losses = [], []
    budget = cfg.max_len - 1
    for s in range(0, len(texts), batch_size):
        e = emb[s:s + batch_size].to(device)
        L = int(lengths[s:s + batch_size].max())
        seq = torch.as_tensor(seqs[s:s + batch_size, : L + 1], device=device).long()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            losses.append(sequence_loss(model, seq[:, :-1], seq[:, 1:], e, pad_id).item() * len(e))
            ids, _ = generate(model, e, Sampling(max_new_tokens=budget), cfg.bos_id, cfg.eos_id, budget)
        hyps += [tokenizer.decode(i) for i in ids]
    out = {"dev_loss": sum(losses) / len(texts),
           "dev_bleu": sacrebleu.corpus_bleu(hyps, [texts]).score,
           "dev_exact": float(np.mean([h.strip().lower() == t.strip().lower() for h, t in zip(hyps, texts)]))}
    if with_cosine:
        from .encoder import encode
        safe = [h if h.strip() else "." for h in hyps]  # an empty output is scored as "."
        out["dev_cos"] = float((encode(safe) * emb.float().numpy()).sum(1).mean())
    out["examples"] = [{"ref": t, "hyp": h} for t, h in list(zip(texts, hyps))[:3]]
    model.train()
    return out


def save_checkpoint(out: Path, model, tokenizer, optimizer, state: dict, args: dict):
    from .generative import save_model
    save_model(model, out)
    tokenizer.save(out)
    torch.save({"optimizer": optimizer.state_dict(), **state}, out / "train_state.pt")
    (out / "train_args.json").write_text(json.dumps(args, indent=2) + "\n")


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def train(kind: str, out: Path, *, resume: bool = False, overrides: dict | None = None, steps: int = 20000,
          minutes: float | None = None, batch_size: int = 128, lr: float = 3e-3, weight_decay: float = 0.1,
          warmup: int = 300, clip: float = 1.0, label_smoothing: float = 0.1, noise: float = 0.25,
          eval_every: int = 1000, eval_n: int = 256, embeddings: Path | None = None, device: str = "auto",
          threads: int | None = None, seed: int = 0, limit: int | None = None, snapshot_at: tuple = (),
          quiet: bool = False) -> dict:
    from tqdm import tqdm

    Cfg, Model, Tok = model_kind(kind)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    args = {k: (str(v) if isinstance(v, Path) else v) for k, v in dict(
        kind=kind, steps=steps, minutes=minutes, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        warmup=warmup, clip=clip, label_smoothing=label_smoothing, noise=noise, eval_every=eval_every,
        eval_n=eval_n, embeddings=embeddings, device=str(dev), seed=seed, limit=limit).items()}

    texts = load_split("train")
    emb_path = Path(embeddings or DATA_DIR / "emb_train.npy")
    if not emb_path.exists():
        raise FileNotFoundError(f"{emb_path} not found; run `python -m decoders.corpus embed --split train`")
    emb_np = load_embedding_file(emb_path)
    if emb_np.shape != (len(texts), 768):
        raise ValueError(f"{emb_path} has shape {emb_np.shape}; expected {(len(texts), 768)} for the train split")
    if limit:
        texts, emb_np = texts[:limit], emb_np[:limit]

    state = {"step": 0, "samples_seen": 0, "elapsed_s": 0.0, "sessions": 0}
    if resume and (out / "train_state.pt").exists():
        from .generative import load_model
        model = load_model(out, Model, Cfg, device=str(dev)).train()
        tokenizer = Tok.load(out)
        saved = torch.load(out / "train_state.pt", map_location=dev, weights_only=True)
        state = {k: saved[k] for k in state}
        if overrides:
            print(f"--resume: model settings come from {out}/config.json; ignoring {overrides}", file=sys.stderr)
    else:
        cfg = Cfg(**(overrides or {}))
        if kind == "generative":
            from .generative import BPETokenizer, train_tokenizer
            tokenizer = BPETokenizer(train_tokenizer(texts, cfg.vocab_size))
        else:
            tokenizer = Tok()
        model = Model(cfg).to(dev).train()
        saved = None
    cfg = model.cfg
    n_params = model.num_parameters()

    t0 = time.time()
    seqs, lengths = pack_sequences(tokenizer.encode(texts), cfg.max_len, cfg.bos_id, cfg.eos_id, cfg.pad_id)
    dev_texts = load_split("dev")[:eval_n]
    dev_seqs, dev_lengths = pack_sequences(tokenizer.encode(dev_texts), cfg.max_len, cfg.bos_id, cfg.eos_id, cfg.pad_id)
    dev_emb_path = DATA_DIR / "emb_dev.npy"
    if dev_emb_path.exists():
        dev_emb = torch.as_tensor(np.load(dev_emb_path)[:eval_n].astype(np.float32))
    else:
        from .encoder import encode
        dev_emb = torch.as_tensor(encode(dev_texts))
    with_cos = encoder_available()
    if not quiet:
        print(f"{kind}: {n_params:,} parameters, {len(texts):,} train texts, mean length "
              f"{lengths.mean():.1f} tokens, tokenised in {time.time() - t0:.1f}s; device {dev}; "
              f"dev cosine {'on' if with_cos else 'off (encoder not available here)'}", file=sys.stderr)

    seqs_t = torch.as_tensor(seqs, device=dev)
    emb_t = torch.as_tensor(emb_np, device=dev)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=lr, betas=(0.9, 0.95), fused=dev.type == "cuda")
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
    rng = np.random.default_rng(seed + state["step"])
    gen = torch.Generator(device=dev).manual_seed(seed + state["step"])
    log_path = out / "train_log.jsonl"
    session_start, step = time.time(), state["step"]
    end_step = steps
    batches: list = []
    run_loss, run_n, window_t, window_samples = 0.0, 0, time.time(), 0
    last = {}
    bar = tqdm(total=end_step, initial=step, desc=f"train {kind}", unit="step", disable=quiet, mininterval=5)

    def checkpoint_and_eval(final: bool = False):
        nonlocal run_loss, run_n, window_t, window_samples, last
        elapsed = state["elapsed_s"] + time.time() - session_start
        metrics = evaluate(model, tokenizer, dev_texts, dev_emb, dev_seqs, dev_lengths, cfg.pad_id, dev,
                           with_cosine=with_cos)
        rate = window_samples / max(1e-9, time.time() - window_t)
        record = {"step": step, "samples_seen": state["samples_seen"] + 0,
                  "epochs": round(state["samples_seen"] / len(texts), 3),
                  "train_loss": float(run_loss) / max(1, run_n), "lr": current_lr,
                  "samples_per_s": round(rate, 1), "elapsed_s": round(elapsed, 1), "device": hardware(),
                  **metrics}
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        save_checkpoint(out, model, tokenizer, optimizer,
                        {**state, "step": step, "elapsed_s": elapsed,
                         "sessions": state["sessions"] + (1 if final else 0)}, args)
        if not quiet:
            ex = metrics["examples"][0]
            tqdm.write(f"step {step} loss {record['train_loss']:.3f} dev_loss {metrics['dev_loss']:.3f} "
                       f"bleu {metrics['dev_bleu']:.1f} cos {metrics.get('dev_cos', float('nan')):.3f} "
                       f"{rate:.0f} samples/s | {ex['ref']!r} -> {ex['hyp']!r}", file=sys.stderr)
        run_loss, run_n, window_t, window_samples = 0.0, 0, time.time(), 0
        last = record

    deadline = session_start + minutes * 60 if minutes else None
    current_lr = lr
    while step < end_step and (deadline is None or time.time() < deadline):
        if not batches:
            batches = length_bucketed_batches(lengths, batch_size, rng)
        b = batches.pop()
        L = int(lengths[b].max())
        idx = torch.as_tensor(b, device=dev)
        seq = seqs_t[idx, : L + 1].long()
        e = add_noise(emb_t[idx].float(), noise, gen)
        time_frac = (time.time() - session_start) / (minutes * 60) if minutes else 0.0
        current_lr = lr_at(step, end_step, lr, warmup, time_frac=time_frac)
        for group in optimizer.param_groups:
            group["lr"] = current_lr
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = sequence_loss(model, seq[:, :-1], seq[:, 1:], e, cfg.pad_id, label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        step += 1
        state["samples_seen"] += len(idx)
        window_samples += len(idx)
        run_loss += loss.detach().float()  # a device tensor: no sync per step
        run_n += 1
        bar.update(1)
        if step in snapshot_at:
            from .generative import save_model
            save_model(model, out / "snapshots" / f"step{step:07d}")
        if step % eval_every == 0 and step < end_step:
            checkpoint_and_eval()
    bar.close()
    state["step"] = step
    checkpoint_and_eval(final=True)
    return last


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set takes key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def score(directories: list[Path], n: int = 256, threads: int = 2) -> list[dict]:
    """Dev metrics of saved checkpoints (the trainer's own evaluation, on the first n dev
    sentences with their exact embeddings): python -m decoders.train score DIR [DIR ...]"""
    from .corpus import load_embeddings
    from .generative import load_model

    torch.set_num_threads(threads)
    texts = load_split("dev")[:n]
    emb = torch.as_tensor(load_embeddings("dev")[:n].astype(np.float32))
    rows = []
    for d in directories:
        cfg_json = json.loads((Path(d) / "config.json").read_text())
        Cfg, Model, Tok = model_kind("ret" if "n_loops" in cfg_json else "generative")
        model, tok = load_model(d, Model, Cfg), Tok.load(d)
        seqs, lengths = pack_sequences(tok.encode(texts), model.cfg.max_len, model.cfg.bos_id, model.cfg.eos_id,
                                       model.cfg.pad_id)
        m = evaluate(model, tok, texts, emb, seqs, lengths, model.cfg.pad_id, torch.device("cpu"),
                     with_cosine=encoder_available())
        rows.append({"checkpoint": str(d), "params": model.num_parameters(),
                     **{k: round(v, 4) for k, v in m.items() if k != "examples"}})
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["score"]:
        rows = score([Path(d) for d in argv[1:]])
        keys = list(rows[0])
        print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for r in rows:
            print("| " + " | ".join(str(r[k]) for k in keys) + " |")
        return
    p = argparse.ArgumentParser(prog="python -m decoders.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder (e.g. assets/generative)")
    p.add_argument("--resume", action="store_true", help="continue from --out's checkpoint and optimizer state")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model config fields, e.g. gate=pagated")
    p.add_argument("--steps", type=int, default=20000, help="total steps of the schedule (over all sessions)")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop (and checkpoint) after this many minutes; the LR schedule then ends on time")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--noise", type=float, default=0.25, help="embedding noise norm (cos to clean ~ 1/sqrt(1+n^2))")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-n", type=int, default=256, help="dev sentences scored at each evaluation")
    p.add_argument("--embeddings", type=Path, default=None, help="train embeddings (.npy, or PQ pack .npz)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use only the first N train texts (smoke tests)")
    p.add_argument("--snapshot-at", type=int, nargs="*", default=[], help="steps at which to keep a weights copy")
    a = p.parse_args(argv)
    if a.resume and not (a.out / "train_state.pt").exists():
        p.error(f"--resume: no train_state.pt in {a.out}")
    rec = train(a.kind, a.out, resume=a.resume, overrides=parse_overrides(a.set), steps=a.steps, minutes=a.minutes,
                batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, warmup=a.warmup,
                label_smoothing=a.label_smoothing, noise=a.noise, eval_every=a.eval_every, eval_n=a.eval_n,
                embeddings=a.embeddings, device=a.device, threads=a.threads, seed=a.seed, limit=a.limit,
                snapshot_at=tuple(a.snapshot_at))
    print(json.dumps({k: v for k, v in rec.items() if k != "examples"}))


if __name__ == "__main__":
    main()
