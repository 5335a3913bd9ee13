"""Transformer parts shared by the token decoders (generative, RET), and their generation loop.

    RMSNorm, precompute_rope / apply_rotary_emb, GatedFeedForward (SwiGLU, GeGLU, GLU, paGated),
    Attention (with a KV cache), Block (pre-norm attention + gated FFN, optionally adaLN-Zero
    modulated by a conditioning vector), EmbeddingToTextBridge (768-d embedding -> hidden vector,
    prefix vectors, optional per-layer signals), KVCache (static), generate (batched sampling with the cache),
    beam_search (batched beam search with the cache), block_weights / block_step (Block for one
    new token, without the module overhead; plain blocks only, adaLN blocks use the module path).

How the embedding reaches the blocks (`conditioning` in the model configs):
    prefix        k prefix vectors before the text (+ optional per-layer signals): the round-1 bridge
    adaln         no prefix: every block's attention and FFN branches are shifted, scaled and gated
                  from the bridge's hidden vector (adaLN-Zero, Peebles & Xie 2023, "DiT")
    adaln+prefix  both

A token model that `generate` drives has `cfg.max_len`, `new_cache()` and
`forward(tokens, emb=None, cache=None) -> logits [B, T, V]` for the token positions: with
`emb`, the bridge's prefix goes before the tokens; with a cache, a later call continues
where the last one stopped. It may also have `decode_step()`, returning a function
`(tokens [B], cache) -> logits [B, V]` for one new token per row (built on `block_step`, and on
the numba-compiled `_cpu_step` for up to CPU_STEP_MAX_ROWS rows on the CPU),
or None; `generate` then uses it after the prefill, and for the prefill too, one position at a
time, for up to CPU_STEP_MAX_ROWS rows, when the model has `prefill_inputs(tokens, emb, cache) ->
[B, T, C]` (the first call's input vectors: then T steps cost less than one pass through the modules).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Sampling
from .sampling import make_generator, sample_next_token

try:
    import numba   # compiles the one-token CPU step (`_cpu_step`); without it the torch step is used
except ImportError:
    numba = None

GATES = ("swiglu", "geglu", "glu", "pagated")
CONDITIONINGS = ("prefix", "adaln", "adaln+prefix")
CPU_STEP_MAX_ROWS = 4   # decode steps of up to this many rows run `_cpu_step` on the CPU (`make_decode_step`)


def check_conditioning(conditioning: str, n_prefix: int) -> None:
    """ValueError unless `conditioning` is known and `n_prefix` fits it (adaln: 0; with a prefix: >= 1)."""
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"unknown conditioning {conditioning!r}; valid: {', '.join(CONDITIONINGS)}")
    if conditioning == "adaln" and n_prefix != 0:
        raise ValueError(f"conditioning 'adaln' has no prefix: set n_prefix=0 (got {n_prefix}), or use 'adaln+prefix'")
    if conditioning != "adaln" and n_prefix < 1:
        raise ValueError(f"conditioning {conditioning!r} needs n_prefix >= 1, got {n_prefix}")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # x * rsqrt(mean(x^2) + eps) * weight in fp32, in one call (bit-identical to writing it out)
        if x.dtype == torch.float32:
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight, self.eps).to(x.dtype)


def precompute_rope(head_dim: int, max_len: int, theta: float = 10000.0):
    """cos, sin tables [max_len, head_dim // 2]."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    angles = torch.outer(torch.arange(max_len).float(), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary_emb(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of x [..., T, D] by position-dependent angles.

    Args:
        x: queries or keys, [batch, heads, time, head_dim] (or queries and keys stacked in front).
        cos, sin: [time, head_dim // 2] for the positions of x.
    Returns:
        x with each (even, odd) channel pair rotated, same shape and dtype.
    """
    # (x1 + i x2) * (cos + i sin) = (x1 cos - x2 sin) + i (x1 sin + x2 cos): one complex product
    x32 = x if x.dtype == torch.float32 else x.float()
    try:
        pairs = torch.view_as_complex(x32.view(x32.shape[:-1] + (-1, 2)))
    except RuntimeError:  # a complex view needs each pair adjacent and aligned: copy first
        pairs = torch.view_as_complex(x32.contiguous().view(x32.shape[:-1] + (-1, 2)))
    y = torch.view_as_real(pairs * torch.complex(cos, sin)).flatten(-2)
    return y if y.dtype == x.dtype else y.to(x.dtype)


class KVCache:
    """Keys and values of the positions seen so far, one slot per block application.

    Static: the buffers [n_slots, B, H, max_len, D] are allocated once, at the first `update`
    (the prefill), and every later position is written in place, so a decode step neither
    allocates nor copies the past. `update(i, k, v)` writes the new positions of slot i at
    `pos` and returns views of all positions so far; the model advances `pos` after its last
    slot. `signals` keeps the per-layer conditioning computed on the first call, for the later
    ones. Without `max_len`, the buffers start at the prefill's length and double when full.
    """

    def __init__(self, n_slots: int, max_len: int | None = None):
        self.n_slots, self.max_len = n_slots, max_len
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.pos = 0
        self.signals: torch.Tensor | None = None
        self._views: tuple | None = None

    def _allocate(self, like: torch.Tensor, length: int) -> None:
        B, H, _, D = like.shape
        k, v = like.new_zeros(self.n_slots, B, H, length, D), like.new_zeros(self.n_slots, B, H, length, D)
        if self.k is not None:  # growing (no max_len): keep what is there
            k[:, :, :, :self.pos], v[:, :, :, :self.pos] = self.k[:, :, :, :self.pos], self.v[:, :, :, :self.pos]
        self.k, self.v = k, v

    def numpy_views(self) -> tuple[np.ndarray, np.ndarray]:
        """(k, v) as numpy views of the CPU buffers, kept until the buffers are replaced."""
        if self._views is None or self._views[0] is not self.k:
            self._views = (self.k, self.k.numpy(), self.v.numpy())
        return self._views[1], self._views[2]

    def allocate(self, batch: int, n_heads: int, head_dim: int, dtype: torch.dtype, device) -> None:
        """The buffers, before any `update` (a decode step that starts the sequence itself)."""
        self._allocate(torch.empty(batch, n_heads, 0, head_dim, dtype=dtype, device=device), self.max_len or 64)

    def update(self, i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.pos + k.shape[2]
        if self.k is None or end > self.k.shape[3]:
            if self.max_len is not None and end > self.max_len:
                raise ValueError(f"the KV cache holds {self.max_len} positions, {end} were asked for")
            self._allocate(k, self.max_len or max(2 * end, 64))
        self.k[i, :, :, self.pos:end] = k
        self.v[i, :, :, self.pos:end] = v
        return self.k[i, :, :, :end], self.v[i, :, :, :end]


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.dropout = dropout

    def forward(self, x, cos, sin, cache: KVCache | None = None, slot: int = 0):
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary_emb(qkv[:2], cos, sin)  # queries and keys rotated together
        v = qkv[2]
        if cache is not None:
            k, v = cache.update(slot, k, v)
        S = k.shape[2]  # positions attended to: the cached ones, then these T
        dropout = self.dropout if self.training else 0.0
        if T == 1:  # one new token sees every position
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        elif S == T:  # no cache yet: plain causal attention
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        else:  # several new tokens after cached ones: new token i sees positions 0 .. S - T + i
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class GatedFeedForward(nn.Module):
    """down(up(x) * gate(x)); the gate's activation is set by `gate`.

    swiglu: silu, geglu: gelu, glu: sigmoid, pagated: alpha * silu + (1 - alpha) (paGating),
    with alpha = sigmoid(alpha_logit), learned or fixed at `pa_alpha`.
    """

    def __init__(self, d_model: int, hidden: int, gate: str = "swiglu", pa_alpha: float = 0.5,
                 pa_learn_alpha: bool = True):
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"unknown gate {gate!r}; valid gates: {', '.join(GATES)}")
        self.gate_proj = nn.Linear(d_model, hidden, bias=False)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)
        self.kind = gate
        if gate == "pagated":
            logit = torch.logit(torch.tensor(pa_alpha).clamp(1e-4, 1 - 1e-4))
            if pa_learn_alpha:
                self.alpha_logit = nn.Parameter(logit)
            else:
                self.register_buffer("alpha_logit", logit)

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_logit)

    def activate(self, g):
        """The gate's activation, applied to gate_proj(x)."""
        if self.kind == "swiglu":
            return F.silu(g)
        if self.kind == "geglu":
            return F.gelu(g)
        if self.kind == "glu":
            return torch.sigmoid(g)
        a = self.alpha.to(g.dtype)
        return a * F.silu(g) + (1 - a)

    def forward(self, x):
        return self.down_proj(self.up_proj(x) * self.activate(self.gate_proj(x)))


class AdaLNModulation(nn.Module):
    """adaLN-Zero: a conditioning vector c [B, cond_dim] -> (shift, scale, gate) for a block's attention
    branch and for its FFN branch, six [B, 1, d] tensors. The projection starts at zero (`init_weights`
    zeroes it), so every gate starts at 0 and the block starts as the identity (DiT's adaLN-Zero)."""

    def __init__(self, cond_dim: int, d_model: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 6 * d_model)

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.proj(cond)[:, None, :].chunk(6, dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + ffn(norm(x)); dropout on both residual branches.

    `slot` picks the block application's entry in the KV cache (a shared block applied n times
    uses slots 0 .. n-1). With `adaln_dim` > 0 the block is modulated by a conditioning vector
    `cond` [B, adaln_dim] (adaLN-Zero): x + gate * attn(norm(x) * (1 + scale) + shift), the same
    for the FFN branch, each shift/scale/gate a function of `cond`.
    """

    def __init__(self, d_model: int, n_heads: int, ffn_hidden: int, gate: str = "swiglu", dropout: float = 0.0,
                 pa_alpha: float = 0.5, pa_learn_alpha: bool = True, adaln_dim: int = 0):
        super().__init__()
        self.attn_norm = RMSNorm(d_model)
        self.attn = Attention(d_model, n_heads, dropout)
        self.ffn_norm = RMSNorm(d_model)
        self.ffn = GatedFeedForward(d_model, ffn_hidden, gate, pa_alpha, pa_learn_alpha)
        self.drop = nn.Dropout(dropout)  # residual-branch dropout (training only)
        self.modulation = AdaLNModulation(adaln_dim, d_model) if adaln_dim else None

    def forward(self, x, cos, sin, cache: KVCache | None = None, slot: int = 0, cond: torch.Tensor | None = None):
        if self.modulation is not None:
            return self._forward_adaln(x, cos, sin, cache, slot, cond)
        x = x + self.drop(self.attn(self.attn_norm(x), cos, sin, cache, slot))
        return x + self.drop(self.ffn(self.ffn_norm(x)))

    def _forward_adaln(self, x, cos, sin, cache, slot, cond):
        if cond is None:
            raise ValueError("this block is adaLN-modulated: pass its conditioning vector `cond`")
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = (m.to(x.dtype) for m in self.modulation(cond))
        x = x + gate_a * self.drop(self.attn(modulate(self.attn_norm(x), shift_a, scale_a), cos, sin, cache, slot))
        return x + gate_f * self.drop(self.ffn(modulate(self.ffn_norm(x), shift_f, scale_f)))


class EmbeddingToTextBridge(nn.Module):
    """768-d embedding -> hidden vector h = gelu(inp(emb)) [B, hidden] (`hidden`), and from h
    (`project`) `n_prefix` vectors [B, k, d] placed before the text (None when n_prefix is 0) and,
    with `n_signals` > 0, one vector per layer [n_signals, B, 1, d] added to the residual stream.
    adaLN-modulated blocks read h itself. `forward(emb)` = `project(hidden(emb))`."""

    def __init__(self, embed_dim: int, hidden: int, n_prefix: int, d_model: int, n_signals: int = 0):
        super().__init__()
        self.n_prefix, self.d_model, self.n_signals = n_prefix, d_model, n_signals
        self.inp = nn.Linear(embed_dim, hidden)
        self.prefix = nn.Linear(hidden, n_prefix * d_model) if n_prefix else None
        self.layer_signal = nn.Linear(hidden, n_signals * d_model, bias=False) if n_signals else None

    def hidden(self, emb):
        return F.gelu(self.inp(emb))

    def project(self, h):
        prefix = self.prefix(h).view(-1, self.n_prefix, self.d_model) if self.prefix is not None else None
        if self.layer_signal is None:
            return prefix, None
        signals = self.layer_signal(h).view(-1, self.n_signals, 1, self.d_model).transpose(0, 1)
        return prefix, signals

    def forward(self, emb):
        return self.project(self.hidden(emb))


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for linear and embedding weights, zero biases, zero adaLN modulations (use with
    `model.apply`, which visits a module after its children, so the zeros win)."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
    elif isinstance(module, AdaLNModulation):
        nn.init.zeros_(module.proj.weight)
        nn.init.zeros_(module.proj.bias)


@torch.inference_mode()
def generate(model: nn.Module, emb: torch.Tensor, sampling: Sampling, bos_id: int, eos_id: int,
             max_new_tokens: int | None = None) -> tuple[list[list[int]], list[float]]:
    """Batched generation with a static KV cache.

    The prefix and <bos> go through the model in one pass (the prefill), then one token per
    step. A step only samples and checks for <eos>; the log-probabilities are computed once,
    after the loop, from the logits of every step.

    Args:
        model: a token model (see the module docstring).
        emb: [N, 768] conditioning embeddings; each row gives `sampling.num_samples` sequences (row-major).
        sampling: temperature / top-k / top-p / seed, as for every decoder.
        bos_id, eos_id: start token, and the token that ends a sequence.
        max_new_tokens: length cap (default `sampling.max_new_tokens`), at most `model.cfg.max_len - 1`.
    Returns:
        token ids of each sequence (without bos/eos), and its mean log-probability under the
        model (of the chosen tokens, <eos> included, untempered).
    """
    device = emb.device
    limit = min(max_new_tokens or sampling.max_new_tokens, model.cfg.max_len - 1)
    emb = emb.repeat_interleave(sampling.num_samples, dim=0)
    B = emb.shape[0]
    gen = make_generator(sampling.seed, device)
    cache = model.new_cache()
    step = model.decode_step() if hasattr(model, "decode_step") else None
    bos = torch.full((B, 1), bos_id, dtype=torch.long, device=device)
    if step is not None and hasattr(model, "prefill_inputs") and B <= CPU_STEP_MAX_ROWS:  # few rows: T steps
        # cost less than one pass through the modules, so the prefix and <bos> go through the step too
        for x in model.prefill_inputs(bos, emb, cache).unbind(1):
            logits = step(x, cache)
    else:
        logits = model(bos, emb=emb, cache=cache)[:, -1]
    step_logits, tokens = [], []
    done = torch.zeros(B, dtype=torch.bool, device=device)
    for t in range(limit):
        nxt = sample_next_token(logits.float(), sampling, gen)
        step_logits.append(logits)
        tokens.append(nxt)
        done |= nxt == eos_id
        if t == limit - 1 or done.all():
            break
        # one token per row; a finished row's later tokens are dropped below
        logits = step(nxt, cache) if step is not None else model(nxt[:, None], cache=cache)[:, -1]
    return _finish(torch.stack(tokens, 1), torch.stack(step_logits, 1), eos_id)


def _finish(tokens: torch.Tensor, logits: torch.Tensor, eos_id: int) -> tuple[list[list[int]], list[float]]:
    """Sequences cut at their first <eos>, and their mean log-probability up to it (<eos> included)."""
    n = tokens.shape[1]
    logp = torch.log_softmax(logits.float(), dim=-1).gather(2, tokens[..., None]).squeeze(2)  # [B, n]
    is_eos = tokens == eos_id
    length = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, n)  # steps up to the first <eos>
    total = logp.cumsum(1).gather(1, (length - 1)[:, None]).squeeze(1)
    seqs = [row[: row.index(eos_id)] if eos_id in row else row for row in tokens.tolist()]
    return seqs, (total / length).tolist()



def _reorder_cache(cache: KVCache, index: torch.Tensor) -> None:
    """Keep cache rows `index` (beam search: each new beam continues an old one). Per-row
    conditioning in `cache.signals` needs no reordering: beams only move within their own row."""
    if cache.k is not None:   # static buffers [slots, B, H, T, D]: reorder the batch dimension
        cache.k, cache.v = cache.k.index_select(1, index), cache.v.index_select(1, index)


@torch.no_grad()
def beam_search(model: nn.Module, emb: torch.Tensor, beam_size: int, bos_id: int, eos_id: int,
                max_new_tokens: int = 32, length_penalty: float = 1.0,
                early_stopping: bool = True) -> tuple[list[list[int]], list[float]]:
    """Batched beam search with the KV cache (untempered model probabilities).

    Each row keeps `beam_size` live hypotheses; at every step the 2 * beam_size best extensions
    are ranked, an <eos> among the first beam_size ends a hypothesis, and the best beam_size
    others go on. With `early_stopping` a row stops once it has beam_size finished hypotheses
    (fairseq's rule; beam_size 1 is then greedy decoding); without it, once no live hypothesis
    can still score above its beam_size-th best finished one (log-probabilities only fall, so a
    live sum S can at best reach S / max_new_tokens ** length_penalty). At the length limit the
    live hypotheses are finished as they are.

    Args:
        model: a token model (see the module docstring).
        emb: [N, 768] conditioning embeddings.
        beam_size: hypotheses kept per row.
        bos_id, eos_id: start token, and the token that ends a sequence.
        max_new_tokens: length cap, at most `model.cfg.max_len - 1`.
        length_penalty: a hypothesis scores sum(log p) / length ** length_penalty, its length
            counting the <eos>; 1.0 is the mean log-probability (`generate`'s score).
    Returns:
        the best hypothesis of each row (token ids without bos/eos), and its score.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    device = emb.device
    N, K = emb.shape[0], beam_size
    limit = min(max_new_tokens, model.cfg.max_len - 1)
    cache = model.new_cache()
    logits = model(torch.full((N * K, 1), bos_id, dtype=torch.long, device=device),
                   emb=emb.repeat_interleave(K, dim=0), cache=cache)[:, -1]
    scores = torch.full((N, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # at the start the K beams of a row are the same: keep one
    tokens = torch.zeros(N * K, 0, dtype=torch.long, device=device)
    rows = torch.arange(N, device=device)[:, None] * K
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(N)]
    done = [False] * N
    for t in range(limit):
        logp = torch.log_softmax(logits.float(), dim=-1)
        V = logp.shape[-1]
        top, flat = (scores.view(N * K, 1) + logp).view(N, K * V).topk(min(2 * K, K * V), dim=1)
        beam, tok = flat // V, flat % V
        is_eos = tok == eos_id
        for n, j in (is_eos[:, :K] & top[:, :K].isfinite()).nonzero().tolist():
            if not done[n]:
                finished[n].append((top[n, j].item() / (t + 1) ** length_penalty, tokens[n * K + beam[n, j]].tolist()))
        keep = torch.sort(is_eos.int(), dim=1, stable=True).indices[:, :K]  # the best K that are not <eos>
        src = (rows + beam.gather(1, keep)).view(-1)
        nxt = tok.gather(1, keep).view(-1)
        scores = top.gather(1, keep)
        tokens = torch.cat([tokens[src], nxt[:, None]], dim=1)
        if early_stopping:
            done = [d or len(f) >= K for d, f in zip(done, finished)]
        else:
            bound = (scores.max(dim=1).values / limit ** length_penalty).tolist()  # best a live one can reach
            done = [d or (len(f) >= K and sorted(h[0] for h in f)[-K] >= b) for d, f, b in zip(done, finished, bound)]
        if all(done) or t == limit - 1:
            break
        _reorder_cache(cache, src)
        logits = model(nxt[:, None], cache=cache)[:, -1]
    for n in range(N):
        if not done[n]:  # out of length: the live hypotheses, cut at the limit
            for j in range(K):
                if torch.isfinite(scores[n, j]):
                    finished[n].append((scores[n, j].item() / tokens.shape[1] ** length_penalty, tokens[n * K + j].tolist()))
    best = [max(f, key=lambda h: h[0]) for f in finished]
    return [ids for _, ids in best], [s for s, _ in best]


# --------------------------------------------------------------------------- one-token step
# Through the modules, one new token costs ~150 aten calls per block (composite linear and
# matmul on 3-d inputs, reshapes, module calls); at these sizes the calls, not the arithmetic,
# take most of a CPU step. `block_step` is `Block.forward` for one new token per row, on 2-d
# rows [B, C] and the static cache, in ~15 calls. `block_weights` returns None for a block it
# does not know (a subclass, other parts, quantised linears): the model then keeps the module
# path. tests/test_generative.py and tests/test_ret.py check that both paths give the same tokens.

_PLAIN_BLOCK = {"attn_norm": RMSNorm, "attn": Attention, "ffn_norm": RMSNorm, "ffn": GatedFeedForward,
                "drop": nn.Dropout}


def _kept(owner: nn.Module, name: str, params: list[torch.Tensor], build):
    """build(), kept on `owner` until one of `params` is replaced or changed in place."""
    key = tuple((p.data_ptr(), p._version) for p in params)
    hit = owner.__dict__.get(name)
    if hit is None or hit[0] != key:
        hit = owner.__dict__[name] = (key, build())
    return hit[1]


def block_weights(block: nn.Module) -> tuple | None:
    """What `block_step` reads, or None when `block` is not a plain pre-norm `Block` in eval mode.

    Each RMSNorm's weight and sqrt(C) are folded into the matrix after it (the norm's scalar
    1 / sqrt(mean(x^2) + eps) commutes with the product), gate and up are one matrix, and every
    matrix is stored transposed and contiguous for `torch.mm`. The copies are kept on the block
    and built again when a weight changes (training) or moves (`.to`).
    """
    if (type(block) is not Block or block.training
            or {n: type(m) for n, m in block._modules.items()} != _PLAIN_BLOCK):
        return None
    attn, ffn = block.attn, block.ffn
    linears = (attn.qkv, attn.out, ffn.gate_proj, ffn.up_proj, ffn.down_proj)
    if any(type(lin) is not nn.Linear or lin.bias is not None for lin in linears):
        return None
    return _kept(block, "_step_weights", list(block.parameters()), lambda: _fold_block(block))


def head_weights(norm: RMSNorm, head: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """(matrix, c) with logits = mm(x, matrix) / rms_scale(x, c) = head(norm(x)): the final norm folded in."""
    def build():
        C = head.in_features
        return ((head.weight * (norm.weight * C ** 0.5)).t().contiguous(),
                head.weight.new_tensor(C * norm.eps).sqrt())
    return _kept(head, "_step_weights", [norm.weight, head.weight], build)


def _fold_block(block: Block) -> tuple:
    attn, ffn = block.attn, block.ffn
    C = attn.qkv.in_features
    qkv_t = (attn.qkv.weight * (block.attn_norm.weight * C ** 0.5)).t().contiguous()
    gate_up = torch.cat([ffn.gate_proj.weight, ffn.up_proj.weight])
    gate_up_t = (gate_up * (block.ffn_norm.weight * C ** 0.5)).t().contiguous()
    eps = qkv_t.new_tensor([C * block.attn_norm.eps, C * block.ffn_norm.eps]).sqrt()
    return (attn.n_heads, qkv_t, attn.out.weight.t().contiguous(), gate_up_t, ffn.down_proj.weight.t().contiguous(),
            eps[0], eps[1], ffn.gate_proj.out_features, ffn.activate)


def rms_scale(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """sqrt(sum(x^2) + c^2) per row: RMSNorm's divisor times sqrt(C), for c = sqrt(C * eps)."""
    return torch.hypot(torch.linalg.vector_norm(x, dim=-1, keepdim=True), c)


def block_step(w: tuple, x: torch.Tensor, rope: torch.Tensor, cache: KVCache, slot: int) -> torch.Tensor:
    """`Block.forward` for one new token per row: x [B, C] at position `cache.pos` -> [B, C].

    w: from `block_weights`; rope: the complex rotation of that position, [head_dim // 2] (cos + i sin).
    """
    H, qkv_t, out_t, gate_up_t, down_t, attn_c, ffn_c, hidden, activate = w
    B, C = x.shape
    D, pos = C // H, cache.pos
    qkv = torch.mm(x, qkv_t).div_(rms_scale(x, attn_c))
    qk = torch.view_as_real(torch.view_as_complex(qkv[:, :2 * C].view(B, 2, H, D // 2, 2)) * rope)
    k, v = cache.k[slot], cache.v[slot]
    k[:, :, pos] = qk[:, 1].view(B, H, D)
    v[:, :, pos] = qkv[:, 2 * C:].view(B, H, D)
    y = F.scaled_dot_product_attention(qk[:, 0].view(B, H, 1, D), k.narrow(2, 0, pos + 1), v.narrow(2, 0, pos + 1))
    x = torch.addmm(x, y.view(B, C), out_t)
    gu = torch.mm(x, gate_up_t).div_(rms_scale(x, ffn_c))
    return torch.addmm(x, activate(gu[:, :hidden]) * gu[:, hidden:], down_t)


# --------------------------------------------------------------------------- one-token step, compiled (CPU)
# For one or a few rows on a CPU a step is ~25 small operations per block, and through torch (4-35 us
# each) or numpy (1-18 us) their dispatch costs more than their arithmetic. `_cpu_step` is the whole
# step, every block and then the head, compiled by numba (the products stay BLAS calls): on 2 AMD EPYC
# cores one block of RET for one row took 45-53 us against 111-142 us in numpy. The model's
# `decode_step` uses it for up to CPU_STEP_MAX_ROWS float32 rows on the CPU, and `block_step` otherwise
# (more rows: one matrix product for all of them; a GPU; numba not installed). numba compiles it on
# first use (~10 s) and keeps the machine code in decoders/__pycache__ (later processes: ~1 s).

ACTIVATIONS = ("swiglu", "geglu", "glu", "pagated")   # `_cpu_step`'s `kind`: the index in this tuple


def cpu_step_weights(blocks: list[nn.Module], norm: RMSNorm, head: nn.Linear) -> tuple | None:
    """What `_cpu_step` reads, or None where it cannot run (numba missing, a block that is not plain,
    not float32 on the CPU). Each distinct block once (a shared block is stored once), stacked:
    (qkv [U, C, 3C] with the attention's 1/sqrt(head_dim) in its query columns (RoPE is linear, so
    the scale commutes with it), out [U, C, C], gate_up [U, C, 2F], down [U, F, C], the squared norm
    constants c2 [U, 2], paGLU's alpha [U], the block of each cache slot [S], the activation's index,
    the head [C, V] and its c2). Kept on the head until a weight changes."""
    unique = list({id(b): b for b in blocks}.values())
    w = [block_weights(b) for b in unique]
    if (numba is None or any(x is None for x in w) or w[0][1].dtype != torch.float32
            or w[0][1].device.type != "cpu" or len({b.ffn.kind for b in unique}) != 1):
        return None
    params = [p for b in unique for p in b.parameters()] + [norm.weight, head.weight]

    def build():
        H, C = w[0][0], w[0][1].shape[0]
        qkv = np.stack([x[1].detach().numpy() for x in w])
        qkv[:, :, :C] *= (C // H) ** -0.5
        alpha = [float(b.ffn.alpha) if b.ffn.kind == "pagated" else 0.0 for b in unique]
        head_m, head_c = head_weights(norm, head)
        return (qkv, np.stack([x[2].detach().numpy() for x in w]), np.stack([x[3].detach().numpy() for x in w]),
                np.stack([x[4].detach().numpy() for x in w]),
                np.array([[float(x[5]) ** 2, float(x[6]) ** 2] for x in w], dtype=np.float32),
                np.array(alpha, dtype=np.float32), np.array([unique.index(b) for b in blocks], dtype=np.int64),
                ACTIVATIONS.index(unique[0].ffn.kind), head_m.detach().numpy(), float(head_c) ** 2)
    with torch.no_grad():
        return _kept(head, "_cpu_step_weights", params, build)


def _cpu_step(x, signals, qkv, out, gate_up, down, c2, alpha, slot_block, kind, head, head_c2, cos, sin,
              k, v, pos):
    """One new token per row through every cache slot's block, then the head: x [B, C] -> logits [B, V].

    signals [S, B, 1, C] (per-slot signals added before each block; S = 0 for none); cos, sin [T, D / 2]
    (RoPE); k, v [S, B, H, T, D]: the static cache, written at `pos`. As `block_step` then `head`.
    """
    S, (B, C), H, D = slot_block.shape[0], x.shape, k.shape[2], k.shape[4]
    F, half = down.shape[1], D // 2
    logits = np.empty((B, head.shape[1]), np.float32)
    y, act, scores = np.empty(C, np.float32), np.empty(F, np.float32), np.empty(pos + 1, np.float32)
    for b in range(B):
        xb = x[b].copy()
        for i in range(S):
            u = slot_block[i]
            if signals.shape[0] > 0:
                xb += signals[i, b, 0]
            qkv_b = np.dot(xb, qkv[u]) * np.float32(1.0 / math.sqrt(np.dot(xb, xb) + c2[u, 0]))
            for m in range(C):       # rotate the (even, odd) pairs of every query and key head
                c, s = cos[pos, m % half], sin[pos, m % half]
                re, im = qkv_b[2 * m], qkv_b[2 * m + 1]
                qkv_b[2 * m], qkv_b[2 * m + 1] = re * c - im * s, re * s + im * c
            for h in range(H):
                q = qkv_b[h * D:(h + 1) * D]
                k[i, b, h, pos] = qkv_b[C + h * D:C + (h + 1) * D]
                v[i, b, h, pos] = qkv_b[2 * C + h * D:2 * C + (h + 1) * D]
                for t in range(pos + 1):
                    acc = np.float32(0.0)
                    for d in range(D):
                        acc += k[i, b, h, t, d] * q[d]
                    scores[t] = acc
                p = np.exp(scores - scores.max())
                p /= p.sum()
                y[h * D:(h + 1) * D] = 0.0
                for t in range(pos + 1):
                    for d in range(D):
                        y[h * D + d] += p[t] * v[i, b, h, t, d]
            xb += np.dot(y, out[u])
            gu = np.dot(xb, gate_up[u]) * np.float32(1.0 / math.sqrt(np.dot(xb, xb) + c2[u, 1]))
            for j in range(F):
                g = gu[j]
                if kind == 0:
                    a = g / (1.0 + math.exp(-g))
                elif kind == 1:
                    a = 0.5 * g * (1.0 + math.erf(g * 0.7071067811865476))
                elif kind == 2:
                    a = 1.0 / (1.0 + math.exp(-g))
                else:
                    a = alpha[u] * g / (1.0 + math.exp(-g)) + (1.0 - alpha[u])
                act[j] = a * gu[F + j]
            xb += np.dot(act, down[u])
        logits[b] = np.dot(xb, head) * np.float32(1.0 / math.sqrt(np.dot(xb, xb) + head_c2))
    return logits


if numba is not None:
    try:   # the machine code is kept next to this file, or in numba's user cache where that is read-only
        _cpu_step = numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})(_cpu_step)
    except RuntimeError:   # nowhere to keep it: compile in each process
        _cpu_step = numba.njit(nogil=True, fastmath={"reassoc", "contract"})(_cpu_step)


def make_decode_step(blocks: list[nn.Module], tok_emb: nn.Embedding, norm: RMSNorm, lm_head: nn.Linear,
                     rope_cos: torch.Tensor, rope_sin: torch.Tensor):
    """A token model's `decode_step`: (tokens [B], cache) -> logits [B, V] for one new token per row.

    Cache slot i runs blocks[i] (a shared block is listed once per application); per-layer signals
    in `cache.signals[0]`, where there are some, are added before each slot, as `forward` does.
    Up to CPU_STEP_MAX_ROWS float32 rows on the CPU go through `_cpu_step`, others through
    `block_step`. None when a block is not a plain `Block` in eval mode (the module path is used).
    """
    by_id = {id(b): block_weights(b) for b in blocks}   # a shared block once
    ws = [by_id[id(b)] for b in blocks]
    if any(w is None for w in ws):
        return None
    emb, (head, c) = tok_emb.weight, head_weights(norm, lm_head)
    rope = torch.complex(rope_cos, rope_sin)
    H, D = blocks[0].attn.n_heads, blocks[0].attn.head_dim
    cw = cpu_step_weights(blocks, norm, lm_head)
    if cw is not None:
        np_emb, np_cos, np_sin = emb.detach().numpy(), rope_cos.numpy(), rope_sin.numpy()
        no_signals = np.zeros((0, 1, 1, emb.shape[1]), np.float32)

    def step(tokens, cache):
        """tokens: ids [B], or input vectors [B, C] (the prefill's prefix positions)."""
        vectors = tokens.is_floating_point()
        if cache.k is None:
            cache.allocate(tokens.shape[0], H, D, emb.dtype, emb.device)
        signals = cache.signals[0] if cache.signals is not None else None   # (per-layer signals, adaLN cond)
        if cw is not None and tokens.shape[0] <= CPU_STEP_MAX_ROWS and cache.k.dtype == torch.float32:
            x = np.ascontiguousarray(tokens.numpy()) if vectors else np_emb[tokens.numpy()]
            sig = no_signals if signals is None else signals.numpy()
            logits = _cpu_step(x, sig, *cw, np_cos, np_sin, *cache.numpy_views(), cache.pos)
            cache.pos += 1
            return torch.from_numpy(logits)
        x, r = tokens if vectors else F.embedding(tokens, emb), rope[cache.pos]
        for i, w in enumerate(ws):
            if signals is not None:
                x = x + signals[i, :, 0].to(x.dtype)
            x = block_step(w, x, r, cache, i)
        cache.pos += 1
        return torch.mm(x, head).div_(rms_scale(x, c))
    return step
