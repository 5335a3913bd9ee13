"""Build, measure and compare phrase banks (decoders/phrase_bank.py), and write the bank's model card.

    python -m tools.phrase_bank sweep      # compare index variants -> assets/phrase_bank/sweep.json
    python -m tools.phrase_bank build      # -> assets/phrase_bank/{index.faiss, texts.txt.gz, config.json, MODEL_CARD.md}
    python -m tools.phrase_bank measure    # recall@1 of the built bank against exact search, latency, size

The bank indexes every train row embedded so far (`decoders.corpus.load_embedded("train")`:
the corpus ships complete, its embeddings grow in the background). Recall@1 and the cosine
lost against brute-force inner product over the same float vectors are measured on the
2,000 open-dev queries and on the 2,000 WordNet dev queries; latency is one embedding through
`decode()`.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path

import faiss
import numpy as np
import torch

from decoders.base import Sampling
from decoders.corpus import load_embedded, load_embeddings
from decoders.phrase_bank import ASSET_DIR, BankConfig, PhraseBankDecoder, build_index, load, save, unit_rows

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


def _measure_bank(bank: PhraseBankDecoder, x: np.ndarray, q: np.ndarray, gt: np.ndarray, gt_sim: np.ndarray,
                  latency_queries: int = 300) -> dict:
    """recall@1, mean cosine lost when the top-1 is wrong (exact cosines), p50/p95 ms per single decode."""
    _, got = bank.search(q, 1)
    got = got[:, 0]
    lost = gt_sim - np.einsum("ij,ij->i", x[got.clip(0)], q)
    bank.decode(q[:1], Sampling())  # warm-up
    times = []
    for i in range(min(latency_queries, len(q))):
        t = time.perf_counter()
        bank.decode(q[i:i + 1], Sampling())
        times.append((time.perf_counter() - t) * 1000)
    return {"recall_at_1": float((got == gt).mean()), "mean_cos_lost": float(lost.mean()),
            "p50_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))}


QUERY_SPLITS = ("open-dev", "dev")


def bank_rows() -> tuple[list[str], np.ndarray]:
    """Texts and unit vectors of every embedded train row."""
    rows, emb = load_embedded("train")
    return [r.text for r in rows], unit_rows(emb)


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


def sweep(variants=VARIANTS, n_queries: int = 2000, train_size: int = BankConfig.train_size,
          out: Path | None = ASSET_DIR / "sweep.json", build_threads: int = 1, resume: bool = True) -> list[dict]:
    """Build each index variant in memory over the train split and measure it on dev queries.
    Size = serialised index + gzipped texts, what the committed bank would weigh. Build time
    of an IVF variant excludes the coarse k-means after the first (shared, see `train_coarse`)."""
    texts, x = bank_rows()
    x, q, gt, gt_sim = _queries(n_queries, "open-dev", x)
    texts_bytes = len(gzip.compress("".join(t + "\n" for t in texts).encode(), compresslevel=9))
    rows, coarse, app_threads = [], {}, faiss.omp_get_max_threads()
    result = {"rows": rows, "queries": len(q), "train_size": train_size, "machine": machine(), **_threads(),
              "date": time.strftime("%Y-%m-%d")}
    if resume and out is not None and Path(out).exists():  # keep what earlier (or interrupted) runs measured
        rows += json.loads(Path(out).read_text())["rows"]
    for factory, nprobes in variants:
        if any(r["factory"] == factory and r.get("n_phrases") == len(texts) for r in rows):
            continue  # measured on these very rows already
        rows[:] = [r for r in rows if r["factory"] != factory]  # measured on other rows: measure again
        faiss.omp_set_num_threads(build_threads)  # building on busy shared cores: no oversubscription
        t = time.time()
        cfg = BankConfig(factory=factory, train_size=train_size)
        head = factory.split(",")[0]
        reuse = None
        if head.startswith("IVF"):  # no pre-transform: the coarse centroids are shared between variants
            if head not in coarse:
                coarse[head] = train_coarse(x, int(head[3:]), train_size)
            reuse = coarse[head]
        index = build_index(x, cfg, coarse=reuse)
        build_s = time.time() - t
        faiss.omp_set_num_threads(app_threads)
        size_mb = (faiss.serialize_index(index).nbytes + texts_bytes) / 1e6
        for nprobe in nprobes:
            cfg = BankConfig(factory=factory, nprobe=nprobe or 1, train_size=train_size)
            bank = PhraseBankDecoder(index, texts, cfg)
            row = {"factory": factory, "nprobe": nprobe, "n_phrases": len(texts), "size_mb": round(size_mb, 1),
                   "build_s": round(build_s),
                   **_measure_bank(bank, x, q, gt, gt_sim)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        del index
        if out is not None:  # after every variant, so an interrupted sweep can resume
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return rows


def measure(directory: Path = ASSET_DIR, n_queries: int = 2000) -> dict:
    """Recall@1 and cosine lost of the built bank against exact inner-product search over the
    same vectors, on open-dev and WordNet dev queries; single-query decode latency (threads as
    in the app); size on disk."""
    bank = load(directory=directory)
    texts, x = bank_rows()
    if texts != bank.texts:
        raise SystemExit(f"the bank in {directory} holds {bank.n_phrases} phrases, but {len(texts)} train rows are "
                         "embedded now (or their order differs): rebuild it with `python -m tools.phrase_bank build`")
    out = {"factory": bank.cfg.factory, "nprobe": bank.cfg.nprobe, "n_phrases": bank.n_phrases,
           "size_mb": round(bank.bank_bytes / 1e6, 1), "queries": n_queries, "machine": machine(), **_threads()}
    for split in QUERY_SPLITS:
        out[split] = _measure_bank(bank, *_queries(n_queries, split, x))
        out[split]["exact_top1_cos"] = float(_queries(n_queries, split, x)[3].mean())
    return out


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


def write_model_card(directory: Path, cfg: BankConfig, build_s: float, final: dict) -> Path:
    sweep_path = Path(directory) / "sweep.json"
    if sweep_path.exists():
        s = json.loads(sweep_path.read_text())
        sweep_md = (f"Measured by `python -m tools.phrase_bank sweep` on {s['date']}, {s['machine']}, "
                    f"faiss threads {s['faiss_threads']}, torch threads {s['torch_threads']}; quantisers trained "
                    f"on {s['train_size']:,} random train vectors; {s['queries']:,} open-dev queries, over the train rows embedded then. Size = serialised "
                    f"index + gzipped texts, MB = 10^6 bytes. The sweep ran at low priority while other jobs "
                    f"shared the cores, so its latencies are inflated and only roughly comparable between "
                    f"rows; recall and size do not depend on load. Build s of an IVF variant after the first excludes the "
                    f"coarse k-means, which the sweep trains once and shares.\n\n{sweep_table(s['rows'])}")
    else:
        sweep_md = "No sweep recorded; run `python -m tools.phrase_bank sweep`."
    od, wd = final["open-dev"], final["dev"]
    per_source = Counter(r.source for r in load_embedded("train")[0])
    sources_md = ", ".join(f"{src} {n:,}" for src, n in per_source.most_common())
    card = f"""# Phrase bank

A FAISS index over {cfg.n_phrases:,} texts of the corpus's **train** split, embedded with
all-mpnet-base-v2: every train row embedded when it was built (`load_embedded("train")`; the
corpus has 641,373 train rows: 164,573 WordNet texts and 476,800 sentences of nine open
sources, see `assets/corpus/SOURCES.md`; `embed` visits the sources in turn, so a partly
embedded split holds about as many rows of each source). Rows per source in this bank:
{sources_md}. Decoding returns the stored phrases
nearest (inner product of unit vectors = cosine) to the target embedding. Dev and test texts
(WordNet and open) are not in the bank, nor near-duplicates of them, so on held-out inputs it
can only return *other* phrases. No trainable parameters.

## Files

| file | what |
|---|---|
| `index.faiss` | `{cfg.factory}` index, inner product, nprobe {cfg.nprobe} |
| `texts.txt.gz` | one phrase per line, in index order |
| `config.json` | `BankConfig` (unknown keys are rejected) |

Total {final['size_mb']:.1f} MB (budget {MAX_BANK_MB} MB with the texts; exact float32 vectors
would be {cfg.n_phrases * cfg.dim * 4 / 1e6:.0f} MB).

## Build

`python -m tools.phrase_bank build --factory '{cfg.factory}' --nprobe {cfg.nprobe}` ({build_s:.0f} s on
{final['machine']}). The vectors are
`data/emb_train.npy` (`python -m decoders.corpus embed --split train`), normalised to unit
length; the quantisers are trained on {min(cfg.train_size, cfg.n_phrases):,} random rows (seed 0).

## Measured

`python -m tools.phrase_bank measure`, against exact inner-product search over the same float
vectors, {final['queries']:,} queries per set:

| queries | recall@1 | exact top-1 cos | mean cos lost | p50 ms | p95 ms |
|---|---:|---:|---:|---:|---:|
| open-dev | {od['recall_at_1']:.3f} | {od['exact_top1_cos']:.4f} | {od['mean_cos_lost']:.4f} | {od['p50_ms']:.2f} | {od['p95_ms']:.2f} |
| WordNet dev | {wd['recall_at_1']:.3f} | {wd['exact_top1_cos']:.4f} | {wd['mean_cos_lost']:.4f} | {wd['p50_ms']:.2f} | {wd['p95_ms']:.2f} |

"mean cos lost" is the exact cosine of the true nearest neighbour minus that of the returned
phrase, averaged over all queries (a miss is a near tie). Latency: one embedding through
`decode()`, 300 queries, faiss threads {final['faiss_threads']}, torch threads {final['torch_threads']}
(the app's defaults).

### Variants compared

{sweep_md}

Choice: over the rows embedded now, `IVF1024,PQ256np` (264 bytes a vector with its id) fits
the budget and loses the least cosine to exact search (the table above); on the 200,704 rows of
the previous build `IVF1024,PQ192np` at nprobe 64 lost 0.0034 at 46 MB. With every open sentence
embedded the bank will hold 641K vectors and PQ256 would need ~170 MB, so smaller codes (PQ192,
PQ128, 4-bit fast scan) are the candidates to measure then (`python -m tools.phrase_bank sweep`).
The round-1 sweep over WordNet alone is in `sweep_round1_wordnet.json`. `np` = no polysemous
training (faiss's `index_factory` otherwise spends minutes reordering PQ centroids for Hamming
pre-filtering, which this bank never uses).

## Sampling

Temperature 0 (or top-k 1) returns the best match. Otherwise the top
max({cfg.n_candidates}, top_k, num_samples) phrases get logits = cosine x {cfg.logit_scale:g}
(`logit_scale`) and are drawn with the shared `sample_next_token` (temperature, top-k, top-p,
seed), without replacement within a row. `Decoded.score` is the cosine as estimated by the
index. `max_phrases > 1` (off by default) greedily appends the phrase nearest to the residual
while the cosine of the normalised sum rises, joining phrases with "; ".

## Limits

The bank can only say what its corpus says: a sentence about something the corpus lacks
decodes to the nearest stored sentence, whatever its wording. Until the whole corpus is
embedded it holds only part of the open sentences (the count above). WordNet's train
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
    texts, emb = bank_rows()
    save(out, build_index(emb, cfg), texts, cfg)
    build_s = time.time() - t
    print(f"wrote {out}: {len(texts)} phrases, {cfg.factory}, built in {build_s:.0f}s", flush=True)
    faiss.omp_set_num_threads(app_threads)  # measure as the app runs
    final = measure(out)
    print(json.dumps(final, indent=2))
    print(f"wrote {write_model_card(out, cfg, build_s, final)}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.phrase_bank", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="index the train split, measure it, write the model card")
    b.add_argument("--out", type=Path, default=ASSET_DIR)
    b.add_argument("--factory", default=BankConfig.factory)
    b.add_argument("--nprobe", type=int, default=BankConfig.nprobe)
    b.add_argument("--threads", type=int, default=0, help="faiss threads while building (0 = all cores)")
    m = sub.add_parser("measure", help="recall@1 vs exact search, latency, size of the built bank")
    m.add_argument("--dir", type=Path, default=ASSET_DIR)
    s = sub.add_parser("sweep", help="build and measure every variant in VARIANTS (in memory)")
    s.add_argument("--out", type=Path, default=ASSET_DIR / "sweep.json")
    s.add_argument("--only", help="factory strings separated by ';', e.g. 'PQ192np;IVF1024,PQ256np' (default: all)")
    a = p.parse_args(argv)
    if a.cmd == "build":
        build(a.out, BankConfig(factory=a.factory, nprobe=a.nprobe), a.threads)
    elif a.cmd == "measure":
        print(json.dumps(measure(a.dir), indent=2))
    else:
        variants = VARIANTS
        if a.only:
            wanted = a.only.split(";")
            variants = [v for v in VARIANTS if v[0] in wanted] + \
                [(f, [16, 32, 64]) for f in wanted if f not in dict(VARIANTS)]
        rows = sweep(variants, out=a.out)
        print(sweep_table(rows))


if __name__ == "__main__":
    main()
