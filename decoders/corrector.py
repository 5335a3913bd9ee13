"""Corrector: rewrites a hypothesis so that its embedding lands closer to the target (vec2text).

The model reads the target embedding e, the embedding ê of the current hypothesis h (h
re-encoded with all-mpnet-base-v2), their difference e - ê, and the tokens of h; it writes a
new text, trained with cross-entropy on the true text. Each of e, ê and e - ê has its own
projection (an `EmbeddingToTextBridge`: 768 -> hidden (GELU) -> `n_prefix` vectors), and
the hypothesis sits in a fixed slot of `hyp_len` tokens (its BPE ids, <eos>, then <pad>),
so the whole condition is one prefix of fixed length, filled in one pass:

    [e: n_prefix] [ê: n_prefix] [e - ê: n_prefix] [h_1 .. h_m <eos> <pad> ..: hyp_len] <bos> t_1 .. t_n
                                                                   predicts   t_1 .. t_n <eos>

The hypothesis slot uses the decoder's token embeddings plus a learned "hypothesis" vector,
so hypothesis tokens and output tokens share a vocabulary but not a role. The target's
projection can also add a per-layer signal (as the generative decoder does), which lets a
corrector start from the generative decoder's weights (`training/corrector.py --init-from`).

Conditioning input. `generate` (decoders/transformer.py) drives any token model through
`forward(tokens, emb=..., cache=...)`, repeating `emb` row-wise for several samples. The
corrector's `emb` is therefore one float32 row per hypothesis carrying everything it needs:

    cond = [e (768) | ê (768) | hypothesis token ids (hyp_len), stored as floats | 2**24 - 1]

(`condition()` builds it). Token ids are exact in float32, not in bfloat16 (257 becomes 256);
the last column, 2**24 - 1, is exact in float32 only, so the model can tell a condition that
went through a lower precision (it raises), and it also checks that the ids are whole numbers
in the vocabulary. For an empty start, ê is the zero vector and h is "".
Without encoder feedback (the ablation), ê = e and e - ê = 0.

`Corrector` is the hybrid decoder's `Proposer` (decoders/hybrid.py): `propose(target, landed,
texts, sampling, n)` returns n corrected texts per hypothesis, sampled with the shared
sampling function (temperature 0: greedy). Checkpoint: decoders/checkpoint.py, kind
"corrector", with the generative decoder's BPE tokenizer (assets/generative/tokenizer.json).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from . import checkpoint
from .base import EMBED_DIM, Sampling
from .generative import BPETokenizer
from .transformer import GATES, Block, EmbeddingToTextBridge, KVCache, RMSNorm, generate, init_weights, precompute_rope

ROOT = Path(__file__).resolve().parent.parent
ASSET_DIR = ROOT / "assets" / "corrector"
TOKENIZER_DIR = ROOT / "assets" / "generative"   # the corrector reads and writes the generative BPE vocabulary
KIND = "corrector"  # config.json "kind"
MAX_PARAMETERS = 5_000_000
CANARY = float(2 ** 24 - 1)   # last column of the condition: exact in float32, not in float16 or bfloat16


@dataclass
class Config:
    vocab_size: int = 2048
    d_model: int = 192
    n_layers: int = 3
    n_heads: int = 4
    ffn_hidden: int = 400
    gate: str = "pagated"         # swiglu | geglu | glu | pagated (as the generative decoder)
    pa_alpha: float = 0.5
    pa_learn_alpha: bool = True
    n_prefix: int = 4             # prefix vectors from each of e, ê and e - ê
    proj_hidden: int = 192        # hidden width of each projection
    per_layer: bool = True        # the target projection also adds a signal at every block
    hyp_len: int = 32             # hypothesis slot in tokens (<eos> included); longer hypotheses are cut
    max_len: int = 48             # corrected text in tokens, <bos> included
    embed_dim: int = EMBED_DIM
    rope_theta: float = 10000.0
    dropout: float = 0.0
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self):
        if self.gate not in GATES:
            raise ValueError(f"unknown gate {self.gate!r}; valid gates: {', '.join(GATES)}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model {self.d_model} must split into {self.n_heads} heads of even size (RoPE)")
        if self.hyp_len < 1 or self.max_len < 2 or self.n_prefix < 1:
            raise ValueError(f"hyp_len >= 1, max_len >= 2 and n_prefix >= 1 required, got "
                             f"{self.hyp_len}, {self.max_len}, {self.n_prefix}")

    @property
    def cond_dim(self) -> int:
        """Width of the conditioning input: e, ê, hypothesis ids, the float32 canary."""
        return 2 * self.embed_dim + self.hyp_len + 1

    @property
    def prefix_len(self) -> int:
        """Positions before <bos>: three projections and the hypothesis slot."""
        return 3 * self.n_prefix + self.hyp_len


class CorrectorModel(nn.Module):
    """Token model driven by `generate`: `forward(tokens, emb=cond, cache=...)` -> logits [B, T, V]
    for the token positions; with `emb` the prefix built from the condition goes first."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_heads, cfg.ffn_hidden, cfg.gate, cfg.dropout, cfg.pa_alpha, cfg.pa_learn_alpha)
            for _ in range(cfg.n_layers))
        signals = cfg.n_layers if cfg.per_layer else 0
        self.proj_target = EmbeddingToTextBridge(cfg.embed_dim, cfg.proj_hidden, cfg.n_prefix, cfg.d_model, signals)
        self.proj_landed = EmbeddingToTextBridge(cfg.embed_dim, cfg.proj_hidden, cfg.n_prefix, cfg.d_model)
        self.proj_diff = EmbeddingToTextBridge(cfg.embed_dim, cfg.proj_hidden, cfg.n_prefix, cfg.d_model)
        self.hyp_role = nn.Parameter(torch.zeros(cfg.d_model))   # added to the hypothesis slot's tokens
        self.norm = RMSNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied
        cos, sin = precompute_rope(cfg.d_model // cfg.n_heads, cfg.prefix_len + cfg.max_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(init_weights)
        nn.init.normal_(self.hyp_role, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights counted once

    def new_cache(self) -> KVCache:
        return KVCache(self.cfg.n_layers)

    def split_condition(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """cond [B, cond_dim] -> e [B, 768], ê [B, 768], hypothesis ids [B, hyp_len] (long)."""
        cfg, D = self.cfg, self.cfg.embed_dim
        if cond.ndim != 2 or cond.shape[1] != cfg.cond_dim:
            raise ValueError(f"corrector condition must have shape [B, {cfg.cond_dim}] (e, ê, {cfg.hyp_len} ids, "
                             f"canary), got {tuple(cond.shape)}")
        if not bool((cond[:, -1] == CANARY).all()):
            raise ValueError(f"the corrector condition lost precision (dtype {cond.dtype}, or cast on the way): "
                             "its token ids need float32; build it with condition()")
        ids = cond[:, 2 * D:-1]
        if not (torch.equal(ids, ids.round()) and bool(((ids >= 0) & (ids < cfg.vocab_size)).all())):
            raise ValueError(f"the hypothesis ids in the corrector condition are not whole token ids in "
                             f"[0, {cfg.vocab_size}) (dtype {cond.dtype}; build it with condition() in float32)")
        return cond[:, :D], cond[:, D:2 * D], ids.long()

    def prefix(self, cond: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prefix [B, prefix_len, d] and the per-layer signals (or None)."""
        e, landed, ids = self.split_condition(cond)
        e, landed = e.to(dtype), landed.to(dtype)
        p_target, signals = self.proj_target(e)
        p_landed, _ = self.proj_landed(landed)
        p_diff, _ = self.proj_diff(e - landed)
        hyp = self.tok_emb(ids) + self.hyp_role
        return torch.cat([p_target.to(dtype), p_landed.to(dtype), p_diff.to(dtype), hyp.to(dtype)], dim=1), signals

    def forward(self, tokens: torch.Tensor, emb: torch.Tensor | None = None, cache: KVCache | None = None):
        x = self.tok_emb(tokens)
        signals = cache.signals if cache is not None else None
        n_prefix = 0
        if emb is not None:
            prefix, signals = self.prefix(emb, x.dtype)
            x = torch.cat([prefix, x], dim=1)
            n_prefix = prefix.shape[1]
            if cache is not None:
                cache.signals = signals
        start = cache.pos if cache is not None else 0
        T = x.shape[1]
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]
        for i, block in enumerate(self.blocks):
            if signals is not None:
                x = x + signals[i].to(x.dtype)
            x = block(x, cos, sin, cache, i)
        if cache is not None:
            cache.pos = start + T
        return self.lm_head(self.norm(x[:, n_prefix:]))


def hypothesis_ids(tokenizer: BPETokenizer, texts: list[str], cfg: Config) -> np.ndarray:
    """int64 [N, hyp_len]: each text's ids (cut to hyp_len - 1), <eos>, then <pad>."""
    out = np.full((len(texts), cfg.hyp_len), cfg.pad_id, dtype=np.int64)
    for i, ids in enumerate(tokenizer.encode(list(texts))):
        s = ids[: cfg.hyp_len - 1] + [cfg.eos_id]
        out[i, : len(s)] = s
    return out


def condition(target, landed, ids) -> torch.Tensor:
    """The model's conditioning input, float32 [N, 2 * 768 + hyp_len + 1]: [e | ê | hypothesis ids | canary]."""
    parts = [a.float() if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a), dtype=torch.float32)
             for a in (target, landed, ids)]
    parts = [a.to(parts[0].device) for a in parts]
    if not (parts[0].shape == parts[1].shape and parts[0].shape[0] == parts[2].shape[0]):
        raise ValueError(f"target {tuple(parts[0].shape)}, landed {tuple(parts[1].shape)} and hypothesis ids "
                         f"{tuple(parts[2].shape)} must have the same number of rows (and target and landed one shape)")
    return torch.cat(parts + [torch.full((parts[0].shape[0], 1), CANARY, device=parts[0].device)], dim=1)


class Corrector:
    """The trained corrector as the hybrid's Proposer (decoders/hybrid.py)."""

    def __init__(self, model: CorrectorModel, tokenizer: BPETokenizer, device: str = "cpu"):
        self.model, self.tokenizer, self.device = model.to(device).eval(), tokenizer, device

    @property
    def num_parameters(self) -> int:
        return self.model.num_parameters()

    def condition(self, target: np.ndarray, landed: np.ndarray, texts: list[str]) -> torch.Tensor:
        cfg = self.model.cfg
        target, landed = np.asarray(target, dtype=np.float32), np.asarray(landed, dtype=np.float32)
        if target.ndim != 2 or target.shape[1] != cfg.embed_dim or landed.shape != target.shape:
            raise ValueError(f"target and landed must both be [N, {cfg.embed_dim}], got {target.shape} and {landed.shape}")
        if len(texts) != len(target):
            raise ValueError(f"{len(texts)} hypothesis texts for {len(target)} target embeddings")
        return condition(target, landed, hypothesis_ids(self.tokenizer, texts, cfg))

    def propose(self, target: np.ndarray, landed: np.ndarray, texts: list[str], sampling: Sampling,
                n: int) -> list[list[str]]:
        """For each row i: n texts written from (target[i], landed[i], texts[i]), drawn with `sampling`
        (temperature 0: the greedy correction, repeated n times)."""
        if int(n) != n or n < 1:
            raise ValueError(f"n (corrections per hypothesis) must be an integer >= 1, got {n!r}")
        cond = self.condition(target, landed, texts).to(self.device)
        cfg = self.model.cfg
        seqs, _ = generate(self.model, cond, replace(sampling, num_samples=int(n)), cfg.bos_id, cfg.eos_id)
        out = [self.tokenizer.decode(s) for s in seqs]
        return [out[i * n:(i + 1) * n] for i in range(len(texts))]


def has_checkpoint(directory: Path = ASSET_DIR) -> bool:
    return (Path(directory) / checkpoint.CONFIG).exists()


def load_model(directory: Path = ASSET_DIR, device: str = "cpu") -> tuple[CorrectorModel, BPETokenizer]:
    """(model, tokenizer) from a checkpoint folder (decoders/checkpoint.py, kind "corrector")."""
    return checkpoint.load(directory, KIND, Config, CorrectorModel, BPETokenizer, device)


def load(device: str = "cpu", directory: Path = ASSET_DIR) -> Corrector:
    model, tokenizer = load_model(directory, device)
    return Corrector(model, tokenizer, device)
