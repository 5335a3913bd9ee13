"""Ablations of the hybrid decoder's search (issue 11): one row per setting, on a corpus split.

    python -m tools.hybrid_ablations --split open-dev --limit 200 --out runs/ablations      # every group
    python -m tools.hybrid_ablations --split open-dev --limit 50 --groups base --corrector none   # TargetShift
    python -m tools.hybrid_ablations --split open-dev --limit 200 --device cuda --groups steps,beam

Groups (each row changes one HybridConfig field from the base setting, `--set` overrides the base):
  base      the defaults
  feedback  feedback on and off (off: ê = e, no encoder feedback; the default is on for a trained
            corrector, off for TargetShift)
  steps     steps 1, 3, 5, 10 with no time budget
  beam      beam 1, 3, 5 with no time budget
  start     start from bank, generative, empty
  budget    budget_ms 500, 1000, 2000
  edits     word-level edits per hypothesis and step 0 (the corrector's proposals only), 8, 16, 32
  residual  the bank's phrases nearest to e - ê among the edits' donors: 0 and 4
  words     edits steered by the word probe per hypothesis and step: 0, 8, 16, and 4 of them
            beside 4 random edits (as many proposals as session 10's 8 random edits alone)
  proposals the generative decoder's proposals per hypothesis and step: 4 (default), 2, 1
  mix       8 edits a step split between random and steered (4 + 4: the default, 2 + 6, 0 + 8),
            and 20 instead of 10 likely missing words for the steered ones to insert
  screen    no screen (every proposal encoded, session 11's 4 + 4 edits), and the screen passing mpnet 18 new proposals
            per row and step out of 8 + 8 or 12 + 12 edits, and of 8 + 8 with one generative proposal
  screen-proposals  no screen (4 + 4 edits), and the screen with 12 + 12 edits, 8 + 8 edits and one generative
            proposal, 12 + 12 edits and one generative proposal
  screen-k  the screen passing mpnet 18 (default), 12 or 24 new proposals per row and step

Each input is decoded alone (greedy), as the app does, so the latency is per sentence. Scores:
round-trip cosine (all-mpnet-base-v2 in float32 of the returned text against the target, as
eval scores it; a row with no candidate at all has no cosine and is counted under "no output"), the
independent cosine (all-MiniLM-L6-v2 of output and reference: a search that fits mpnet's quirks
rather than the sentence gains under mpnet only), corpus BLEU and exact match (eval.metrics), the
mean number of correction steps run, and p50/p95 latency of decode(); the table also gives each
row's per-sentence change of cos against its group's first row. The corrector is
assets/corrector when it holds a checkpoint, else TargetShift; `--corrector DIR|none` picks.
Writes OUT/ablations.json and OUT/ablations.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from decoders import Sampling, corrector, hybrid
from decoders.corpus import SPLITS
from eval import metrics
from training.config import parse_key_values
from training.data import load_dev

GROUPS = {
    "base": [{}],
    "feedback": [{"feedback": True}, {"feedback": False}],
    "steps": [{"steps": s, "budget_ms": 0} for s in (1, 3, 5, 10)],
    "beam": [{"beam": b, "budget_ms": 0} for b in (1, 3, 5)],
    "start": [{"start": s} for s in ("bank", "generative", "empty")],
    "budget": [{"budget_ms": b} for b in (500, 1000, 2000)],
    "edits": [{"edits": e} for e in (0, 8, 16, 32)],
    "residual": [{"residual_donors": r} for r in (0, 4)],
    "words": [{"word_edits": 0, "edits": 8}, {"word_edits": 8, "edits": 8}, {"word_edits": 16, "edits": 8},
              {"edits": 4, "word_edits": 4}],
    "proposals": [{"proposals": p} for p in (4, 2, 1)],
    "mix": [{"edits": 4, "word_edits": 4}, {"edits": 2, "word_edits": 6}, {"edits": 0, "word_edits": 8},
            {"probe_words": 20}],
    "screen": [{"screen": 0, "edits": 4, "word_edits": 4}, {"screen": 18, "edits": 8, "word_edits": 8},
               {"screen": 18, "edits": 12, "word_edits": 12}, {"screen": 18, "edits": 8, "word_edits": 8, "proposals": 1}],
    "screen-proposals": [{"screen": 0, "edits": 4, "word_edits": 4}, {"screen": 18, "edits": 12, "word_edits": 12},
                         {"screen": 18, "edits": 8, "word_edits": 8, "proposals": 1},
                         {"screen": 18, "edits": 12, "word_edits": 12, "proposals": 1}],
    "screen-k": [{"screen": 18}, {"screen": 12}, {"screen": 24}],
}


def run(decoder: hybrid.HybridDecoder, refs: list[str], targets: np.ndarray,
        max_new_tokens: int = Sampling.max_new_tokens) -> dict:
    """Decode each target alone; the summary row."""
    sampling = Sampling(max_new_tokens=max_new_tokens)
    decoder.decode(targets[:1], sampling)   # warm-up
    texts, found, steps, ms = [], [], [], []
    for x in targets:
        t0 = time.perf_counter()
        d = decoder.decode(x[None], sampling)[0][0]
        ms.append((time.perf_counter() - t0) * 1000)
        texts.append(d.text)
        found.append(d.score is not None)
        steps.append(d.extra["trajectory"][-1]["step"])
    cos = np.where(found, metrics.roundtrip_cosine(texts, targets), np.nan)   # float32, as eval scores it
    return {"n": len(refs), "cos": float(np.nanmean(cos)), "cos_std": float(np.nanstd(cos)),
            "cos_independent": float(np.mean(metrics.independent_cosine(texts, refs))),
            "empty": int(np.isnan(cos).sum()), "bleu": metrics.corpus_bleu(texts, refs)[0],
            "exact": float(np.mean([metrics.exact_match(h, r) for h, r in zip(texts, refs)])),
            "steps": float(np.mean(steps)), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "examples": [{"ref": r, "out": h} for r, h in list(zip(refs, texts))[:3]],
            "cos_rows": [None if np.isnan(v) else round(float(v), 5) for v in cos]}


def paired_delta(rows: np.ndarray, first: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the per-sentence difference of two settings on the same sentences."""
    d = rows - first
    d = d[~np.isnan(d)]
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def markdown(rows: list[dict]) -> str:
    """The table; "paired" is the mean per-sentence change of cos against the group's first row ± its
    standard error (the same sentences: far less noise than comparing two means of 100)."""
    lines = ["| group | setting | n | cos | paired vs first | independent cos | BLEU | exact | steps | p50 ms | p95 ms | no output |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    first: dict[str, dict] = {}
    for r in rows:
        setting = ", ".join(f"{k}={v}" for k, v in r["setting"].items()) or "defaults"
        f = first.setdefault(r["group"], r)
        paired = ""
        if f is not r and "cos_rows" in r and "cos_rows" in f:
            m, se = paired_delta(*(np.array(x["cos_rows"], dtype=float) for x in (r, f)))
            paired = f"{m:+.4f} ± {se:.4f}"
        lines.append(f"| {r['group']} | {setting} | {r['n']} | {r['cos']:.3f} | {paired} | {r['cos_independent']:.3f} | "
                     f"{r['bleu']:.1f} | {r['exact']:.1%} | "
                     f"{r['steps']:.2f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['empty']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.hybrid_ablations", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", choices=SPLITS, default="open-dev")
    p.add_argument("--limit", type=int, default=200, help="first N sentences of the split, taken source by source")
    p.add_argument("--groups", default=",".join(GROUPS), help=f"comma list of {', '.join(GROUPS)}")
    p.add_argument("--set", dest="base", nargs="*", default=[], metavar="KEY=VALUE", help="base HybridConfig fields")
    p.add_argument("--corrector", default=None, help="corrector checkpoint folder, or 'none' for TargetShift "
                   "(default: assets/corrector when it holds one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    groups = a.groups.split(",")
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        p.error(f"unknown group(s) {bad}; valid groups: {', '.join(GROUPS)}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    try:
        base = hybrid.HybridConfig(**parse_key_values(a.base))
    except (TypeError, ValueError) as e:
        p.error(f"--set: {e}")
    corrector_dir = Path(a.corrector) if a.corrector not in (None, "none") else corrector.ASSET_DIR
    if a.corrector == "none":
        corrector_dir = a.out / "no-corrector"   # a folder without a checkpoint: TargetShift
    elif a.corrector and not corrector.has_checkpoint(corrector_dir):
        p.error(f"--corrector {a.corrector}: no checkpoint there")
    decoder = hybrid.load(a.device, base, corrector_dir)
    refs, targets = load_dev(a.limit, a.split)   # source by source, as `python -m eval --split` takes them
    targets = targets.float().numpy()
    name = type(decoder.corrector).__name__
    print(f"{name} corrector, {len(refs)} sentences of {a.split}, device {a.device}, {a.threads} threads", file=sys.stderr)
    a.out.mkdir(parents=True, exist_ok=True)
    env = {"split": a.split, "limit": a.limit, "device": a.device, "threads": a.threads, "corrector": name,
           "corrector_dir": str(corrector_dir) if name == "Corrector" else None, "base": a.base,
           "word_probe": decoder.probe is not None, "screen": decoder.screen is not None,
           "command": " ".join(["python -m tools.hybrid_ablations", *(argv if argv is not None else sys.argv[1:])])}
    out = []
    for g in groups:
        for setting in GROUPS[g]:
            row = {"group": g, "setting": setting, "corrector": name,
                   **run(decoder.configured(**setting), refs, targets)}
            out.append(row)
            print(markdown([row]).splitlines()[-1], file=sys.stderr, flush=True)
            # written after every row: a long run stopped early keeps what it measured
            (a.out / "ablations.json").write_text(json.dumps({"env": env, "rows": out}, indent=1))
            (a.out / "ablations.md").write_text(markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
