"""Generative decoder: a compact decoder-only transformer conditioned on a 768-d embedding.

Pre-norm blocks with RMSNorm, rotary position embeddings (RoPE) and a gated
feed-forward (SwiGLU by default), tied input/output embeddings, a small byte-level
BPE vocabulary. The embedding enters through `EmbeddingToTextBridge`: an MLP that
maps it to `n_prefix` vectors placed before the text, and optionally a per-layer
signal added to the residual stream at every block (`conditioning="prefix"`); or,
with `conditioning="adaln"` / `"adaln+prefix"`, the bridge's hidden vector shifts,
scales and gates every block's branches (adaLN-Zero, see decoders/transformer.py).

    sequence:  [p_1 .. p_k] <bos> t_1 .. t_n      ->  predicts  t_1 .. t_n <eos>

`generative-l` is this model with a larger config (assets/generative-l/config.json).

The parts are in `decoders/transformer.py`; the checkpoint format in `decoders/checkpoint.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from . import checkpoint
from .base import EMBED_DIM, Decoded, Decoder, Sampling
from .transformer import (GATES, Block, EmbeddingToTextBridge, KVCache, RMSNorm, check_conditioning,
                          generate, init_weights, make_decode_step, precompute_rope)

ROOT = Path(__file__).resolve().parent.parent
ASSET_DIR = ROOT / "assets" / "generative"
LARGE_DIR = ROOT / "assets" / "generative-l"
KIND = "generative"  # config.json "kind"


@dataclass
class Config:
    vocab_size: int = 2048
    d_model: int = 192
    n_layers: int = 3
    n_heads: int = 4
    ffn_hidden: int = 432
    gate: str = "swiglu"          # swiglu | geglu | glu | pagated
    pa_alpha: float = 0.5         # pagated only: 0 = linear unit, 1 = plain gated unit
    pa_learn_alpha: bool = True   # pagated only: learn alpha (per layer) or keep it fixed
    n_prefix: int = 4             # k: prefix vectors made from the embedding (0 with conditioning "adaln")
    bridge_hidden: int = 256      # the bridge's hidden vector; adaLN reads it
    bridge_per_layer: bool = False  # also add an embedding signal at every block
    conditioning: str = "prefix"  # prefix | adaln | adaln+prefix (decoders/transformer.py)
    max_len: int = 64             # text tokens, <bos> included
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
        if not 0.0 <= self.pa_alpha <= 1.0:
            raise ValueError(f"pa_alpha must be in [0, 1], got {self.pa_alpha}")
        check_conditioning(self.conditioning, self.n_prefix)


class GenerativeDecoderModel(nn.Module):
    """Token model. `forward(tokens, emb=..., cache=...)` returns logits for the token positions.

    With `emb`, the sequence starts with the bridge's prefix; with a cache, later calls
    continue where the last one stopped (the cache remembers the per-layer signals and the
    adaLN conditioning vector, as `cache.signals = (signals, cond)`).
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.adaln = cfg.conditioning.startswith("adaln")
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_heads, cfg.ffn_hidden, cfg.gate, cfg.dropout, cfg.pa_alpha, cfg.pa_learn_alpha,
                  adaln_dim=cfg.bridge_hidden if self.adaln else 0)
            for _ in range(cfg.n_layers))
        self.bridge = EmbeddingToTextBridge(cfg.embed_dim, cfg.bridge_hidden, cfg.n_prefix, cfg.d_model,
                                            n_signals=cfg.n_layers if cfg.bridge_per_layer else 0)
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
        return KVCache(self.cfg.n_layers, self.cfg.n_prefix + self.cfg.max_len)

    def _inputs(self, tokens: torch.Tensor, emb: torch.Tensor | None, cache: KVCache | None):
        """(x, n_prefix, signals, cond): the token vectors with the bridge's prefix in front when `emb` is
        given, and the per-layer signals and adaLN vector (kept on the cache for the later calls)."""
        x = self.tok_emb(tokens)
        signals, cond = cache.signals if cache is not None and cache.signals is not None else (None, None)
        n_prefix = 0
        if emb is not None:
            h = self.bridge.hidden(emb.to(x.dtype))
            prefix, signals = self.bridge.project(h)
            cond = h if self.adaln else None
            if prefix is not None:
                x = torch.cat([prefix.to(x.dtype), x], dim=1)
                n_prefix = prefix.shape[1]
            if cache is not None:
                cache.signals = (signals, cond)
        elif self.adaln and cond is None:
            raise ValueError("an adaLN-conditioned model needs `emb` on its first call")
        return x, n_prefix, signals, cond

    def prefill_inputs(self, tokens: torch.Tensor, emb: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """The first call's input vectors [B, T, C] (prefix, then `tokens`), for `generate` to run
        through `decode_step` one position at a time."""
        return self._inputs(tokens, emb, cache)[0]

    def forward(self, tokens: torch.Tensor, emb: torch.Tensor | None = None, cache: KVCache | None = None):
        x, n_prefix, signals, cond = self._inputs(tokens, emb, cache)
        start = cache.pos if cache is not None else 0
        T = x.shape[1]
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]
        for i, block in enumerate(self.blocks):
            if signals is not None:
                x = x + signals[i].to(x.dtype)
            x = block(x, cos, sin, cache, i, cond)
        if cache is not None:
            cache.pos = start + T
        return self.lm_head(self.norm(x[:, n_prefix:]))

    def decode_step(self):
        """(tokens [B], cache) -> logits [B, V] for one new token per row (`make_decode_step`: what
        `forward` computes, without the module overhead); None if a block is not a plain Block."""
        if self.training:
            return None
        return make_decode_step(list(self.blocks), self.tok_emb, self.norm, self.lm_head, self.rope_cos, self.rope_sin)


# --------------------------------------------------------------------------- tokenizer

def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (lossless) with <pad>=0, <bos>=1, <eos>=2."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<bos>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


class BPETokenizer:
    """Thin adapter so the trainer treats BPE and bytes alike: encode(list) / decode(ids)."""

    def __init__(self, tok: Tokenizer):
        self.tok = tok

    @classmethod
    def train(cls, texts: list[str], cfg: Config) -> "BPETokenizer":
        return cls(train_tokenizer(texts, cfg.vocab_size))

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    @property
    def special_ids(self) -> dict:
        return {"pad": self.tok.token_to_id("<pad>"), "bos": self.tok.token_to_id("<bos>"),
                "eos": self.tok.token_to_id("<eos>")}

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts)]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def save(self, directory: Path):
        self.tok.save(str(Path(directory) / "tokenizer.json"))

    @classmethod
    def load(cls, directory: Path) -> "BPETokenizer":
        path = Path(directory) / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"no tokenizer.json in {directory}")
        return cls(Tokenizer.from_file(str(path)))


# --------------------------------------------------------------------------- decoder

class GenerativeDecoder(Decoder):
    name = "generative"

    def __init__(self, model: GenerativeDecoderModel, tokenizer: BPETokenizer, device: str = "cpu"):
        self.model, self.tokenizer, self.device = model.to(device).eval(), tokenizer, device

    @property
    def num_parameters(self) -> int:
        return self.model.num_parameters()

    def _decode(self, x: torch.Tensor, sampling: Sampling) -> list[list[Decoded]]:
        cfg = self.model.cfg
        seqs, scores = generate(self.model, x.to(self.device), sampling, cfg.bos_id, cfg.eos_id)
        texts = [self.tokenizer.decode(s) for s in seqs]
        k = sampling.num_samples
        return [[Decoded(texts[i * k + j], scores[i * k + j]) for j in range(k)] for i in range(x.shape[0])]


def load_model(directory: Path = ASSET_DIR, device: str = "cpu") -> tuple[GenerativeDecoderModel, BPETokenizer]:
    """(model, tokenizer) from a checkpoint folder (decoders/checkpoint.py)."""
    return checkpoint.load(directory, KIND, Config, GenerativeDecoderModel, BPETokenizer, device)


def load(device: str = "cpu", directory: Path = ASSET_DIR) -> GenerativeDecoder:
    model, tokenizer = load_model(directory, device)
    return GenerativeDecoder(model, tokenizer, device)


LARGE_TRAIN_COMMAND = ("python -m training generative --out assets/generative-l --model-config "
                       "assets/generative-l/config.json --tokenizer assets/generative-l/tokenizer.json "
                       "--wordnet-weight 2 --device cuda (the full command is in training/RECIPES.md)")


def load_large(device: str = "cpu", directory: Path = LARGE_DIR) -> GenerativeDecoder:
    """`generative-l`: the same model at 20-40M parameters (the reference point and the distillation
    teacher). FileNotFoundError naming the training command while its weights are not there."""
    if not (Path(directory) / checkpoint.WEIGHTS).exists():
        raise FileNotFoundError(f"generative-l has no weights yet ({Path(directory) / checkpoint.WEIGHTS}); "
                                f"train them with `{LARGE_TRAIN_COMMAND}`")
    dec = load(device, directory)
    dec.name = "generative-l"
    return dec
