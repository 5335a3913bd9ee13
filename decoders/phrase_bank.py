"""Phrase-bank decoder: the nearest phrases of a FAISS index over the corpus's train split.

    python -m decoders.phrase_bank sweep      # compare index variants -> assets/phrase_bank/sweep.json
    python -m decoders.phrase_bank build      # -> assets/phrase_bank/{index.faiss, texts.txt.gz, config.json, MODEL_CARD.md}
    python -m decoders.phrase_bank measure    # recall@1 of the built bank against exact search, latency, size

Only the train split goes into the bank: a dev or test sentence can never come back
verbatim, so evaluation measures retrieval of *other* phrases. The index is compressed
(inverted lists + product quantisation) to keep the committed bank small; `sweep` and
`measure` report how often it still returns the exact nearest neighbour (recall@1 against
brute-force inner product over the float embeddings, on the 2,000 dev queries).

Sampling: temperature 0 (or top_k 1) returns the best match. Otherwise the top
C = max(n_candidates, top_k, num_samples) phrases are scored as logits = cosine * logit_scale
and drawn with the shared `sample_next_token` (temperature, top-k, top-p, seeded), without
replacement across a row's samples (a drawn phrase is masked to -inf before the next draw).
`logit_scale` (default 20) puts cosines on a log-probability scale: two phrases 0.05 apart in
cosine differ by e^1 in probability at temperature 1, so temperature 1 keeps the near
neighbours in play and temperature 0.3 all but picks the best one.

Assembly (off by default, `max_phrases=1`): with max_phrases > 1, each chosen phrase is
extended greedily by the phrase nearest to the residual (the part of the target the
current phrases do not explain) while the cosine of the normalised sum of their vectors to
the target rises; the phrases are joined with "; ".
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from .base import EMBED_DIM, Decoded, Decoder, Sampling
from .sampling import make_generator, sample_next_token

ROOT = Path(__file__).resolve().parent.parent
ASSET_DIR = ROOT / "assets" / "phrase_bank"
BANK_FILES = ("index.faiss", "texts.txt.gz", "config.json")
MAX_BANK_MB = 60

# index variants compared by `sweep`: (faiss index_factory string, nprobe values to try)
VARIANTS = [
    ("Flat", [None]),                         # exact float32: the reference, far over budget
    ("SQ8", [None]),                          # 8-bit scalar quantiser, exhaustive scan
    ("PQ192np", [None]),                      # 192 x 8-bit product quantiser, exhaustive scan
    ("IVF1024,PQ192np", [16, 32, 64, 128]),   # inverted lists, residual PQ
    ("IVF1024,PQ256np", [32, 64]),            # finer PQ (3 dims per sub-quantiser)
    ("IVF1024,PQ384x4fs", [32, 64]),          # 4-bit fast-scan PQ, same bytes as PQ192
]
# "np": no polysemous training. faiss's index_factory otherwise spends minutes permuting PQ
# centroids for Hamming pre-filtering, which this bank never uses (same codes, same results).
# OPQ (a learned rotation before PQ) is left out: its training took 90 s on 3,000 vectors here.


@dataclass
class BankConfig:
    factory: str = "IVF1024,PQ256np"  # faiss index_factory string (inner product on unit vectors; np = no polysemous training)
    nprobe: int = 64                # inverted lists visited per query (IVF indexes only)
    n_candidates: int = 64          # candidates drawn from when sampling (at least top_k)
    logit_scale: float = 20.0       # logits = cosine * scale, so temperature 1 is a sensible default
    max_phrases: int = 1            # > 1: greedily join phrases while the joint cosine rises
    train_size: int = 60000         # vectors used to train the quantisers
    n_phrases: int = 0              # set when built
    dim: int = EMBED_DIM

    def __post_init__(self):
        if self.nprobe < 1 or self.n_candidates < 1 or self.max_phrases < 1 or self.train_size < 1:
            raise ValueError(f"nprobe, n_candidates, max_phrases and train_size must be >= 1: {self}")
        if not self.logit_scale > 0:
            raise ValueError(f"logit_scale must be > 0, got {self.logit_scale}")

    @classmethod
    def from_json(cls, path: Path) -> "BankConfig":
        data = json.loads(Path(path).read_text())
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown bank config keys {sorted(unknown)}")
        return cls(**data)


def set_nprobe(index, nprobe: int | None) -> None:
    """Set nprobe on an IVF index (also inside a pre-transform such as OPQ); no-op otherwise."""
    import faiss

    if nprobe is None:
        return
    try:
        faiss.extract_index_ivf(index).nprobe = int(nprobe)
    except RuntimeError:  # not an IVF index
        pass


class PhraseBankDecoder(Decoder):
    name = "phrase-bank"

    def __init__(self, index, texts: list[str], cfg: BankConfig, directory: Path | None = None):
        if index.ntotal != len(texts):
            raise ValueError(f"bank index holds {index.ntotal} vectors but {len(texts)} texts")
        self.index, self.texts, self.cfg, self.directory = index, texts, cfg, directory
        set_nprobe(index, cfg.nprobe)

    @property
    def num_parameters(self) -> int:
        return 0  # nothing trained by gradient; the bank's size is `n_phrases` / `bank_bytes`

    @property
    def n_phrases(self) -> int:
        return len(self.texts)

    @property
    def bank_bytes(self) -> int | None:
        """Bytes on disk of the bank's files (None for a bank that was never saved)."""
        if self.directory is None:
            return None
        return sum((Path(self.directory) / f).stat().st_size for f in BANK_FILES if (Path(self.directory) / f).exists())

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities [N, k], ids [N, k]) as estimated by the index; missing ids are -1."""
        return self.index.search(np.ascontiguousarray(x, dtype=np.float32), k)

    def _decode(self, x: torch.Tensor, sampling: Sampling) -> list[list[Decoded]]:
        n_cand = 1 if sampling.greedy and sampling.num_samples == 1 else \
            max(self.cfg.n_candidates, sampling.top_k, sampling.num_samples)
        sims, ids = self.search(x.numpy(), n_cand)
        gen = make_generator(sampling.seed)
        out = []
        for row in range(x.shape[0]):
            logits = torch.as_tensor(sims[row] * self.cfg.logit_scale, dtype=torch.float32)
            logits[torch.as_tensor(ids[row] < 0)] = float("-inf")
            picks = []
            for _ in range(min(sampling.num_samples, int(torch.isfinite(logits).sum()))):
                j = int(sample_next_token(logits[None], sampling, gen))
                picks.append(j)
                logits[j] = float("-inf")  # without replacement
            row_out = []
            for j in picks:
                text, score = self.texts[ids[row, j]], float(sims[row, j])
                if self.cfg.max_phrases > 1:
                    text, score = self._assemble(x[row].numpy(), int(ids[row, j]))
                row_out.append(Decoded(text, score))
            out.append(row_out)
        return out

    def _assemble(self, target: np.ndarray, first: int) -> tuple[str, float]:
        """Greedy matching on the residual: add the phrase nearest to the part of the target
        orthogonal to the current sum, while the normalised sum moves closer to the target.
        Vectors are the index's reconstructions; the score is their cosine to the target."""
        chosen = [first]
        total = self.index.reconstruct(first)
        best = float(total @ target / np.linalg.norm(total))
        while len(chosen) < self.cfg.max_phrases:
            residual = target - total / np.linalg.norm(total) * best
            if np.linalg.norm(residual) < 1e-6:
                break
            _, cand = self.search(residual[None] / np.linalg.norm(residual), 8)
            cand = [int(c) for c in cand[0] if c >= 0 and c not in chosen]
            if not cand:
                break
            new_total = total + self.index.reconstruct(cand[0])
            cos = float(new_total @ target / np.linalg.norm(new_total))
            if cos <= best:
                break
            chosen, total, best = chosen + [cand[0]], new_total, cos
        return "; ".join(self.texts[i] for i in chosen), best


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=np.float32, copy=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def build_index(emb: np.ndarray, cfg: BankConfig, seed: int = 0, coarse: np.ndarray | None = None):
    """Train (on at most cfg.train_size random rows) and fill a faiss index; works for any size
    the factory allows (a tiny test bank needs a factory with few centroids, e.g. "Flat" or "IVF4,PQ16").

    `coarse`: already trained IVF centroids [nlist, dim] to reuse (the sweep trains them once
    for all IVF variants without a pre-transform); faiss then skips the coarse k-means."""
    import faiss

    emb = _unit(emb)
    index = faiss.index_factory(cfg.dim, cfg.factory, faiss.METRIC_INNER_PRODUCT)
    if coarse is not None:
        faiss.extract_index_ivf(index).quantizer.add(np.ascontiguousarray(coarse, dtype=np.float32))
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        index.train(emb[np.sort(rng.choice(len(emb), min(cfg.train_size, len(emb)), replace=False))])
    index.add(emb)
    set_nprobe(index, cfg.nprobe)
    return index


def train_coarse(emb: np.ndarray, nlist: int, train_size: int, seed: int = 0) -> np.ndarray:
    """Spherical-enough k-means centroids for an inner-product IVF, on the same sample build_index uses."""
    import faiss

    emb = _unit(emb)
    rng = np.random.default_rng(seed)
    sample = emb[np.sort(rng.choice(len(emb), min(train_size, len(emb)), replace=False))]
    index = faiss.index_factory(emb.shape[1], f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(sample)
    q = faiss.extract_index_ivf(index).quantizer
    return faiss.rev_swig_ptr(faiss.downcast_index(q).get_xb(), q.ntotal * q.d).reshape(q.ntotal, q.d).copy()


def _enable_reconstruct(index) -> None:
    import faiss

    try:
        faiss.extract_index_ivf(index).make_direct_map()  # reconstruct() for assembly
    except RuntimeError:
        pass  # flat / PQ / SQ indexes reconstruct without a map


def save(directory: Path, index, texts: list[str], cfg: BankConfig):
    import faiss

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg.n_phrases = len(texts)
    faiss.write_index(index, str(directory / "index.faiss"))
    with gzip.open(directory / "texts.txt.gz", "wt", encoding="utf-8", compresslevel=9) as f:
        f.writelines(t + "\n" for t in texts)
    (directory / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")


def load(device: str = "cpu", directory: Path = ASSET_DIR) -> PhraseBankDecoder:
    """The bank in `directory` (CPU only: faiss-cpu; `device` is accepted for the registry)."""
    import faiss

    directory = Path(directory)
    if not (directory / "index.faiss").exists():
        raise FileNotFoundError(f"no phrase bank in {directory}; build it with `python -m decoders.phrase_bank build`")
    cfg = BankConfig.from_json(directory / "config.json")
    with gzip.open(directory / "texts.txt.gz", "rt", encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f]
    index = faiss.read_index(str(directory / "index.faiss"))
    _enable_reconstruct(index)
    return PhraseBankDecoder(index, texts, cfg, directory)


# ----------------------------------------------------------------------------- measurement

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


def _queries(n_queries: int):
    from .corpus import load_embeddings

    x = _unit(load_embeddings("train"))
    q = _unit(load_embeddings("dev")[:n_queries])
    gt, gt_sim = exact_top1(x, q)
    return x, q, gt, gt_sim


def _threads() -> dict:
    import faiss

    return {"faiss_threads": faiss.omp_get_max_threads(), "torch_threads": torch.get_num_threads()}


def sweep(variants=VARIANTS, n_queries: int = 2000, train_size: int = BankConfig.train_size,
          out: Path | None = ASSET_DIR / "sweep.json", build_threads: int = 1, resume: bool = True) -> list[dict]:
    """Build each index variant in memory over the train split and measure it on dev queries.
    Size = serialised index + gzipped texts, what the committed bank would weigh. Build time
    of an IVF variant excludes the coarse k-means after the first (shared, see `train_coarse`)."""
    import faiss

    from .corpus import load_split

    x, q, gt, gt_sim = _queries(n_queries)
    texts = load_split("train")
    texts_bytes = len(gzip.compress("".join(t + "\n" for t in texts).encode(), compresslevel=9))
    rows, coarse, app_threads = [], {}, faiss.omp_get_max_threads()
    result = {"rows": rows, "queries": len(q), "train_size": train_size, "machine": machine(), **_threads(),
              "date": time.strftime("%Y-%m-%d")}
    if resume and out is not None and Path(out).exists():  # keep variants measured by an earlier, interrupted run
        rows += [r for r in json.loads(Path(out).read_text())["rows"] if r["factory"] in dict(variants)]
    for factory, nprobes in variants:
        if any(r["factory"] == factory for r in rows):
            continue
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
            row = {"factory": factory, "nprobe": nprobe, "size_mb": round(size_mb, 1), "build_s": round(build_s),
                   **_measure_bank(bank, x, q, gt, gt_sim)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        del index
        if out is not None:  # after every variant, so an interrupted sweep can resume
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            rows.sort(key=lambda r: ([v[0] for v in variants].index(r["factory"]), r["nprobe"] or 0))
            Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return rows


def measure(directory: Path = ASSET_DIR, n_queries: int = 2000) -> dict:
    """Recall@1 of the built bank against exact inner-product search on dev queries,
    single-query decode latency (threads as in the app), and size on disk."""
    bank = load(directory=directory)
    x, q, gt, gt_sim = _queries(n_queries)
    return {"factory": bank.cfg.factory, "nprobe": bank.cfg.nprobe, "n_phrases": bank.n_phrases,
            "size_mb": round(bank.bank_bytes / 1e6, 1), **_measure_bank(bank, x, q, gt, gt_sim),
            "queries": len(q), "machine": machine(), **_threads()}


def sweep_table(rows: list[dict], budget_mb: float = MAX_BANK_MB) -> str:
    lines = ["| variant | nprobe | size MB | recall@1 | mean cos lost | p50 ms | p95 ms | build s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        over = " (over budget)" if r["size_mb"] > budget_mb else ""
        lines.append(f"| `{r['factory']}`{over} | {r['nprobe'] or '-'} | {r['size_mb']:.1f} | {r['recall_at_1']:.3f} | "
                     f"{max(r['mean_cos_lost'], 0.0):.4f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['build_s']} |")
    return "\n".join(lines)


def write_model_card(directory: Path, cfg: BankConfig, build_s: float, final: dict) -> Path:
    sweep_path = Path(directory) / "sweep.json"
    if sweep_path.exists():
        s = json.loads(sweep_path.read_text())
        sweep_md = (f"Measured by `python -m decoders.phrase_bank sweep` on {s['date']}, {s['machine']}, "
                    f"faiss threads {s['faiss_threads']}, torch threads {s['torch_threads']}; quantisers trained "
                    f"on {s['train_size']:,} random train vectors; {s['queries']:,} dev queries. Size = serialised "
                    f"index + gzipped texts, MB = 10^6 bytes. The sweep ran at low priority while other jobs "
                    f"shared the cores, so its latencies are inflated and only roughly comparable between "
                    f"rows; recall and size do not depend on load. Build s of an IVF variant after the first excludes the "
                    f"coarse k-means, which the sweep trains once and shares.\n\n{sweep_table(s['rows'])}")
    else:
        sweep_md = "No sweep recorded; run `python -m decoders.phrase_bank sweep`."
    card = f"""# Phrase bank

A FAISS index over the {cfg.n_phrases:,} texts of the corpus's **train** split (WordNet 3.0
usage examples and glosses, `assets/corpus/wordnet.tsv.gz`), embedded with all-mpnet-base-v2.
Decoding returns the stored phrases nearest (inner product of unit vectors = cosine) to the
target embedding. Dev and test texts are not in the bank, so on held-out inputs it can only
return *other* phrases. No trainable parameters.

## Files

| file | what |
|---|---|
| `index.faiss` | `{cfg.factory}` index, inner product, nprobe {cfg.nprobe} |
| `texts.txt.gz` | one phrase per line, in index order |
| `config.json` | `BankConfig` (unknown keys are rejected) |

Total {final['size_mb']:.1f} MB (budget {MAX_BANK_MB} MB; exact float32 vectors would be
{cfg.n_phrases * cfg.dim * 4 / 1e6:.0f} MB).

## Build

`python -m decoders.phrase_bank build` ({build_s:.0f} s on {final['machine']}). The vectors are
`data/emb_train.npy` (`python -m decoders.corpus embed --split train`), normalised to unit
length; the quantisers are trained on {min(cfg.train_size, cfg.n_phrases):,} random rows
(seed 0).

## Measured

Final bank (`python -m decoders.phrase_bank measure`): recall@1 {final['recall_at_1']:.3f}
against exact inner-product search over the same float vectors, on {final['queries']:,} dev
queries; when the top-1 differs, it is a near tie (mean cosine lost per query
{final['mean_cos_lost']:.4f}); decode latency of one embedding through `decode()` p50
{final['p50_ms']:.2f} ms, p95 {final['p95_ms']:.2f} ms over 300 dev queries (faiss threads
{final['faiss_threads']}, torch threads {final['torch_threads']}, the defaults the app runs
with; a shared machine, load not controlled).

### Variants compared

{sweep_md}

Choice: `IVF1024,PQ256np` at nprobe 64, the only variant within the budget that reaches
recall@1 >= 0.9 with p50 < 5 ms. With 192 bytes per vector the product-quantisation error
itself caps recall@1 near 0.85 (exhaustive `PQ192np` does no better than the IVF version),
so more probes do not help; 256 sub-quantisers of 3 dimensions do. "mean cos lost" is the
exact cosine of the true nearest neighbour minus that of the returned phrase, averaged over
all queries: a miss is a near tie. `np` = no polysemous training: faiss's `index_factory`
otherwise spends minutes reordering PQ centroids for Hamming pre-filtering, which this bank
never uses. OPQ (a learned rotation before PQ) was tried and left out: its training took
90 s on 3,000 vectors on this machine.

## Sampling

Temperature 0 (or top-k 1) returns the best match. Otherwise the top
max({cfg.n_candidates}, top_k, num_samples) phrases get logits = cosine x {cfg.logit_scale:g}
(`logit_scale`) and are drawn with the shared `sample_next_token` (temperature, top-k, top-p,
seed), without replacement within a row. `Decoded.score` is the cosine as estimated by the
index. `max_phrases > 1` (off by default) greedily appends the phrase nearest to the residual
while the cosine of the normalised sum rises, joining phrases with "; ".

## Limits

The bank can only say what WordNet's examples and glosses say: a sentence about a topic
the corpus lacks decodes to the nearest gloss-like text, whatever its wording. The training
embeddings partly come from a developer cache stored as int8 (cosine to the float vectors
> 0.999); the bank and the recall ground truth use the same vectors.
"""
    path = Path(directory) / "MODEL_CARD.md"
    path.write_text(card)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m decoders.phrase_bank", description=__doc__,
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
        from .corpus import load_embeddings, load_split

        import faiss

        app_threads = faiss.omp_get_max_threads()
        if a.threads:
            faiss.omp_set_num_threads(a.threads)
        t = time.time()
        cfg = BankConfig(factory=a.factory, nprobe=a.nprobe)
        texts = load_split("train")
        emb = load_embeddings("train")
        if len(emb) != len(texts):
            raise SystemExit(f"data/emb_train.npy has {len(emb)} rows for {len(texts)} train texts; re-embed")
        save(a.out, build_index(emb, cfg), texts, cfg)
        build_s = time.time() - t
        print(f"wrote {a.out}: {len(texts)} phrases, {a.factory}, built in {build_s:.0f}s", flush=True)
        faiss.omp_set_num_threads(app_threads)  # measure as the app runs
        final = measure(a.out)
        print(json.dumps(final, indent=2))
        print(f"wrote {write_model_card(a.out, cfg, build_s, final)}")
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
