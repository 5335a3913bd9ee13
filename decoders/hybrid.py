"""Hybrid decoder: iterative correction with the encoder's feedback (vec2text-style), anytime.

    e        the target embedding
    h, ê     a hypothesis text and its re-encoded embedding (all-mpnet-base-v2)

1. Start: a pool of hypotheses (the phrase bank's nearest phrases, the generative decoder's
   output), each re-encoded; the `beam` best unique ones by round-trip cosine e·ê are kept.
2. Correct: for every hypothesis in the beam, a corrector proposes new texts from (e, ê, h);
   all proposals of the step are re-encoded in one batched encoder call, and the beam is
   again the best `beam` unique texts seen so far.
3. Stop after `steps` corrections, when the best cosine reaches `stop_cos`, when a step
   brings no gain, or when the time budget would be overrun by one more step (anytime:
   the best text so far is always ready). The budget is per embedding: a call with n rows
   may take n x `budget_ms`, so a row gets no fewer steps in a batch than alone.

Correctors:
  TargetShift  needs no training: decodes e' = normalise(e + correction * (e - ê)) with the
               generative decoder, moving the target away from where the hypothesis landed.
  Corrector    the trained model in decoders/corrector.py, reading e, ê, e - ê and h; `load`
               uses it when assets/corrector holds a checkpoint, TargetShift otherwise.
With `feedback=False`, ê is replaced by e (the ablation of vec2text's Table 4). The default
(`feedback=None`) turns feedback on for a trained corrector and off for TargetShift: measured
on open-dev[:100], TargetShift scored cos 0.736 with feedback and 0.760 without (README,
"Hybrid ablations"); its shifted target lands further from the sentence than e itself, so the
gain comes from sampling around e and re-ranking with the encoder.

The result carries its trajectory, `Decoded.extra["trajectory"]`: the best text and its cosine
after each step (step 0 is the starting pool). Temperature 0 returns the best text; otherwise
the returned texts are drawn over cosine * logit_scale with the shared sampling function, and
the correction proposals are sampled with the same temperature, top-k and top-p.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from . import check_decoder_names, corrector, get_decoder
from .base import Decoded, Decoder, Sampling
from .encoder import encode as mpnet_encode
from .sampling import make_generator, sample_next_token

STARTS = ("pool", "bank", "generative", "empty")
MAX_STEPS, MAX_BEAM, MAX_BUDGET_MS = 50, 16, 60_000


@dataclass
class HybridConfig:
    start: str = "pool"               # pool | bank | generative | empty: where the hypotheses start
    bank_candidates: int = 4          # nearest phrases in the starting pool
    steps: int = 5                    # correction steps at most
    beam: int = 3                     # hypotheses kept between steps (sequence-level beam)
    proposals: int = 4                # corrections proposed per hypothesis per step
    budget_ms: float = 1500.0         # wall-clock budget per embedding: n rows in a call get n x this (0 = none)
    stop_cos: float = 0.99            # stop when the best round-trip cosine reaches this
    feedback: bool | None = None      # False: ê = e (no encoder feedback); None: on for a trained corrector only
    correction: float = 1.0           # TargetShift step size
    explore_temperature: float = 0.7  # temperature of the extra proposals in greedy mode
    logit_scale: float = 20.0         # sampling the returned texts: logits = cosine * scale
    bank_decoder: str | None = "phrase-bank"   # registry names of the parts `load` puts together
    generative_decoder: str = "generative"

    def __post_init__(self):
        if self.start not in STARTS:
            raise ValueError(f"start must be one of {', '.join(STARTS)}, got {self.start!r}")
        for name, value, lo, hi in (("steps", self.steps, 0, MAX_STEPS), ("beam", self.beam, 1, MAX_BEAM),
                                    ("proposals", self.proposals, 1, 16),
                                    ("budget_ms", self.budget_ms, 0, MAX_BUDGET_MS)):
            if not lo <= value <= hi:
                raise ValueError(f"hybrid {name} must be in [{lo}, {hi}], got {value!r}")


class Proposer(Protocol):
    def propose(self, target: np.ndarray, landed: np.ndarray, texts: list[str], sampling: Sampling,
                n: int) -> list[list[str]]:
        """For each row i: up to n new texts meant to land closer to target[i] than texts[i]."""


class TargetShift:
    """Corrector without training: decode the target moved away from where the hypothesis landed."""

    def __init__(self, generative: Decoder, correction: float = 1.0):
        self.generative, self.correction = generative, correction

    def propose(self, target, landed, texts, sampling, n):
        shifted = target + self.correction * (target - landed)
        shifted /= np.linalg.norm(shifted, axis=1, keepdims=True)
        out = self.generative.decode(shifted, replace(sampling, num_samples=n))
        return [[d.text for d in row] for row in out]


class HybridDecoder(Decoder):
    name = "hybrid"

    def __init__(self, bank: Decoder | None, generative: Decoder, corrector: Proposer | None = None,
                 cfg: HybridConfig | None = None, encode: Callable[[list[str]], np.ndarray] | None = None):
        self.bank, self.generative = bank, generative
        self.cfg = cfg or HybridConfig()
        self.corrector = corrector or TargetShift(generative, self.cfg.correction)
        self.encode = encode or mpnet_encode

    def configured(self, **overrides) -> "HybridDecoder":
        """The same decoder with some HybridConfig fields changed (steps, beam, budget_ms, ...)."""
        unknown = set(overrides) - set(HybridConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown hybrid setting(s) {sorted(unknown)}; valid: {sorted(HybridConfig.__dataclass_fields__)}")
        cfg = replace(self.cfg, **overrides)
        corrector = TargetShift(self.generative, cfg.correction) if isinstance(self.corrector, TargetShift) else self.corrector
        return HybridDecoder(self.bank, self.generative, corrector, cfg, self.encode)

    @property
    def feedback(self) -> bool:
        """Whether corrections read ê (cfg.feedback; by default only a trained corrector does)."""
        if self.cfg.feedback is not None:
            return self.cfg.feedback
        return not isinstance(self.corrector, TargetShift)

    @property
    def num_parameters(self) -> int:
        extra = getattr(self.corrector, "num_parameters", 0) if not isinstance(self.corrector, TargetShift) else 0
        return self.generative.num_parameters + extra

    def _start(self, x: torch.Tensor, sampling: Sampling) -> list[list[str]]:
        n, cfg = x.shape[0], self.cfg
        pools: list[list[str]] = [[] for _ in range(n)]
        if cfg.start in ("pool", "bank") and self.bank is not None:
            for pool, row in zip(pools, self.bank.decode(x, Sampling(num_samples=cfg.bank_candidates))):
                pool += [d.text for d in row]
        if cfg.start in ("pool", "generative"):
            first = Sampling(max_new_tokens=sampling.max_new_tokens)
            for pool, row in zip(pools, self.generative.decode(x, first)):
                pool += [d.text for d in row]
        return pools

    def _embed(self, texts: set[str], cache: dict[str, np.ndarray]) -> None:
        new = sorted(t for t in texts if t.strip() and t not in cache)
        if new:
            cache.update(zip(new, self.encode(new)))

    def _proposal_sampling(self, sampling: Sampling, step: int) -> Sampling:
        if sampling.greedy:   # deterministic exploration around the greedy correction
            return Sampling(temperature=self.cfg.explore_temperature, top_p=0.95,
                            max_new_tokens=sampling.max_new_tokens, seed=sampling.seed + 7919 * step)
        return replace(sampling, seed=sampling.seed + 7919 * step)

    def _correct(self, targets: np.ndarray, beams: list[list[str]], cache: dict, sampling: Sampling,
                 step: int) -> list[list[str]]:
        """New proposals for every hypothesis of every row, as one batch."""
        rows = [(i, h) for i, beam in enumerate(beams) for h in beam]
        if not rows:   # empty start: the first correction decodes the target itself
            rows = [(i, "") for i in range(len(beams))]
        target = targets[[i for i, _ in rows]]
        landed = np.stack([np.zeros_like(targets[i]) if not h else   # nothing has landed yet
                           cache[h] if self.feedback else targets[i] for i, h in rows])
        texts = [h for _, h in rows]
        proposals = [[] for _ in beams]
        k = self.cfg.proposals
        if sampling.greedy:
            greedy = self.corrector.propose(target, landed, texts, Sampling(max_new_tokens=sampling.max_new_tokens), 1)
            for (i, _), row in zip(rows, greedy):
                proposals[i] += row
            k -= 1
        if k > 0:
            for (i, _), row in zip(rows, self.corrector.propose(target, landed, texts,
                                                                self._proposal_sampling(sampling, step), k)):
                proposals[i] += row
        return proposals

    def search(self, x: torch.Tensor, sampling: Sampling) -> tuple[list[dict[str, float]], list[list[dict]]]:
        """Every scored text per row and the trajectory per row."""
        cfg, t0 = self.cfg, time.perf_counter()
        targets = x.numpy().astype(np.float32)
        cache: dict[str, np.ndarray] = {}
        scored: list[dict[str, float]] = [{} for _ in range(len(targets))]

        def add(i: int, texts: list[str]) -> None:
            for t in texts:
                if t in cache:
                    scored[i][t] = float(cache[t] @ targets[i])

        pools = self._start(x, sampling)
        self._embed({t for p in pools for t in p}, cache)
        for i, p in enumerate(pools):
            add(i, p)
        beams = [sorted(s, key=s.get, reverse=True)[:cfg.beam] for s in scored]
        trajectory = [[{"step": 0, "text": b[0] if b else "", "cos": scored[i][b[0]] if b else None}]
                      for i, b in enumerate(beams)]
        active = [i for i in range(len(targets)) if not beams[i] or scored[i][beams[i][0]] < cfg.stop_cos]
        step_s = 0.0
        for step in range(1, cfg.steps + 1):
            elapsed = time.perf_counter() - t0
            if not active or (cfg.budget_ms and (elapsed + step_s) * 1000 > cfg.budget_ms * len(targets)):
                break
            t_step = time.perf_counter()
            proposals = self._correct(targets[active], [beams[i] for i in active], cache, sampling, step)
            self._embed({t for p in proposals for t in p}, cache)
            still = []
            for j, i in enumerate(active):
                before = scored[i][beams[i][0]] if beams[i] else -1.0
                add(i, proposals[j])
                beams[i] = sorted(scored[i], key=scored[i].get, reverse=True)[:cfg.beam]
                best = scored[i][beams[i][0]] if beams[i] else None
                trajectory[i].append({"step": step, "text": beams[i][0] if beams[i] else "", "cos": best})
                if best is not None and best > before + 1e-6 and best < cfg.stop_cos:
                    still.append(i)
            active = still
            step_s = time.perf_counter() - t_step
        return scored, trajectory

    def _decode(self, x: torch.Tensor, sampling: Sampling) -> list[list[Decoded]]:
        scored, trajectory = self.search(x, sampling)
        gen = make_generator(sampling.seed)
        out = []
        for s, traj in zip(scored, trajectory):
            texts = sorted(s, key=s.get, reverse=True)
            if not texts:
                out.append([Decoded("", None, {"trajectory": traj}) for _ in range(sampling.num_samples)])
                continue
            logits = torch.tensor([s[t] * self.cfg.logit_scale for t in texts])
            row = []
            for _ in range(min(sampling.num_samples, len(texts))):
                j = int(sample_next_token(logits[None], sampling, gen))
                row.append(Decoded(texts[j], s[texts[j]], {"trajectory": traj}))
                logits[j] = float("-inf")
            out.append(row)
        return out


def load(device: str = "cpu", cfg: HybridConfig | None = None,
         corrector_dir: Path = corrector.ASSET_DIR) -> HybridDecoder:
    """The registered decoders named in `cfg` (loaded once per process by the registry), and the
    trained corrector when `corrector_dir` holds a checkpoint (TargetShift otherwise)."""
    cfg = cfg or HybridConfig()
    check_decoder_names([n for n in (cfg.bank_decoder, cfg.generative_decoder) if n])
    bank = get_decoder(cfg.bank_decoder, device) if cfg.bank_decoder else None
    trained = corrector.load(device, corrector_dir) if corrector.has_checkpoint(corrector_dir) else None
    return HybridDecoder(bank, get_decoder(cfg.generative_decoder, device), trained, cfg=cfg)
