"""Hybrid decoder: iterative correction with the encoder's feedback (vec2text-style), anytime.

    e        the target embedding
    h, ê     a hypothesis text and its re-encoded embedding (all-mpnet-base-v2)

1. Start: a pool of hypotheses (the phrase bank's nearest phrases, the generative decoder's
   output), each re-encoded; the `beam` best unique ones by round-trip cosine e·ê are kept.
2. Correct: for every hypothesis in the beam, a corrector proposes new texts from (e, ê, h);
   all proposals of the step are re-encoded in one batched encoder call, and the beam is
   again the best `beam` unique texts seen so far.
3. Stop after `steps` corrections, when the best cosine reaches `stop_cos`, when a step
   brings no gain, or when the time budget would be overrun by the shortest useful step, the
   last step's proposals and one encoder call (anytime: the best text so far is always ready).
   Within a step the proposals are encoded in chunks of `ENCODE_CHUNK`, rows taking turns, and
   a step whose budget runs out keeps what was encoded (the first step cannot be predicted from
   an earlier one). The budget is per embedding: a call with n rows may take n x `budget_ms`,
   so a row gets no fewer steps in a batch than alone.
The encoder runs in `search_dtype` (auto: bfloat16 on a GPU or a CPU that computes it natively,
float32 elsewhere). On the 2-core AMX Xeon bfloat16 encodes open-dev sentences 3.1x faster
(6.1 against 18.7 ms each in batches of 32, `python -m decoders.corpus speed`) and moves
cosines by ~1e-4, so the scores returned are the search's; eval's round-trip cosine re-encodes
the output in float32.

Correctors:
  TargetShift  needs no training: decodes e' = normalise(e + correction * (e - ê)) with the
               generative decoder, moving the target away from where the hypothesis landed.
  Corrector    the trained model in decoders/corrector.py, reading e, ê, e - ê and h; `load`
               uses it when assets/corrector holds a checkpoint, TargetShift otherwise.
Edits (`edits` per hypothesis and step, beside the corrector's proposals; no model): word-level
changes of a hypothesis, the encoder judging them like every other proposal. A span of 1-3 words
deleted, a crossover with one of the row's best texts so far (the head of one, the tail of the
other), or a span of 1-4 of their words inserted. Crossover joins what the bank's phrases and
the decoder's samples each got right; measured on open-dev it raises the cosine under the other
encoder too (README, "Decoders"), so it is not only the search fitting mpnet. Beside the row's
best texts, the donors include the bank's `residual_donors` phrases nearest to e - ê of the best
hypothesis: what it misses, whose words an insertion can add.
Word edits (`word_edits` per hypothesis and step, when a word probe is loaded): the word probe
(decoders/word_probe.py) reads p(word in sentence | e) for 12K words from the target; an edit
inserts one of the `probe_words` likeliest words the hypothesis lacks, deletes one of its 3
least likely words, or replaces one of those by a likely missing word. Random edits find such
changes by chance; the probe points at them.
Screen (`screen` per row and step, when a screen is loaded; 0 = off): all-MiniLM-L6-v2 with a
linear map into mpnet's space (decoders/screen.py) estimates every new proposal's cosine at
about a quarter of mpnet's cost per text, and only the row's `screen` best go on to mpnet, which
alone scores them. It lets a step propose more (more edits) for what mpnet would encode anyway.
With `feedback=False`, ê is replaced by e (the ablation of vec2text's Table 4). The default
(`feedback=None`) turns feedback on for a trained corrector and off for TargetShift: measured
on open-dev[:100], TargetShift scored cos 0.707 with feedback and 0.725 without (README,
"Decoders"); its shifted target lands further from the sentence than e itself, so the
gain comes from sampling around e and re-ranking with the encoder.

The result carries its trajectory, `Decoded.extra["trajectory"]`: the best text and its cosine
after each step (step 0 is the starting pool). Temperature 0 returns the best text; otherwise
the returned texts are drawn over cosine * logit_scale with the shared sampling function, and
the correction proposals are sampled with the same temperature, top-k and top-p.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from . import check_decoder_names, corrector, get_decoder, screen, word_probe
from .base import Decoded, Decoder, Sampling
from .encoder import default_dtype, encode as mpnet_encode
from .sampling import make_generator, sample_next_token
from .screen import Screen
from .word_probe import WordProbe, WordVocab, words

STARTS = ("pool", "bank", "generative", "empty")
MAX_STEPS, MAX_BEAM, MAX_BUDGET_MS = 50, 16, 60_000
ENCODE_CHUNK = 32   # proposals per encoder call within a step, the clock read between calls
SEARCH_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class HybridConfig:
    start: str = "pool"               # pool | bank | generative | empty: where the hypotheses start
    bank_candidates: int = 4          # nearest phrases in the starting pool
    steps: int = 5                    # correction steps at most
    beam: int = 3                     # hypotheses kept between steps (sequence-level beam)
    proposals: int = 4                # corrections proposed per hypothesis per step
    edits: int = 12                   # random word-level edits proposed per hypothesis per step (0 = none)
    donors: int = 8                   # best texts of the row whose words the edits may take
    residual_donors: int = 4          # + the bank's phrases nearest to e - ê of the best hypothesis
    word_edits: int = 12              # edits steered by the word probe per hypothesis per step (0 = none)
    probe_words: int = 10             # the likeliest words a hypothesis lacks that those edits may insert
    screen: int = 18                  # new proposals per row and step that mpnet encodes, the screen's best (0 = all)
    budget_ms: float = 1500.0         # wall-clock budget per embedding: n rows in a call get n x this (0 = none)
    stop_cos: float = 0.99            # stop when the best round-trip cosine reaches this
    search_dtype: str = "auto"        # encoder precision while searching (auto: bfloat16 where computed natively)
    feedback: bool | None = None      # False: ê = e (no encoder feedback); None: on for a trained corrector only
    correction: float = 1.0           # TargetShift step size
    explore_temperature: float = 0.7  # temperature of the extra proposals in greedy mode
    logit_scale: float = 20.0         # sampling the returned texts: logits = cosine * scale
    bank_decoder: str | None = "phrase-bank"   # registry names of the parts `load` puts together
    generative_decoder: str = "generative"

    def __post_init__(self):
        if self.search_dtype not in SEARCH_DTYPES:
            raise ValueError(f"search_dtype must be one of {', '.join(SEARCH_DTYPES)}, got {self.search_dtype!r}")
        if self.start not in STARTS:
            raise ValueError(f"start must be one of {', '.join(STARTS)}, got {self.start!r}")
        for name, value, lo, hi in (("steps", self.steps, 0, MAX_STEPS), ("beam", self.beam, 1, MAX_BEAM),
                                    ("proposals", self.proposals, 1, 16), ("edits", self.edits, 0, 64),
                                    ("donors", self.donors, 1, 64), ("residual_donors", self.residual_donors, 0, 64),
                                    ("word_edits", self.word_edits, 0, 64), ("probe_words", self.probe_words, 1, 256),
                                    ("screen", self.screen, 0, 1024),
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


def distinct_edits(text: str, n: int, draw: Callable[[], list[str] | None]) -> list[str]:
    """Up to n distinct texts other than `text`, each the words `draw()` returns (None: nothing left
    to try), in at most 20 n draws."""
    out: dict[str, None] = {}
    for _ in range(20 * n):
        if len(out) >= n:
            break
        c = draw()
        if c is None:
            break
        t = " ".join(c)
        if t and t != text:
            out[t] = None
    return list(out)


def edit_proposals(text: str, donors: list[str], rng: random.Random, n: int) -> list[str]:
    """Up to n distinct word-level edits of `text`: delete a span of 1-3 words, cross over with a
    donor text (text's head + donor's tail, or donor's head + text's tail), or insert a span of 1-4
    donor words. Deterministic for a given rng state."""
    w = text.split()
    donor_words = [d.split() for d in donors if d.split() and d != text]

    def draw() -> list[str] | None:
        r = rng.random()
        if (r < 0.3 or not donor_words) and len(w) > 1:
            i = rng.randrange(len(w))
            return w[:i] + w[i + rng.randint(1, 3):]
        if donor_words and r < 0.8:
            d = rng.choice(donor_words)
            i, j = rng.randint(1, max(1, len(w))), rng.randrange(len(d))
            return w[:i] + d[j:] if rng.random() < 0.5 else d[:j + 1] + w[i:]
        if donor_words:
            d = rng.choice(donor_words)
            j, i = rng.randrange(len(d)), rng.randint(0, len(w))
            return w[:i] + d[j:j + rng.randint(1, 4)] + w[i:]
        return None

    return distinct_edits(text, n, draw)


def word_edits(text: str, p: np.ndarray, vocab: WordVocab, rng: random.Random, n: int, top: int = 10) -> list[str]:
    """Up to n distinct edits of `text` steered by p[j] = p(vocab word j in the sentence | e) (the
    word probe): insert one of the `top` likeliest words the text lacks (drawn in proportion to p)
    at a random position, delete one of the text's 3 least likely words (words the vocabulary
    lacks are never chosen), or replace one of those by a likely missing word."""
    w = text.split()
    present = set(words(text))
    k = min(len(p), top + len(present))
    likely = np.argpartition(-p, k - 1)[:k]
    likely = likely[np.argsort(-p[likely], kind="stable")]
    lacking = [j for j in likely if vocab.vocab[j] not in present][:top]
    missing, weights = [vocab.vocab[j] for j in lacking], p[lacking].tolist()
    known = [(min(p[vocab.index[x]] for x in ws), i) for i, ws in
             ((i, [x for x in words(t) if x in vocab.index]) for i, t in enumerate(w)) if ws]
    unlikely = [i for _, i in sorted(known)[:3]]

    def draw() -> list[str] | None:
        r = rng.random()
        if missing and (r < 0.5 or not unlikely):
            i = rng.randint(0, len(w))
            return w[:i] + rng.choices(missing, weights) + w[i:]
        if unlikely and len(w) > 1 and (r < 0.75 or not missing):
            i = rng.choice(unlikely)
            return w[:i] + w[i + 1:]
        if unlikely and missing:
            i = rng.choice(unlikely)
            return w[:i] + rng.choices(missing, weights) + w[i + 1:]
        return None

    return distinct_edits(text, n, draw)


class HybridDecoder(Decoder):
    name = "hybrid"

    def __init__(self, bank: Decoder | None, generative: Decoder, corrector: Proposer | None = None,
                 cfg: HybridConfig | None = None, encode: Callable[[list[str]], np.ndarray] | None = None,
                 device: str = "cpu", probe: WordProbe | None = None, screen: Screen | None = None):
        """`encode` replaces all-mpnet-base-v2 (tests); by default it encodes in `cfg.search_dtype`.
        Without a word `probe`, `word_edits` has no effect; without a `screen`, every proposal is encoded."""
        self.bank, self.generative, self.probe, self.screen = bank, generative, probe, screen
        self.cfg = cfg or HybridConfig()
        self.corrector = corrector or TargetShift(generative, self.cfg.correction)
        self.device, self._encode = device, encode
        dtype = default_dtype(device) if self.cfg.search_dtype == "auto" else self.cfg.search_dtype
        self.encode = encode or partial(mpnet_encode, device=device, dtype=dtype, strict=False)

    def configured(self, **overrides) -> "HybridDecoder":
        """The same decoder with some HybridConfig fields changed (steps, beam, budget_ms, ...)."""
        unknown = set(overrides) - set(HybridConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown hybrid setting(s) {sorted(unknown)}; valid: {sorted(HybridConfig.__dataclass_fields__)}")
        cfg = replace(self.cfg, **overrides)
        corrector = TargetShift(self.generative, cfg.correction) if isinstance(self.corrector, TargetShift) else self.corrector
        return HybridDecoder(self.bank, self.generative, corrector, cfg, self._encode, self.device, self.probe,
                             self.screen)

    @property
    def feedback(self) -> bool:
        """Whether corrections read ê (cfg.feedback; by default only a trained corrector does)."""
        if self.cfg.feedback is not None:
            return self.cfg.feedback
        return not isinstance(self.corrector, TargetShift)

    @property
    def num_parameters(self) -> int:
        extra = getattr(self.corrector, "num_parameters", 0) if not isinstance(self.corrector, TargetShift) else 0
        probe = self.probe.num_parameters if self.probe is not None and self.cfg.word_edits else 0
        screening = self.screen.num_parameters if self.screen is not None and self.cfg.screen else 0
        return self.generative.num_parameters + extra + probe + screening

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

    def _embed(self, texts, cache: dict[str, np.ndarray], deadline: float | None = None) -> float:
        """Encode the texts not in `cache` yet, in the order given (duplicates dropped), in chunks of
        ENCODE_CHUNK; with a `deadline` (time.perf_counter() seconds), stop once it has passed.
        Returns the longest time one encoder call took (s)."""
        new = list(dict.fromkeys(t for t in texts if t.strip() and t not in cache))
        size = ENCODE_CHUNK if deadline is not None else max(1, len(new))
        longest = 0.0
        for s in range(0, len(new), size):
            if s and deadline is not None and time.perf_counter() > deadline:
                break
            chunk, t = new[s:s + size], time.perf_counter()
            cache.update(zip(chunk, self.encode(chunk)))
            longest = max(longest, time.perf_counter() - t)
        return longest

    def _missing_phrases(self, missing: np.ndarray) -> list[list[str]]:
        """The bank's `residual_donors` phrases nearest to each row of `missing` (e - ê); none for a
        row that misses nothing (e = ê)."""
        some = np.linalg.norm(missing, axis=1) > 1e-6
        found = iter(self.bank.decode(missing[some], Sampling(num_samples=self.cfg.residual_donors)) if some.any() else [])
        return [[d.text for d in next(found)] if s else [] for s in some]

    def _proposal_sampling(self, sampling: Sampling, step: int) -> Sampling:
        if sampling.greedy:   # deterministic exploration around the greedy correction
            return Sampling(temperature=self.cfg.explore_temperature, top_p=0.95,
                            max_new_tokens=sampling.max_new_tokens, seed=sampling.seed + 7919 * step)
        return replace(sampling, seed=sampling.seed + 7919 * step)

    def _correct(self, targets: np.ndarray, beams: list[list[str]], cache: dict, sampling: Sampling,
                 step: int, donors: list[list[str]], word_p: np.ndarray | None = None) -> list[list[str]]:
        """New proposals for every hypothesis of every row: the corrector's as one batch, then
        `edits` word-level edits of each hypothesis taking words from the row's `donors`, then
        `word_edits` edits steered by the word probe's probabilities `word_p` [rows, vocab]."""
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
        if self.cfg.edits:   # seeded by the hypothesis itself: a row's edits do not depend on its batch
            for i, beam in enumerate(beams):
                for h in beam:
                    rng = random.Random(f"{sampling.seed}/{step}/{h}")
                    proposals[i] += edit_proposals(h, donors[i], rng, self.cfg.edits)
        if self.cfg.word_edits and word_p is not None:
            for i, beam in enumerate(beams):
                for h in beam or [""]:
                    rng = random.Random(f"{sampling.seed}/{step}/{h}/words")
                    proposals[i] += word_edits(h, word_p[i], self.probe.vocab, rng, self.cfg.word_edits,
                                               self.cfg.probe_words)
        return proposals

    def search(self, x: torch.Tensor, sampling: Sampling) -> tuple[list[dict[str, float]], list[list[dict]]]:
        """Every scored text per row and the trajectory per row."""
        cfg, t0 = self.cfg, time.perf_counter()
        targets = x.numpy().astype(np.float32)
        cache: dict[str, np.ndarray] = {}
        scored: list[dict[str, float]] = [{} for _ in range(len(targets))]
        word_p = self.probe.probs(targets) if self.probe is not None and cfg.word_edits else None

        def add(i: int, texts: list[str]) -> None:
            for t in texts:
                if t in cache:
                    scored[i][t] = float(cache[t] @ targets[i])

        pools = self._start(x, sampling)
        self._embed([t for p in pools for t in p], cache)
        deadline = t0 + cfg.budget_ms * len(targets) / 1000 if cfg.budget_ms else None
        for i, p in enumerate(pools):
            add(i, p)
        beams = [sorted(s, key=s.get, reverse=True)[:cfg.beam] for s in scored]
        trajectory = [[{"step": 0, "text": b[0] if b else "", "cos": scored[i][b[0]] if b else None}]
                      for i, b in enumerate(beams)]
        active = [i for i in range(len(targets)) if not beams[i] or scored[i][beams[i][0]] < cfg.stop_cos]
        least_s = 0.0   # the shortest useful step, from the last one: its proposals and one encoder call
        for step in range(1, cfg.steps + 1):
            elapsed = time.perf_counter() - t0
            if not active or (cfg.budget_ms and (elapsed + least_s) * 1000 > cfg.budget_ms * len(targets)):
                break
            t_step = time.perf_counter()
            donors = [sorted(scored[i], key=scored[i].get, reverse=True)[:cfg.donors] if cfg.edits else []
                      for i in active]
            if cfg.edits and cfg.residual_donors and self.bank is not None:
                missing = np.stack([targets[i] - cache[beams[i][0]] if beams[i] else targets[i] for i in active])
                for d, phrases in zip(donors, self._missing_phrases(missing)):
                    d += phrases
            proposals = self._correct(targets[active], [beams[i] for i in active], cache, sampling, step, donors,
                                      word_p[active] if word_p is not None else None)
            if cfg.screen and self.screen is not None:   # mpnet encodes only the screen's best new texts
                fresh = [list(dict.fromkeys(t for t in p if t.strip() and t not in scored[i]))   # per row: rows
                         for i, p in zip(active, proposals)]                                     # stay independent
                proposals = self.screen.pick(targets[active], fresh, cfg.screen)
            propose_s = time.perf_counter() - t_step
            turns = [p[k] for k in range(max(map(len, proposals), default=0)) for p in proposals if k < len(p)]
            least_s = propose_s + self._embed(turns, cache, deadline)   # rows take turns: a cut step shortchanges none
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


def load(device: str = "cpu", cfg: HybridConfig | None = None, corrector_dir: Path = corrector.ASSET_DIR,
         probe_dir: Path = word_probe.ASSET_DIR, screen_dir: Path = screen.ASSET_DIR) -> HybridDecoder:
    """The registered decoders named in `cfg` (loaded once per process by the registry), the
    trained corrector when `corrector_dir` holds a checkpoint (TargetShift otherwise), the word
    probe when `probe_dir` holds one (no word edits otherwise) and the screen when `screen_dir`
    holds one (every proposal encoded otherwise)."""
    cfg = cfg or HybridConfig()
    check_decoder_names([n for n in (cfg.bank_decoder, cfg.generative_decoder) if n])
    bank = get_decoder(cfg.bank_decoder, device) if cfg.bank_decoder else None
    trained = corrector.load(device, corrector_dir) if corrector.has_checkpoint(corrector_dir) else None
    probe = word_probe.load(device, probe_dir) if word_probe.has_checkpoint(probe_dir) else None
    screener = screen.load(device, screen_dir) if screen.has_checkpoint(screen_dir) else None
    return HybridDecoder(bank, get_decoder(cfg.generative_decoder, device), trained, cfg=cfg, device=device,
                         probe=probe, screen=screener)
