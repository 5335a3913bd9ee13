"""Build, measure and compare phrase banks (decoders/phrase_bank.py), and write the bank's model card.

    python -m tools.phrase_bank sweep      # compare index variants -> assets/phrase_bank/sweep.json
    python -m tools.phrase_bank build      # -> assets/phrase_bank/{index.faiss[.NN], texts.txt.xz, config.json, MODEL_CARD.md}
    python -m tools.phrase_bank measure    # recall@1 of the built bank against exact search, latency, size

The bank indexes every embedded train row (`decoders.corpus.load_embedded("train")`), or,
with `--drop-near-duplicates COS`, all but the rows within COS of an earlier kept row.
Recall@1 and the cosine lost are measured against brute-force inner product over every
embedded train row's float vector, on the 2,000 open-dev queries and on the 2,000 WordNet dev
queries; latency is one embedding through `decode()`.
"""
from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
import torch

from decoders.base import Sampling
from decoders.corpus import load_embedded, load_embeddings
from decoders.phrase_bank import ASSET_DIR, BankConfig, PhraseBankDecoder, bank_files, build_index, load, save, unit_rows

MAX_BANK_MB = 120   # index + texts (issue 9); single files stay under 60 MB where possible

# index variants compared by `sweep`: (faiss index_factory string, nprobe values to try)
VARIANTS = [
    ("Flat", [None]),                         # exact float32: the reference, far over budget
    ("SQ8", [None]),                          # 8-bit scalar quantiser, exhaustive scan
    ("PQ192np", [None]),                      # 192 x 8-bit product quantiser, exhaustive scan
    ("IVF1024,PQ192np", [16, 32, 64, 128]),   # inverted lists, residual PQ
    ("IVF1024,PQ256np", [32, 64]),            # finer PQ (3 dims per sub-quantiser)
    ("IVF1024,PQ384x4fs", [32, 64]),          # 4-bit fast-scan PQ, same bytes as PQ192
    ("IVF1024,PQ128np", [64, 128]),           # 136 bytes a vector with its id: 641K rows fit in 120 MB
    ("IVF1024,PQ256x4fs", [64, 128]),         # 4-bit fast-scan PQ, same bytes as PQ128
    ("IVF4096,PQ256x4fs", [64, 128]),         # finer coarse lists, same code
    ("PCAR512,IVF1024,PQ256x4fs", [64, 128]), # PCA to 512 dims (98.2% of the variance) + rotation: 2-dim codes
    ("PCAR576,IVF1024,PQ288x4fs", [64, 128]), # PCA to 576 dims (98.9%): 144 bytes
    ("PCAR576,IVF1024,PQ144np", [64, 128]),   # the same bytes as 8-bit codes of 4 dims
    ("RR816,IVF1024,PQ272x4fs", [32, 64, 128]),   # random rotation into 816 dims: 272 x 3-dim 4-bit codes, 136 bytes
    ("RR864,IVF1024,PQ288x4fs", [32, 64, 128]),   # the same into 864 dims: 144 bytes
]
# "np": no polysemous training. faiss's index_factory otherwise spends minutes permuting PQ
# centroids for Hamming pre-filtering, which this bank never uses (same codes, same results).
# OPQ (a learned rotation before PQ) is left out: its training took 90 s on 3,000 vectors here.


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def exact_top1(x: np.ndarray, q: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product nearest neighbour (ids, similarities) of each query."""
    ids, sims = [], []
    for s in range(0, len(q), chunk):
        sim = q[s:s + chunk] @ x.T
        j = sim.argmax(axis=1)
        ids.append(j)
        sims.append(sim[np.arange(len(j)), j])
    return np.concatenate(ids), np.concatenate(sims)


def _recall(bank: PhraseBankDecoder, x: np.ndarray, q: np.ndarray, gt: np.ndarray, gt_sim: np.ndarray,
            rows: np.ndarray | None = None) -> dict:
    """recall@1 and mean cosine lost of the phrase a greedy decode returns, against exact search over every
    row of `x` (exact cosines). `rows[i]`: the row of `x` that bank phrase i is (None: all of x in order)."""
    got = bank.ranked(q, 1)[1][:, 0].clip(0)
    if rows is not None:
        got = rows[got]
    lost = gt_sim - np.einsum("ij,ij->i", x[got], q)
    return {"recall_at_1": float((got == gt).mean()), "mean_cos_lost": float(lost.mean())}


def _measure_bank(bank: PhraseBankDecoder, x: np.ndarray, q: np.ndarray, gt: np.ndarray, gt_sim: np.ndarray,
                  rows: np.ndarray | None = None, latency_queries: int = 300) -> dict:
    """`_recall`, and p50/p95 ms per single decode."""
    bank.decode(q[:1], Sampling())  # warm-up
    times = []
    for i in range(min(latency_queries, len(q))):
        t = time.perf_counter()
        bank.decode(q[i:i + 1], Sampling())
        times.append((time.perf_counter() - t) * 1000)
    return {**_recall(bank, x, q, gt, gt_sim, rows),
            "p50_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))}


QUERY_SPLITS = ("open-dev", "dev")


def bank_rows() -> tuple[list[str], np.ndarray]:
    """Texts and unit vectors of every embedded train row."""
    rows, emb = load_embedded("train")
    return [r.text for r in rows], unit_rows(emb)


def near_duplicates(x: np.ndarray, threshold: float, k: int = 4, nprobe: int = 8, seed: int = 0) -> np.ndarray:
    """Mask of the rows a bank may leave out: walking the rows in order (WordNet first), the
    neighbours of each kept row with cosine >= `threshold` are dropped, so each group of
    near-duplicates keeps its first row. Neighbours: k per row from an IVF1024,Flat search
    (nprobe 8), so a few near-duplicates are missed and stay in; ~8 minutes for 641K rows on 2 cores."""
    nlist = min(1024, max(1, len(x) // 64))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(x.shape[1]), x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    index.train(x[np.sort(rng.choice(len(x), min(60000, len(x)), replace=False))])
    index.add(x)
    index.nprobe = min(nprobe, nlist)
    sims, ids = np.empty((len(x), k), np.float32), np.empty((len(x), k), np.int64)
    for s in range(0, len(x), 20000):
        sims[s:s + 20000], ids[s:s + 20000] = index.search(x[s:s + 20000], k)
    close = (sims >= threshold) & (ids != np.arange(len(x))[:, None]) & (ids >= 0)
    drop = np.zeros(len(x), bool)
    for i in np.flatnonzero(close.any(axis=1)):   # rows in order: a dropped row drops nothing
        if drop[i]:
            continue
        near = ids[i][close[i]]
        if (~drop[near[near < i]]).any():   # an earlier kept row is close: it stands for this one
            drop[i] = True
        else:
            drop[near[near > i]] = True
    return drop


def _queries(n_queries: int, split: str = "open-dev", x: np.ndarray | None = None):
    x = bank_rows()[1] if x is None else x
    q = unit_rows(load_embeddings(split)[:n_queries])
    gt, gt_sim = exact_top1(x, q)
    return x, q, gt, gt_sim


def _threads() -> dict:
    return {"faiss_threads": faiss.omp_get_max_threads(), "torch_threads": torch.get_num_threads()}


def train_coarse(emb: np.ndarray, nlist: int, train_size: int, seed: int = 0) -> np.ndarray:
    """Spherical-enough k-means centroids for an inner-product IVF, on the same sample build_index uses."""
    emb = unit_rows(emb)
    rng = np.random.default_rng(seed)
    sample = emb[np.sort(rng.choice(len(emb), min(train_size, len(emb)), replace=False))]
    index = faiss.index_factory(emb.shape[1], f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(sample)
    q = faiss.extract_index_ivf(index).quantizer
    return faiss.rev_swig_ptr(faiss.downcast_index(q).get_xb(), q.ntotal * q.d).reshape(q.ntotal, q.d).copy()


def selected(x: np.ndarray, drop_near_duplicates: float) -> np.ndarray:
    """The rows of `x` a bank built with this setting holds (all of them when it is 0)."""
    if not drop_near_duplicates:
        return np.arange(len(x))
    return np.flatnonzero(~near_duplicates(x, drop_near_duplicates))


def sweep(variants=VARIANTS, n_queries: int = 2000, train_size: int = BankConfig.train_size,
          out: Path | None = ASSET_DIR / "sweep.json", build_threads: int = 1, resume: bool = True,
          drop_near_duplicates: float = 0.0, subset: int = 0) -> list[dict]:
    """Build each index variant in memory over the train split and measure it on dev queries
    against exact search over every train row (`subset` > 0: over that many random train rows,
    seed 1, for quick comparisons). Size = serialised index + xz texts, what the
    committed bank would weigh. Build time of an IVF variant excludes the coarse k-means after
    the first (shared, see `train_coarse`) and the near-duplicate search."""
    texts, x = bank_rows()
    if 0 < subset < len(texts):
        pick = np.sort(np.random.default_rng(1).choice(len(texts), subset, replace=False))
        texts, x = [texts[i] for i in pick], x[pick]
    x, q, gt, gt_sim = _queries(n_queries, "open-dev", x)
    keep = selected(x, drop_near_duplicates)
    kept, xk = [texts[i] for i in keep], x[keep]
    size_texts = len(lzma.compress("".join(t + "\n" for t in kept).encode(), preset=9))
    rows, coarse, app_threads = [], {}, faiss.omp_get_max_threads()
    result = {"rows": rows, "queries": len(q), "train_size": train_size, "machine": machine(), **_threads(),
              "date": time.strftime("%Y-%m-%d")}
    if resume and out is not None and Path(out).exists():  # keep what earlier (or interrupted) runs measured
        rows += json.loads(Path(out).read_text())["rows"]
    same = dict(n_phrases=len(kept), train_rows=len(texts), drop_near_duplicates=drop_near_duplicates)
    for factory, nprobes in variants:
        if any(r["factory"] == factory and all(r.get(k, 0.0) == v for k, v in same.items()) for r in rows):
            continue  # measured on these very rows already
        # measured on other rows: measure again (rows of other near-duplicate settings stay)
        rows[:] = [r for r in rows if r["factory"] != factory
                   or r.get("drop_near_duplicates", 0.0) != drop_near_duplicates]
        faiss.omp_set_num_threads(build_threads)  # building on busy shared cores: no oversubscription
        t = time.time()
        cfg = BankConfig(factory=factory, train_size=train_size)
        head = factory.split(",")[0]
        reuse = None
        if head.startswith("IVF"):  # no pre-transform: the coarse centroids are shared between variants
            if head not in coarse:
                coarse[head] = train_coarse(xk, int(head[3:]), train_size)
            reuse = coarse[head]
        index = build_index(xk, cfg, coarse=reuse)
        build_s = time.time() - t
        faiss.omp_set_num_threads(app_threads)
        size_mb = (faiss.serialize_index(index).nbytes + size_texts) / 1e6
        for nprobe in nprobes:
            cfg = BankConfig(factory=factory, nprobe=nprobe or 1, train_size=train_size)
            bank = PhraseBankDecoder(index, kept, cfg)
            row = {"factory": factory, "nprobe": nprobe, **same, "size_mb": round(size_mb, 1),
                   "build_s": round(build_s), **_measure_bank(bank, x, q, gt, gt_sim, keep)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        del index
        if out is not None:  # after every variant, so an interrupted sweep can resume
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return rows


def measure(directory: Path = ASSET_DIR, n_queries: int = 2000, bank: PhraseBankDecoder | None = None) -> dict:
    """Recall@1 and cosine lost of the built bank against exact inner-product search over every
    embedded train row (a bank that leaves near-duplicates out pays for it here: `lost_to_pruning`
    is the part of the loss that exact search over the bank's own rows would lose too), on open-dev
    and WordNet dev queries; single-query decode latency (threads as in the app); size on disk.
    `bank`: the bank in `directory`, already loaded."""
    bank = load(directory=directory) if bank is None else bank
    texts, x = bank_rows()
    where = {t: i for i, t in enumerate(texts)}
    missing = sum(t not in where for t in bank.texts)
    if missing:
        raise SystemExit(f"{missing} of the {bank.n_phrases} phrases of the bank in {directory} are not among the "
                         f"{len(texts)} embedded train rows: rebuild it with `python -m tools.phrase_bank build`")
    keep = np.array([where[t] for t in bank.texts])
    out = {"factory": bank.cfg.factory, "nprobe": bank.cfg.nprobe, "n_phrases": bank.n_phrases,
           "train_rows": len(texts), "drop_near_duplicates": bank.cfg.drop_near_duplicates,
           "size_mb": round(bank.bank_bytes / 1e6, 1), "queries": n_queries, "machine": machine(), **_threads(),
           "rerank": bank.cfg.rerank, "date": time.strftime("%Y-%m-%d")}
    for split in QUERY_SPLITS:
        x, q, gt, gt_sim = _queries(n_queries, split, x)
        out[split] = _measure_bank(bank, x, q, gt, gt_sim, keep)
        out[split]["exact_top1_cos"] = float(gt_sim.mean())
        out[split]["lost_to_pruning"] = float(gt_sim.mean() - exact_top1(x[keep], q)[1].mean())
        out[split]["by_rerank"] = {}   # the same bank re-ranking other numbers of candidates (1: the index's order)
        for r in RERANKS:
            other = PhraseBankDecoder(bank.index, bank.texts, replace(bank.cfg, rerank=r))
            out[split]["by_rerank"][r] = _recall(other, x, q, gt, gt_sim, keep)
    return out


RERANKS = (1, 4, 8, 16, 32, 64)


def sweep_table(rows: list[dict], budget_mb: float = MAX_BANK_MB) -> str:
    lines = ["| variant | nprobe | phrases | size MB | recall@1 | mean cos lost | p50 ms | p95 ms | build s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        over = " (over budget)" if r["size_mb"] > budget_mb else ""
        phrases = f"{r['n_phrases']:,}" if "n_phrases" in r else "-"   # not recorded before round 2, session 5
        lines.append(f"| `{r['factory']}`{over} | {r['nprobe'] or '-'} | {phrases} | {r['size_mb']:.1f} | "
                     f"{r['recall_at_1']:.3f} | "
                     f"{max(r['mean_cos_lost'], 0.0):.4f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['build_s']} |")
    return "\n".join(lines)


def write_model_card(directory: Path, bank: PhraseBankDecoder, final: dict) -> Path:
    cfg = bank.cfg
    sweep_path = Path(directory) / "sweep.json"
    if sweep_path.exists():
        s = json.loads(sweep_path.read_text())
        sweep_md = (f"Measured by `python -m tools.phrase_bank sweep` on {s['date']}, {s['machine']}, "
                    f"faiss threads {s['faiss_threads']}, torch threads {s['torch_threads']}; quantisers trained "
                    f"on {s['train_size']:,} random train vectors; {s['queries']:,} open-dev queries, over the train rows embedded then. Size = serialised "
                    f"index + xz texts (gzipped before round 2, session 6), MB = 10^6 bytes. The sweep ran at low priority while other jobs "
                    f"shared the cores, so its latencies are inflated and only roughly comparable between "
                    f"rows; recall and size do not depend on load. Build s of an IVF variant after the first excludes the "
                    f"coarse k-means, which the sweep trains once and shares.\n\n{sweep_table(s['rows'])}")
    else:
        sweep_md = "No sweep recorded; run `python -m tools.phrase_bank sweep`."
    od, wd = final["open-dev"], final["dev"]
    rerank_md = "\n".join(["| rerank | open-dev recall@1 | cos lost | WordNet dev recall@1 | cos lost |",
                           "|---:|---:|---:|---:|---:|"] +
                          [f"| {r} | {od['by_rerank'][r]['recall_at_1']:.3f} | {od['by_rerank'][r]['mean_cos_lost']:.4f} | "
                           f"{wd['by_rerank'][r]['recall_at_1']:.3f} | {wd['by_rerank'][r]['mean_cos_lost']:.4f} |"
                           for r in od.get("by_rerank", {})])
    in_bank = set(bank.texts)
    per_source = Counter(r.source for r in load_embedded("train")[0] if r.text in in_bank)
    sources_md = ", ".join(f"{src} {n:,}" for src, n in per_source.most_common())
    dropped = (f"{final['train_rows'] - cfg.n_phrases:,} rows within cosine {cfg.drop_near_duplicates:g} of an "
               f"earlier kept row were left out (`--drop-near-duplicates`)" if cfg.drop_near_duplicates
               else "every embedded train row")
    card = f"""# Phrase bank

A FAISS index over {cfg.n_phrases:,} texts of the corpus's **train** split ({dropped}; the
corpus has {final['train_rows']:,} embedded train rows: WordNet texts and sentences of nine open
sources, see `assets/corpus/SOURCES.md`), embedded with all-mpnet-base-v2. Rows per source in
this bank: {sources_md}. Decoding returns the stored phrases
nearest (inner product of unit vectors = cosine) to the target embedding. Dev and test texts
(WordNet and open) are not in the bank, nor near-duplicates of them, so on held-out inputs it
can only return *other* phrases. No trainable parameters.

## Files

| file | what |
|---|---|
| {", ".join(f"`{f}`" for f in bank_files(cfg)[:cfg.index_parts])} | `{cfg.factory}` index, inner product, nprobe {cfg.nprobe}, serialised by faiss and cut into {cfg.index_parts} file(s) of at most 50 MB (git hosts refuse files over 100 MB); the loader joins them |
| `texts.txt.xz` | one phrase per line, in index order |
| `config.json` | `BankConfig` (unknown keys are rejected) |

Total {final['size_mb']:.1f} MB (budget {MAX_BANK_MB} MB with the texts; exact float32 vectors
would be {cfg.n_phrases * cfg.dim * 4 / 1e6:.0f} MB).

## Build

`python -m tools.phrase_bank build --factory '{cfg.factory}' --nprobe {cfg.nprobe}{f" --drop-near-duplicates {cfg.drop_near_duplicates:g}" if cfg.drop_near_duplicates else ""}` ({cfg.build_s:.0f} s on
{cfg.build_machine or "an unrecorded machine"}). The vectors are
`data/emb_train.npy` (`python -m decoders.corpus embed --split train`), normalised to unit
length; the quantisers are trained on {min(cfg.train_size, cfg.n_phrases):,} random rows (seed 0).

## Measured

`python -m tools.phrase_bank measure --card` (which rewrote this card; {final['date']}, {final['machine']}),
against exact inner-product search over the float vectors of every embedded train row,
{final['queries']:,} queries per set; the bank's top {cfg.rerank} candidates re-ranked (below):

| queries | recall@1 | exact top-1 cos | mean cos lost | p50 ms | p95 ms |
|---|---:|---:|---:|---:|---:|
| open-dev | {od['recall_at_1']:.3f} | {od['exact_top1_cos']:.4f} | {od['mean_cos_lost']:.4f} | {od['p50_ms']:.2f} | {od['p95_ms']:.2f} |
| WordNet dev | {wd['recall_at_1']:.3f} | {wd['exact_top1_cos']:.4f} | {wd['mean_cos_lost']:.4f} | {wd['p50_ms']:.2f} | {wd['p95_ms']:.2f} |

"mean cos lost" is the exact cosine of the true nearest neighbour minus that of the returned
phrase, averaged over all queries (a miss is a near tie); of it, rows left out of the bank
account for {od['lost_to_pruning']:.4f} on open-dev and {wd['lost_to_pruning']:.4f} on WordNet dev. Latency: one embedding through
`decode()`, 300 queries, faiss threads {final['faiss_threads']}, torch threads {final['torch_threads']}
(the app's defaults).

### Variants compared

{sweep_md}

Re-ranking (round 2, session 8; `BankConfig.rerank`, no bytes): a 4-bit code shrinks each
unit vector by a factor that varies from phrase to phrase (0.84 / 0.88 / 0.92 at the 5th / 50th /
95th percentile), and the index ranks by the inner product with that shrunk vector. The decoder
scores its top `rerank` candidates again by the cosine to the renormalised reconstruction.
Same bank, same queries as under "Measured" (`measure`'s `by_rerank`; 1 = the index's own order):

{rerank_md}

A residual code would add little on top: in a one-off experiment (not in the repository), 8 more
bytes a phrase (a PQ8 of the residual, 5.1 MB) took the open-dev loss of the re-ranked top 32 from
0.0034 to 0.0029.

Choice: the budget is {MAX_BANK_MB} MB with the texts, so the code can spend about 136-144 bytes
on each of the 641K vectors (an id takes 8 more). Rotating the vectors at random into more
dimensions (`RR816`) before a 4-bit fast-scan product quantiser gives 272 three-dimensional
sub-codes in 136 bytes: cosine lost 0.0052 at nprobe 128 against 0.0066 for the plain
`IVF1024,PQ256x4fs` of the same size (the table above); nprobe 192 and 256 gave 0.0052 and
0.0051, so the code, not the search, sets the floor. The rotated 144-byte code (`RR864`) loses
0.0051, no better within the noise of 2,000 queries (about ±0.0003), at 119.2 MB. In one-off
runs on 200,000 random train rows and 1,000 open-dev queries (round 2, session 6; their outputs
were lost with that machine, so they are not in the repository), these were no better: a PCA
to 512 or 576 dimensions first (0.0075 / 0.0069), 8-bit codes of the same size (0.009), a
learned OPQ rotation instead of the random one (0.0057 against 0.0056), 4,096 lists (0.0066 at
nprobe 128), re-ranking the top 32 by the inner product with the codes' float reconstruction (the same
picks: the fast-scan lookup tables lose nothing). Nor did leaving out near-duplicate rows:
only 17K rows had another within cosine 0.9, and dropping the 105K within 0.78 (enough for the
192-byte code, which loses 0.003) cost 0.0055 by itself. `python -m tools.phrase_bank sweep
--subset 200000 --queries 1000 --out FILE` (with `--drop-near-duplicates COS`) reruns them
once `data/` is embedded again. Earlier sweeps: `sweep_round2_219k.json` (219,572 rows), `sweep_round2_partial.json`
(~342-366K rows) and `sweep_round1_wordnet.json` (WordNet alone). `np` = no polysemous training
(faiss's `index_factory` otherwise spends minutes reordering PQ centroids for Hamming
pre-filtering, which this bank never uses).

## Sampling

Temperature 0 (or top-k 1) returns the best match. Otherwise the top
max({cfg.n_candidates}, top_k, num_samples) phrases get logits = cosine x {cfg.logit_scale:g}
(`logit_scale`) and are drawn with the shared `sample_next_token` (temperature, top-k, top-p,
seed), without replacement within a row. `Decoded.score` is the cosine of the target to the
phrase's stored vector, renormalised (the index's own estimate is biased low by quantisation). `max_phrases > 1` (off by default) greedily appends the phrase nearest to the residual
while the cosine of the normalised sum rises, joining phrases with "; ".

## Limits

The bank can only say what its corpus says: a sentence about something the corpus lacks
decodes to the nearest stored sentence, whatever its wording. WordNet's train
embeddings come from a developer cache stored as int8 (cosine to the float vectors > 0.999);
the bank and the recall ground truth use the same vectors.
"""
    path = Path(directory) / "MODEL_CARD.md"
    path.write_text(card)
    return path


def build(out: Path, cfg: BankConfig, threads: int = 0) -> None:
    """Index the train split into `out`, measure the bank as the app runs it, write its model card."""
    app_threads = faiss.omp_get_max_threads()
    if threads:
        faiss.omp_set_num_threads(threads)
    t = time.time()
    texts, x = bank_rows()
    keep = selected(x, cfg.drop_near_duplicates)
    index = build_index(x[keep], cfg)
    cfg.build_s, cfg.build_machine = round(time.time() - t, 1), machine()
    save(out, index, [texts[i] for i in keep], cfg)
    print(f"wrote {out}: {len(keep)} of {len(texts)} train rows, {cfg.factory}, built in {cfg.build_s:.0f}s", flush=True)
    faiss.omp_set_num_threads(app_threads)  # measure as the app runs
    card(out)


def card(directory: Path = ASSET_DIR) -> None:
    """Measure the bank in `directory` and write its model card (one load for both)."""
    bank = load(directory=directory)
    final = measure(directory, bank=bank)
    print(json.dumps(final, indent=2))
    print(f"wrote {write_model_card(directory, bank, final)}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.phrase_bank", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="index the train split, measure it, write the model card")
    b.add_argument("--out", type=Path, default=ASSET_DIR)
    b.add_argument("--factory", default=BankConfig.factory)
    b.add_argument("--nprobe", type=int, default=BankConfig.nprobe)
    b.add_argument("--threads", type=int, default=0, help="faiss threads while building (0 = all cores)")
    b.add_argument("--drop-near-duplicates", type=float, default=0.0, metavar="COS",
                   help="leave out rows within this cosine of an earlier kept row (0 = keep every row)")
    m = sub.add_parser("measure", help="recall@1 vs exact search, latency, size of the built bank")
    m.add_argument("--dir", type=Path, default=ASSET_DIR)
    m.add_argument("--card", action="store_true", help="also rewrite the bank's MODEL_CARD.md with the figures")
    s = sub.add_parser("sweep", help="build and measure every variant in VARIANTS (in memory)")
    s.add_argument("--out", type=Path, default=ASSET_DIR / "sweep.json")
    s.add_argument("--only", help="factory strings separated by ';', e.g. 'PQ192np;IVF1024,PQ256np' (default: all)")
    s.add_argument("--drop-near-duplicates", type=float, default=0.0, metavar="COS", help="as for build")
    s.add_argument("--threads", type=int, default=1, help="faiss threads while building (1: the cores are shared)")
    s.add_argument("--subset", type=int, default=0, help="index this many random train rows (0: all)")
    s.add_argument("--queries", type=int, default=2000, help="open-dev queries")
    a = p.parse_args(argv)
    if a.cmd == "build":
        build(a.out, BankConfig(factory=a.factory, nprobe=a.nprobe, drop_near_duplicates=a.drop_near_duplicates),
              a.threads)
    elif a.cmd == "measure" and a.card:
        card(a.dir)
    elif a.cmd == "measure":
        print(json.dumps(measure(a.dir), indent=2))
    else:
        variants = VARIANTS
        if a.only:
            wanted = a.only.split(";")
            variants = [v for v in VARIANTS if v[0] in wanted] + \
                [(f, [16, 32, 64]) for f in wanted if f not in dict(VARIANTS)]
        rows = sweep(variants, n_queries=a.queries, out=a.out, drop_near_duplicates=a.drop_near_duplicates,
                     build_threads=a.threads, subset=a.subset)
        print(sweep_table(rows))


if __name__ == "__main__":
    main()
