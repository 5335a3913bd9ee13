"""Hybrid decoder: pool the other decoders' candidates and let the encoder judge them.

1. Propose: the phrase bank's nearest phrases, the generative decoder's greedy output and
   a few samples, RET's greedy output.
2. Re-encode every candidate with all-mpnet-base-v2 and keep the ones closest to the target.
3. Refine (vec2text-style feedback): move the target away from where the best candidate
   landed, e' = normalise(t + correction * (t - e(best))), decode e' with the generative
   decoder, re-encode, and keep whatever lands closer to the *original* target.

Temperature 0 returns the candidate with the highest round-trip cosine; otherwise candidates
are drawn with the shared sampling function over logits = cosine * logit_scale.
Its score is that round-trip cosine, so it can never rank below the best candidate it saw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import check_decoder_names, get_decoder
from .base import Decoded, Decoder, Sampling
from .encoder import encode as mpnet_encode
from .sampling import make_generator, sample_next_token


@dataclass
class HybridConfig:
    bank_candidates: int = 8          # nearest phrases proposed by the phrase bank
    generative_samples: int = 6       # sampled generative candidates (besides its greedy one)
    explore_temperature: float = 0.8  # temperature of those samples
    refine_steps: int = 1             # feedback rounds
    correction: float = 1.0           # step size of the target correction
    logit_scale: float = 20.0         # as the phrase bank: logits = cosine * scale
    bank_decoder: str = "phrase-bank"   # registry names of the proposers `load` puts together
    generative_decoder: str = "generative"
    ret_decoder: str | None = "ret"     # None: no byte-level proposer


class HybridDecoder(Decoder):
    name = "hybrid"

    def __init__(self, bank, generative, ret=None, cfg: HybridConfig | None = None, encode=None):
        self.bank, self.generative, self.ret = bank, generative, ret
        self.cfg = cfg or HybridConfig()
        self.encode = encode or mpnet_encode

    @property
    def num_parameters(self) -> int:
        return self.generative.num_parameters + (self.ret.num_parameters if self.ret else 0)

    def _propose(self, x: torch.Tensor, sampling: Sampling, seed: int) -> list[list[str]]:
        cfg, n = self.cfg, x.shape[0]
        pools = [[] for _ in range(n)]
        bank = self.bank.decode(x, Sampling(num_samples=cfg.bank_candidates))
        greedy = Sampling(max_new_tokens=sampling.max_new_tokens)
        gen = self.generative.decode(x, greedy)
        explore = Sampling(temperature=cfg.explore_temperature, top_p=0.95, max_new_tokens=sampling.max_new_tokens,
                           num_samples=cfg.generative_samples, seed=seed) if cfg.generative_samples else None
        gen_s = self.generative.decode(x, explore) if explore else [[] for _ in range(n)]
        ret = self.ret.decode(x, greedy) if self.ret is not None else [[] for _ in range(n)]
        for i in range(n):
            pools[i] = [d.text for d in bank[i] + gen[i] + gen_s[i] + ret[i]]
        return pools

    def _score(self, pools: list[list[str]], targets: np.ndarray) -> list[dict[str, float]]:
        """Round-trip cosine of every distinct non-empty candidate, one encoder call for the batch."""
        flat = sorted({t for pool in pools for t in pool if t.strip()})
        vecs = dict(zip(flat, self.encode(flat))) if flat else {}
        return [{t: float(vecs[t] @ targets[i]) for t in pool if t in vecs} for i, pool in enumerate(pools)]

    def _decode(self, x: torch.Tensor, sampling: Sampling) -> list[list[Decoded]]:
        targets = x.numpy()
        scored = self._score(self._propose(x, sampling, sampling.seed), targets)
        for step in range(self.cfg.refine_steps):
            best = [max(s, key=s.get) if s else None for s in scored]
            have = [i for i, b in enumerate(best) if b is not None]
            if not have:
                break
            landed = self.encode([best[i] for i in have])
            corrected = targets[have] + self.cfg.correction * (targets[have] - landed)
            corrected /= np.linalg.norm(corrected, axis=1, keepdims=True)
            explore = Sampling(temperature=self.cfg.explore_temperature, top_p=0.95,
                               max_new_tokens=sampling.max_new_tokens,
                               num_samples=max(1, self.cfg.generative_samples // 2), seed=sampling.seed + step + 1)
            greedy = self.generative.decode(corrected, Sampling(max_new_tokens=sampling.max_new_tokens))
            samples = self.generative.decode(corrected, explore)
            pools = [[d.text for d in g + s] for g, s in zip(greedy, samples)]
            new = self._score(pools, targets[have])
            for j, i in enumerate(have):
                scored[i].update(new[j])
        gen = make_generator(sampling.seed)
        out = []
        for s in scored:
            if not s:
                out.append([Decoded("", None) for _ in range(sampling.num_samples)])
                continue
            texts = sorted(s, key=s.get, reverse=True)
            logits = torch.tensor([s[t] * self.cfg.logit_scale for t in texts])
            row = []
            for _ in range(min(sampling.num_samples, len(texts))):
                j = int(sample_next_token(logits[None], sampling, gen))
                row.append(Decoded(texts[j], s[texts[j]]))
                logits[j] = float("-inf")
            out.append(row)
        return out


def load(device: str = "cpu", cfg: HybridConfig | None = None) -> HybridDecoder:
    """The registered proposers named in `cfg` (loaded once per process by the registry)."""
    cfg = cfg or HybridConfig()
    check_decoder_names([n for n in (cfg.bank_decoder, cfg.generative_decoder, cfg.ret_decoder) if n])
    ret = get_decoder(cfg.ret_decoder, device) if cfg.ret_decoder else None
    return HybridDecoder(get_decoder(cfg.bank_decoder, device), get_decoder(cfg.generative_decoder, device), ret, cfg)
