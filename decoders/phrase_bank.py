"""Phrase-bank decoder: the nearest phrases of a FAISS index over the corpus's train split.

    python -m decoders.phrase_bank build      # -> assets/phrase_bank/{index.faiss, texts.txt.gz, config.json}
    python -m decoders.phrase_bank measure    # recall@1 against exact search, latency, size

Only the train split goes into the bank: a dev or test sentence can never come back
verbatim, so evaluation measures retrieval of *other* phrases. The index is compressed
(inverted lists + product quantisation) to keep the committed bank small; `measure`
reports how often it still returns the exact nearest neighbour.

Sampling: temperature 0 returns the best match. Otherwise the top `n_candidates` are
scored as logits = cosine * logit_scale and drawn with the shared `sample_next_token`
(top-k, top-p, seeded), without replacement across a row's samples.
"""
from __future__ import annotations

import argparse
import gzip
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from .base import EMBED_DIM, Decoded, Decoder, Sampling
from .sampling import make_generator, sample_next_token

ROOT = Path(__file__).resolve().parent.parent
ASSET_DIR = ROOT / "assets" / "phrase_bank"


@dataclass
class BankConfig:
    factory: str = "IVF1024,PQ192"  # faiss index_factory string (inner product on unit vectors)
    nprobe: int = 32                # inverted lists visited per query
    n_candidates: int = 64          # candidates drawn from when sampling (at least top_k)
    logit_scale: float = 20.0       # logits = cosine * scale, so temperature 1 is a sensible default
    max_phrases: int = 1            # > 1: greedily join phrases while the joint cosine rises
    train_size: int = 60000         # vectors used to train the quantisers
    n_phrases: int = 0              # set when built
    dim: int = EMBED_DIM

    @classmethod
    def from_json(cls, path: Path) -> "BankConfig":
        data = json.loads(Path(path).read_text())
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown bank config keys {sorted(unknown)}")
        return cls(**data)


class PhraseBankDecoder(Decoder):
    name = "phrase-bank"

    def __init__(self, index, texts: list[str], cfg: BankConfig):
        import faiss

        if index.ntotal != len(texts):
            raise ValueError(f"bank index holds {index.ntotal} vectors but {len(texts)} texts")
        self.index, self.texts, self.cfg = index, texts, cfg
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", cfg.nprobe)

    @property
    def num_parameters(self) -> int:
        return 0  # nothing trained by gradient; the bank holds len(self.texts) stored phrases

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(np.ascontiguousarray(x, dtype=np.float32), k)

    def _decode(self, x: torch.Tensor, sampling: Sampling) -> list[list[Decoded]]:
        n_cand = max(self.cfg.n_candidates, sampling.top_k, sampling.num_samples)
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
        """Greedy matching on the residual: add the phrase nearest to (target - current sum)
        while the normalised sum moves closer to the target."""
        chosen = [first]
        total = self.index.reconstruct(first)
        best = float(total @ target / np.linalg.norm(total))
        while len(chosen) < self.cfg.max_phrases:
            residual = target - total / np.linalg.norm(total) * best
            _, cand = self.search(residual[None] / np.linalg.norm(residual), 8)
            cand = [int(c) for c in cand[0] if c >= 0 and c not in chosen]
            if not cand:
                break
            vec = self.index.reconstruct(cand[0])
            new_total = total + vec
            cos = float(new_total @ target / np.linalg.norm(new_total))
            if cos <= best:
                break
            chosen, total, best = chosen + [cand[0]], new_total, cos
        return "; ".join(self.texts[i] for i in chosen), best


def build_index(emb: np.ndarray, cfg: BankConfig, seed: int = 0):
    import faiss

    emb = np.ascontiguousarray(emb, dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    index = faiss.index_factory(cfg.dim, cfg.factory, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    train = emb[rng.choice(len(emb), min(cfg.train_size, len(emb)), replace=False)]
    index.train(train)
    index.add(emb)
    return index


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
    import faiss

    directory = Path(directory)
    if not (directory / "index.faiss").exists():
        raise FileNotFoundError(f"no phrase bank in {directory}; build it with `python -m decoders.phrase_bank build`")
    cfg = BankConfig.from_json(directory / "config.json")
    with gzip.open(directory / "texts.txt.gz", "rt", encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f]
    index = faiss.read_index(str(directory / "index.faiss"))
    if hasattr(index, "make_direct_map"):
        index.make_direct_map()  # reconstruct() for assembly
    return PhraseBankDecoder(index, texts, cfg)


def measure(directory: Path = ASSET_DIR, n_queries: int = 2000, threads: int = 1) -> dict:
    """Recall@1 of the compressed bank against exact inner-product search on dev queries,
    single-query latency, and size on disk."""
    import faiss

    from .corpus import load_embeddings

    faiss.omp_set_num_threads(threads)
    bank = load(directory=directory)
    x = load_embeddings("train").astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = load_embeddings("dev")[:n_queries].astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    _, gt = exact.search(q, 1)
    _, got = bank.search(q, 1)
    times = []
    for i in range(min(300, len(q))):
        t = time.perf_counter()
        bank.decode(q[i:i + 1], Sampling())
        times.append((time.perf_counter() - t) * 1000)
    size = sum(p.stat().st_size for p in Path(directory).iterdir() if p.name in ("index.faiss", "texts.txt.gz"))
    return {"factory": bank.cfg.factory, "nprobe": bank.cfg.nprobe, "n_phrases": len(bank.texts),
            "recall_at_1": float((got[:, 0] == gt[:, 0]).mean()), "p50_ms": float(np.median(times)),
            "p95_ms": float(np.percentile(times, 95)), "size_mb": size / 2**20, "threads": threads,
            "queries": len(q)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m decoders.phrase_bank", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="index the train split")
    b.add_argument("--out", type=Path, default=ASSET_DIR)
    b.add_argument("--factory", default=BankConfig.factory)
    b.add_argument("--nprobe", type=int, default=BankConfig.nprobe)
    m = sub.add_parser("measure", help="recall@1 vs exact search, latency, size")
    m.add_argument("--dir", type=Path, default=ASSET_DIR)
    m.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    if a.cmd == "build":
        from .corpus import load_embeddings, load_split

        t = time.time()
        cfg = BankConfig(factory=a.factory, nprobe=a.nprobe)
        texts = load_split("train")
        save(a.out, build_index(load_embeddings("train"), cfg), texts, cfg)
        print(f"wrote {a.out}: {len(texts)} phrases, {a.factory}, built in {time.time() - t:.0f}s")
    else:
        print(json.dumps(measure(a.dir, threads=a.threads), indent=2))


if __name__ == "__main__":
    main()
