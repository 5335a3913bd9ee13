"""RET: a resource-efficient byte-level transformer decoder (< 800K parameters).

No tokenizer: the vocabulary is the 256 byte values plus <pad>, <bos>, <eos>. One
transformer block is applied `n_loops` times with the same weights, embeddings are
tied, and the 768-d input enters through an `EmbeddingToTextBridge`: prefix vectors
(`conditioning="prefix"`), adaLN-Zero modulation of the shared block from the bridge's
hidden vector (`"adaln"`, the same modulation at every loop), or both. The parts are in
`decoders/transformer.py`; the checkpoint format in `decoders/checkpoint.py`. (An int8
variant was measured and dropped: on the CPUs here it is slower than fp32, see
assets/ret/MODEL_CARD.md.)

    sequence:  [p_1 .. p_k] <bos> b_1 .. b_n      ->  predicts  b_1 .. b_n <eos>
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from . import checkpoint
from .base import EMBED_DIM, Decoded, Decoder, Sampling
from .transformer import (Block, EmbeddingToTextBridge, KVCache, RMSNorm, check_conditioning,
                          generate, init_weights, make_decode_step, precompute_rope)

ROOT = Path(__file__).resolve().parent.parent
ASSET_DIR = ROOT / "assets" / "ret"
KIND = "ret"     # config.json "kind"
N_SPECIAL = 3    # <pad>=0, <bos>=1, <eos>=2; byte b is token b + 3


@dataclass
class RETConfig:
    vocab_size: int = 256 + N_SPECIAL
    d_model: int = 256
    n_heads: int = 2
    ffn_hidden: int = 256         # SwiGLU hidden size
    n_loops: int = 4              # times the one shared block is applied
    n_prefix: int = 4             # prefix vectors made from the embedding (0 with conditioning "adaln")
    bridge_hidden: int = 128      # the bridge's hidden vector; adaLN reads it
    conditioning: str = "prefix"  # prefix | adaln | adaln+prefix (decoders/transformer.py)
    max_len: int = 128            # bytes, <bos> included
    bytes_per_token: int = 3      # Sampling.max_new_tokens is read as max_new_tokens * 3 bytes
    embed_dim: int = EMBED_DIM
    rope_theta: float = 10000.0
    dropout: float = 0.0
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self):
        if self.vocab_size != 256 + N_SPECIAL:
            raise ValueError(f"RET's vocabulary is 256 bytes + {N_SPECIAL} special tokens, got vocab_size={self.vocab_size}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model {self.d_model} must split into {self.n_heads} heads of even size (RoPE)")
        if self.n_loops < 1:
            raise ValueError(f"n_loops must be >= 1, got {self.n_loops}")
        check_conditioning(self.conditioning, self.n_prefix)


class RET(nn.Module):
    """Byte model: one block applied `n_loops` times. `forward(tokens, emb=..., cache=...)` as
    the generative model's: logits for the token positions, the bridge's prefix before them."""

    def __init__(self, cfg: RETConfig):
        super().__init__()
        self.cfg = cfg
        self.adaln = cfg.conditioning.startswith("adaln")
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.block = Block(cfg.d_model, cfg.n_heads, cfg.ffn_hidden, "swiglu", cfg.dropout,
                           adaln_dim=cfg.bridge_hidden if self.adaln else 0)
        self.bridge = EmbeddingToTextBridge(cfg.embed_dim, cfg.bridge_hidden, cfg.n_prefix, cfg.d_model)
        self.norm = RMSNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied
        cos, sin = precompute_rope(cfg.d_model // cfg.n_heads, cfg.max_len + cfg.n_prefix, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(init_weights)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights counted once

    def new_cache(self) -> KVCache:
        return KVCache(self.cfg.n_loops, self.cfg.n_prefix + self.cfg.max_len)  # one slot per application of the block

    def _inputs(self, tokens: torch.Tensor, emb: torch.Tensor | None, cache: KVCache | None):
        """(x, n_prefix, cond): the byte vectors with the bridge's prefix in front when `emb` is given,
        and the adaLN vector (kept on the cache for the later calls)."""
        x = self.tok_emb(tokens)
        cond = cache.signals if cache is not None else None  # the adaLN vector of the first call
        n_prefix = 0
        if emb is not None:
            h = self.bridge.hidden(emb.to(x.dtype))
            prefix, _ = self.bridge.project(h)
            cond = h if self.adaln else None
            if prefix is not None:
                x = torch.cat([prefix.to(x.dtype), x], dim=1)
                n_prefix = prefix.shape[1]
            if cache is not None:
                cache.signals = cond
        elif self.adaln and cond is None:
            raise ValueError("an adaLN-conditioned model needs `emb` on its first call")
        return x, n_prefix, cond

    def prefill_inputs(self, tokens: torch.Tensor, emb: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """The first call's input vectors [B, T, C] (prefix, then `tokens`), for `generate` to run
        through `decode_step` one position at a time."""
        return self._inputs(tokens, emb, cache)[0]

    def forward(self, tokens: torch.Tensor, emb: torch.Tensor | None = None, cache: KVCache | None = None):
        x, n_prefix, cond = self._inputs(tokens, emb, cache)
        start = cache.pos if cache is not None else 0
        T = x.shape[1]
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]
        for i in range(self.cfg.n_loops):
            x = self.block(x, cos, sin, cache, i, cond)
        if cache is not None:
            cache.pos = start + T
        return self.lm_head(self.norm(x[:, n_prefix:]))

    def decode_step(self):
        """(tokens [B], cache) -> logits [B, V] for one new byte per row (`make_decode_step` with the
        shared block once per loop); None if the block is not a plain Block."""
        if self.training:
            return None
        return make_decode_step([self.block] * self.cfg.n_loops, self.tok_emb, self.norm, self.lm_head,
                                self.rope_cos, self.rope_sin)


# --------------------------------------------------------------------------- tokenizer

class ByteTokenizer:
    """UTF-8 bytes shifted by N_SPECIAL; nothing to train or save."""

    vocab_size = 256 + N_SPECIAL
    special_ids = {"pad": 0, "bos": 1, "eos": 2}

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [[b + N_SPECIAL for b in t.encode("utf-8")] for t in texts]

    def decode(self, ids: list[int]) -> str:
        return bytes_to_text(bytes(i - N_SPECIAL for i in ids if i >= N_SPECIAL))

    @classmethod
    def train(cls, texts: list[str], cfg: RETConfig) -> "ByteTokenizer":
        return cls()

    def save(self, directory: Path):
        pass  # nothing to save: the vocabulary is the byte values

    @classmethod
    def load(cls, directory: Path) -> "ByteTokenizer":
        return cls()


def bytes_to_text(b: bytes) -> str:
    """Valid UTF-8 text from generated bytes: invalid sequences (e.g. a character cut at the
    length limit) are dropped rather than shown as replacement garbage."""
    return b.decode("utf-8", errors="ignore")


# --------------------------------------------------------------------------- decoder

class RETDecoder(Decoder):
    name = "ret"

    def __init__(self, model: nn.Module, device: str = "cpu", n_params: int | None = None):
        self.model, self.device = model.to(device).eval(), device
        self.tokenizer = ByteTokenizer()
        self._n_params = n_params if n_params is not None else model.num_parameters()

    @property
    def num_parameters(self) -> int:
        return self._n_params

    def _decode(self, x: torch.Tensor, sampling: Sampling) -> list[list[Decoded]]:
        cfg = self.model.cfg
        seqs, scores = generate(self.model, x.to(self.device), sampling, cfg.bos_id, cfg.eos_id,
                                max_new_tokens=sampling.max_new_tokens * cfg.bytes_per_token)
        texts = [self.tokenizer.decode(s) for s in seqs]
        k = sampling.num_samples
        return [[Decoded(texts[i * k + j], scores[i * k + j]) for j in range(k)] for i in range(x.shape[0])]


def load_model(directory: Path = ASSET_DIR, device: str = "cpu") -> tuple[RET, ByteTokenizer]:
    """(model, tokenizer) from a checkpoint folder (decoders/checkpoint.py)."""
    return checkpoint.load(directory, KIND, RETConfig, RET, ByteTokenizer, device)


def load(device: str = "cpu", directory: Path = ASSET_DIR) -> RETDecoder:
    return RETDecoder(load_model(directory, device)[0], device)

