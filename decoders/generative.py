"""Generative decoder: a compact decoder-only transformer conditioned on a 768-d embedding.

Pre-norm blocks with RMSNorm, rotary position embeddings (RoPE) and a gated
feed-forward (SwiGLU by default), tied input/output embeddings, a small byte-level
BPE vocabulary. The embedding enters through `EmbeddingToTextBridge`: an MLP that
maps it to `n_prefix` vectors placed before the text, and optionally a per-layer
signal added to the residual stream at every block.

    sequence:  [p_1 .. p_k] <bos> t_1 .. t_n      ->  predicts  t_1 .. t_n <eos>
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import EMBED_DIM, Decoded, Decoder, Sampling

ROOT = Path(__file__).resolve().parent.parent
ASSET_DIR = ROOT / "assets" / "generative"
GATES = ("swiglu", "geglu", "glu", "pagated")


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
    n_prefix: int = 4             # k: prefix vectors made from the embedding
    bridge_hidden: int = 256
    bridge_per_layer: bool = False  # also add an embedding signal at every block
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


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * x).to(dtype)


def precompute_rope(head_dim: int, max_len: int, theta: float = 10000.0):
    """cos, sin tables [max_len, head_dim // 2]."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    angles = torch.outer(torch.arange(max_len).float(), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary_emb(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of x [B, H, T, D] by position-dependent angles.

    Args:
        x: queries or keys, [batch, heads, time, head_dim].
        cos, sin: [time, head_dim // 2] for the positions of x.
    Returns:
        x with each (even, odd) channel pair rotated, same shape and dtype.
    """
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    y1 = x1 * cos - x2 * sin
    y2 = x1 * sin + x2 * cos
    return torch.stack((y1, y2), dim=-1).flatten(-2).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x, cos, sin, cache: list | None = None, attn_mask=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary_emb(q, cos, sin), apply_rotary_emb(k, cos, sin)
        if cache is not None:  # cache = [k, v] of earlier positions, extended in place
            if cache:
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        S = k.shape[2]  # positions attended to: the cached ones, then these T
        if attn_mask is None and T > 1 and S > T:  # new token i sees positions 0 .. S - T + i
            attn_mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
        if attn_mask is None and T > 1:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
        else:  # a single new token sees every cached position; or an explicit mask
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class GatedFeedForward(nn.Module):
    """down(up(x) * gate(x)); the gate's activation is set by cfg.gate.

    swiglu: silu, geglu: gelu, glu: sigmoid, pagated: alpha * silu + (1 - alpha) (paGating).
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)
        self.kind = cfg.gate
        if cfg.gate == "pagated":
            logit = torch.logit(torch.tensor(cfg.pa_alpha).clamp(1e-4, 1 - 1e-4))
            if cfg.pa_learn_alpha:
                self.alpha_logit = nn.Parameter(logit)
            else:
                self.register_buffer("alpha_logit", logit)

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_logit)

    def forward(self, x):
        g = self.gate_proj(x)
        if self.kind == "swiglu":
            g = F.silu(g)
        elif self.kind == "geglu":
            g = F.gelu(g)
        elif self.kind == "glu":
            g = torch.sigmoid(g)
        else:
            a = self.alpha.to(g.dtype)
            g = a * F.silu(g) + (1 - a)
        return self.down_proj(self.up_proj(x) * g)


class Block(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model)
        self.ffn = GatedFeedForward(cfg)
        self.drop = nn.Dropout(cfg.dropout)  # residual-branch dropout (training only)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.drop(self.attn(self.attn_norm(x), cos, sin, cache))
        return x + self.drop(self.ffn(self.ffn_norm(x)))


class EmbeddingToTextBridge(nn.Module):
    """768-d embedding -> k prefix vectors [B, k, d] (+ optionally one signal per layer [L, B, 1, d])."""

    def __init__(self, cfg: Config, n_signals: int):
        super().__init__()
        self.n_prefix, self.d_model = cfg.n_prefix, cfg.d_model
        self.inp = nn.Linear(cfg.embed_dim, cfg.bridge_hidden)
        self.prefix = nn.Linear(cfg.bridge_hidden, cfg.n_prefix * cfg.d_model)
        self.layer_signal = (nn.Linear(cfg.bridge_hidden, n_signals * cfg.d_model, bias=False)
                             if cfg.bridge_per_layer else None)
        self.n_signals = n_signals

    def forward(self, emb):
        h = F.gelu(self.inp(emb))
        prefix = self.prefix(h).view(-1, self.n_prefix, self.d_model)
        if self.layer_signal is None:
            return prefix, None
        signals = self.layer_signal(h).view(-1, self.n_signals, 1, self.d_model).transpose(0, 1)
        return prefix, signals


class GenerativeDecoderModel(nn.Module):
    """Token model. `forward(tokens, emb=..., cache=...)` returns logits for the token positions.

    With `emb`, the sequence starts with the bridge's prefix; with a cache, later calls
    continue where the last one stopped (the cache remembers the conditioning).
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.bridge = EmbeddingToTextBridge(cfg, len(self.layers()))
        self.norm = RMSNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied
        cos, sin = precompute_rope(cfg.d_model // cfg.n_heads, cfg.max_len + cfg.n_prefix, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights counted once

    def layers(self):
        """The block applied at each depth (RET overrides this with one shared block)."""
        return list(self.blocks)

    def new_cache(self) -> dict:
        return {"kv": [[] for _ in self.layers()], "pos": 0, "signals": None}

    def forward(self, tokens: torch.Tensor, emb: torch.Tensor | None = None, cache: dict | None = None):
        x = self.tok_emb(tokens)
        signals = cache["signals"] if cache is not None else None
        n_prefix = 0
        if emb is not None:
            prefix, signals = self.bridge(emb.to(x.dtype))
            x = torch.cat([prefix.to(x.dtype), x], dim=1)
            n_prefix = prefix.shape[1]
            if cache is not None:
                cache["signals"] = signals
        start = cache["pos"] if cache is not None else 0
        T = x.shape[1]
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]
        for i, block in enumerate(self.layers()):
            if signals is not None:
                x = x + signals[i].to(x.dtype)
            x = block(x, cos, sin, cache["kv"][i] if cache is not None else None)
        if cache is not None:
            cache["pos"] = start + T
        return self.lm_head(self.norm(x[:, n_prefix:]))


@torch.no_grad()
def generate(model: nn.Module, emb: torch.Tensor, sampling: Sampling, bos_id: int, eos_id: int,
             max_new_tokens: int | None = None) -> tuple[list[list[int]], list[float]]:
    """Batched generation with a KV cache. Each of the N rows of `emb` gives
    `sampling.num_samples` sequences (row-major). Returns token ids (no bos/eos) and the
    mean log-probability of each sequence under the model (the sampled tokens, untempered)."""
    from .sampling import make_generator, sample_next_token

    device = emb.device
    limit = min(max_new_tokens or sampling.max_new_tokens, model.cfg.max_len - 1)
    emb = emb.repeat_interleave(sampling.num_samples, dim=0)
    B = emb.shape[0]
    gen = make_generator(sampling.seed, device)
    cache = model.new_cache()
    logits = model(torch.full((B, 1), bos_id, dtype=torch.long, device=device), emb=emb, cache=cache)[:, -1]
    out = torch.zeros(B, limit, dtype=torch.long, device=device)
    logp_sum = torch.zeros(B, device=device)
    length = torch.zeros(B, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    for t in range(limit):
        logits = logits.float()
        nxt = sample_next_token(logits, sampling, gen)
        lp = torch.log_softmax(logits, dim=-1).gather(1, nxt[:, None]).squeeze(1)
        logp_sum += torch.where(done, 0.0, lp)
        length += (~done).long()
        nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
        out[:, t] = nxt
        done |= nxt == eos_id
        if done.all() or t == limit - 1:
            break
        logits = model(nxt[:, None], cache=cache)[:, -1]
    seqs = []
    for row in out.tolist():
        seqs.append(row[: row.index(eos_id)] if eos_id in row else row)
    scores = (logp_sum / length.clamp(min=1)).tolist()
    return seqs, scores


# --------------------------------------------------------------------------- tokenizer

def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (lossless) with <pad>=0, <bos>=1, <eos>=2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<bos>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


class BPETokenizer:
    """Thin adapter so the trainer treats BPE and bytes alike: encode(list) / decode(ids)."""

    def __init__(self, tok):
        self.tok = tok

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts)]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def save(self, directory: Path):
        self.tok.save(str(Path(directory) / "tokenizer.json"))

    @classmethod
    def load(cls, directory: Path):
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(Path(directory) / "tokenizer.json")))


# --------------------------------------------------------------------------- checkpoints

def save_model(model: nn.Module, directory: Path):
    from safetensors.torch import save_model as st_save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    st_save(model, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(asdict(model.cfg), indent=2) + "\n")


def load_model(directory: Path, model_cls=None, config_cls=None, device: str = "cpu"):
    from safetensors.torch import load_model as st_load

    directory = Path(directory)
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"no checkpoint in {directory}: train one with `python -m decoders.train`")
    cfg = (config_cls or Config)(**json.loads((directory / "config.json").read_text()))
    model = (model_cls or GenerativeDecoderModel)(cfg)
    st_load(model, str(directory / "model.safetensors"), device=str(device))
    return model.to(device).eval()


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


def load(device: str = "cpu", directory: Path = ASSET_DIR) -> GenerativeDecoder:
    return GenerativeDecoder(load_model(directory, device=device), BPETokenizer.load(directory), device)
