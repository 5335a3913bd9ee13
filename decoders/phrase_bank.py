"""Phrase-bank decoder: the nearest phrases of a FAISS index over the corpus's train split.

Built, measured and described (model card) by `python -m tools.phrase_bank build|measure|sweep`.

Only the train split goes into the bank: a dev or test sentence can never come back
verbatim, so evaluation measures retrieval of *other* phrases. The index is compressed
(inverted lists + product quantisation) to keep the committed bank small; `sweep` and
`measure` report how often it still returns the exact nearest neighbour (recall@1 against
brute-force inner product over the float embeddings, on the 2,000 dev queries).

Re-ranking (`rerank`, default 16): the index's similarity is the inner product with the
phrase's quantised vector, whose length varies (a 4-bit code shrinks a unit vector to
0.84-0.92 of its length), so it favours phrases that quantised long. The top `rerank`
candidates are scored again by the cosine to their stored vector renormalised, which costs
no bytes: on the 2,000 open-dev queries it cut the cosine lost to exact search from 0.0051 to
0.0034 (recall@1 0.711 -> 0.764; WordNet dev 0.0041 -> 0.0021). `Decoded.score` is that
cosine. It is biased low: on 300 open-dev queries it averaged 0.657 where the returned
phrases' true cosine was 0.721 (the index's raw similarity: 0.590). The round-trip cosine
(re-encoding the phrase) that the app and `python -m eval` report is the measurement.

Sampling: temperature 0 (or top_k 1) returns the best match. Otherwise the top
C = max(n_candidates, top_k, num_samples) phrases (re-ranked) are scored as logits = cosine * logit_scale
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

import json
import lzma
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import faiss
import numpy as np
import torch

from . import assets
from .base import EMBED_DIM, Decoded, Decoder, Sampling
from .sampling import make_generator, sample_next_token

ROOT = Path(__file__).resolve().parent.parent
ASSET_DIR = ROOT / "assets" / "phrase_bank"
TEXTS = "texts.txt.xz"            # one phrase per line, in index order (xz: 20 bytes a phrase, gzip 30)
INDEX_PART_BYTES = 50_000_000     # the index is cut into files of at most this size: git hosts refuse
                                  # files over 100 MB (GitHub), so a full bank cannot be one file
REBUILD = "python -m tools.phrase_bank build"


@dataclass
class BankConfig:
    factory: str = "RR816,IVF1024,PQ272x4fs"  # faiss index_factory string (inner product on unit vectors)
    nprobe: int = 128               # inverted lists visited per query (IVF indexes only)
    n_candidates: int = 64          # candidates drawn from when sampling (at least top_k)
    rerank: int = 16                # candidates re-scored by the cosine to their renormalised stored vector (1: off)
    logit_scale: float = 20.0       # logits = cosine * scale, so temperature 1 is a sensible default
    max_phrases: int = 1            # > 1: greedily join phrases while the joint cosine rises
    train_size: int = 60000         # vectors used to train the quantisers
    drop_near_duplicates: float = 0.0  # build: leave out rows within this cosine of an earlier kept row (0: none)
    n_phrases: int = 0              # set when built
    index_parts: int = 1            # set when built: index.faiss, or index.faiss.00, .01, ... joined in order
    build_s: float = 0.0            # set when built: seconds the build took
    build_machine: str = ""         # set when built: where it ran
    dim: int = EMBED_DIM

    def __post_init__(self):
        if min(self.nprobe, self.n_candidates, self.rerank, self.max_phrases, self.train_size, self.index_parts) < 1:
            raise ValueError(f"nprobe, n_candidates, rerank, max_phrases, train_size and index_parts must be >= 1: {self}")
        if not 0.0 <= self.drop_near_duplicates <= 1.0:
            raise ValueError(f"drop_near_duplicates is a cosine in [0, 1] (0: keep every row), got {self.drop_near_duplicates}")
        if not self.logit_scale > 0:
            raise ValueError(f"logit_scale must be > 0, got {self.logit_scale}")

    @classmethod
    def from_json(cls, path: Path) -> "BankConfig":
        data = json.loads(Path(path).read_text())
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown bank config keys {sorted(unknown)}")
        return cls(**data)


def bank_files(cfg: BankConfig) -> tuple[str, ...]:
    """The files of a saved bank, in the order the loader reads them."""
    index = ("index.faiss",) if cfg.index_parts == 1 else \
        tuple(f"index.faiss.{i:02d}" for i in range(cfg.index_parts))
    return (*index, TEXTS, "config.json")


def set_nprobe(index, nprobe: int | None) -> None:
    """Set nprobe on an IVF index (also inside a pre-transform such as OPQ); no-op otherwise."""
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
        _enable_reconstruct(index)   # scores and assembly read the stored vectors

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
        return sum((Path(self.directory) / f).stat().st_size for f in bank_files(self.cfg))

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities [N, k], ids [N, k]) as estimated by the index; missing ids are -1."""
        return self.index.search(np.ascontiguousarray(x, dtype=np.float32), k)

    def cosine(self, target: np.ndarray, i: int) -> float:
        """Cosine of `target` to phrase i's stored vector, normalised: the index's own similarity
        is lower still (a 4-bit code shrinks a vector to ~0.88 of unit length). Exact for an exact index."""
        return float(self.cosines(target, np.array([i]))[0])

    def cosines(self, target: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """`cosine` for several phrase ids at once (-1: -inf)."""
        out = np.full(len(ids), -np.inf, dtype=np.float32)
        valid = ids >= 0
        if valid.any():
            v = reconstruct_many(self.index, ids[valid])
            norms = np.linalg.norm(v, axis=1) * max(float(np.linalg.norm(target)), 1e-12)
            out[valid] = v @ target / np.maximum(norms, 1e-12)
        return out

    def ranked(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(cosines [N, k], ids [N, k]): the index's top max(k, rerank) candidates, re-scored by
        `cosines` and sorted, the best k kept; missing ids are -1 with cosine -inf."""
        _, ids = self.search(x, max(k, self.cfg.rerank))
        sims = np.stack([self.cosines(x[row], ids[row]) for row in range(len(x))])
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)

    def _decode(self, x: torch.Tensor, sampling: Sampling) -> list[list[Decoded]]:
        n_cand = 1 if sampling.greedy and sampling.num_samples == 1 else \
            max(self.cfg.n_candidates, sampling.top_k, sampling.num_samples)
        sims, ids = self.ranked(x.numpy().astype(np.float32), n_cand)
        gen = make_generator(sampling.seed)
        out = []
        for row in range(x.shape[0]):
            logits = torch.as_tensor(sims[row] * self.cfg.logit_scale, dtype=torch.float32)
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
        total = reconstruct(self.index, first)
        best = float(total @ target / np.linalg.norm(total))
        while len(chosen) < self.cfg.max_phrases:
            residual = target - total / np.linalg.norm(total) * best
            if np.linalg.norm(residual) < 1e-6:
                break
            _, cand = self.search(residual[None] / np.linalg.norm(residual), 8)
            cand = [int(c) for c in cand[0] if c >= 0 and c not in chosen]
            if not cand:
                break
            new_total = total + reconstruct(self.index, cand[0])
            cos = float(new_total @ target / np.linalg.norm(new_total))
            if cos <= best:
                break
            chosen, total, best = chosen + [cand[0]], new_total, cos
        return "; ".join(self.texts[i] for i in chosen), best


def reconstruct(index, i: int) -> np.ndarray:
    """The index's approximation of vector `i` (see `reconstruct_many`)."""
    return reconstruct_many(index, np.array([i]))[0]


def reconstruct_many(index, ids: np.ndarray) -> np.ndarray:
    """The index's approximations of vectors `ids` [n, dim]. faiss 1.15 crashes (segfault) in
    `reconstruct` on a fast-scan IVF index read from disk, so its codes are unpacked from the
    blocks and decoded here."""
    try:
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    except RuntimeError:  # not an IVF index
        return np.stack([index.reconstruct(int(i)) for i in ids])
    if not isinstance(ivf, faiss.IndexIVFFastScan):
        return np.stack([index.reconstruct(int(i)) for i in ids])
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    codes, list_nos = [], []
    for i in ids:
        where = ivf.direct_map.get(int(i))   # list number << 32 | offset in the list
        list_no, offset = where >> 32, where & 0xFFFFFFFF
        n_blocks = -(-lists.list_size(list_no) // lists.n_per_block)
        blocks = faiss.rev_swig_ptr(lists.get_codes(list_no), n_blocks * lists.block_size)
        codes.append(lists.packer.unpack_1(blocks.reshape(n_blocks, lists.block_size), offset))
        list_nos.append(list_no)
    x = ivf.pq.decode(np.stack(codes))
    if ivf.by_residual:
        x = x + np.stack([ivf.quantizer.reconstruct(int(n)) for n in list_nos])
    if isinstance(index, faiss.IndexPreTransform):
        for k in reversed(range(index.chain.size())):
            x = index.chain.at(k).reverse_transform(x)
    return x


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=np.float32, copy=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def build_index(emb: np.ndarray, cfg: BankConfig, seed: int = 0, coarse: np.ndarray | None = None):
    """Train (on at most cfg.train_size random rows) and fill a faiss index; works for any size
    the factory allows (a tiny test bank needs a factory with few centroids, e.g. "Flat" or "IVF4,PQ16").

    `coarse`: already trained IVF centroids [nlist, dim] to reuse (the sweep trains them once
    for all IVF variants without a pre-transform); faiss then skips the coarse k-means."""
    emb = unit_rows(emb)
    index = faiss.index_factory(cfg.dim, cfg.factory, faiss.METRIC_INNER_PRODUCT)
    if coarse is not None:
        faiss.extract_index_ivf(index).quantizer.add(np.ascontiguousarray(coarse, dtype=np.float32))
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        index.train(emb[np.sort(rng.choice(len(emb), min(cfg.train_size, len(emb)), replace=False))])
    index.add(emb)
    set_nprobe(index, cfg.nprobe)
    return index


def _enable_reconstruct(index) -> None:
    """The id -> code map that `reconstruct` needs (IVF indexes; built once, kept while the index lives)."""
    try:
        ivf = faiss.extract_index_ivf(index)
        if ivf.direct_map.type == faiss.DirectMap.NoMap:
            ivf.make_direct_map()
    except RuntimeError:
        pass  # flat / PQ / SQ indexes reconstruct without a map


def save(directory: Path, index, texts: list[str], cfg: BankConfig, part_bytes: int = INDEX_PART_BYTES):
    """Write the bank: the serialised index (cut into parts of at most `part_bytes`), the texts, the config."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for old in [*directory.glob("index.faiss*"), *directory.glob("texts.txt*")]:
        old.unlink()  # an earlier bank's files (its parts may have been more, its texts another format)
    try:
        ivf = faiss.extract_index_ivf(index)
        mapped = ivf.direct_map.type != faiss.DirectMap.NoMap
    except RuntimeError:  # not an IVF index
        ivf, mapped = None, False
    if mapped:
        ivf.make_direct_map(False)  # the id -> code map (8 bytes a vector) is rebuilt at load
    blob = faiss.serialize_index(index)
    if mapped:
        ivf.make_direct_map(True)
    cfg.n_phrases, cfg.index_parts = len(texts), max(1, -(-len(blob) // part_bytes))
    step = -(-len(blob) // cfg.index_parts)   # parts of equal size
    for name, start in zip(bank_files(cfg), range(0, len(blob), step)):
        (directory / name).write_bytes(blob[start:start + step].tobytes())
    (directory / TEXTS).write_bytes(lzma.compress("".join(t + "\n" for t in texts).encode(), preset=9))
    (directory / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    assets.write(directory, REBUILD)  # the manifest lists exactly the files now in the folder


def load(device: str = "cpu", directory: Path = ASSET_DIR) -> PhraseBankDecoder:
    """The bank in `directory` (CPU only: faiss-cpu; `device` is accepted for the registry)."""
    directory = Path(directory)
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"no phrase bank in {directory}; build it with `{REBUILD}`")
    assets.verify(directory, ("config.json",))  # size and sha256 against MANIFEST.json
    cfg = BankConfig.from_json(directory / "config.json")
    assets.verify(directory, bank_files(cfg))
    texts = lzma.decompress((directory / TEXTS).read_bytes()).decode("utf-8").split("\n")[:-1]
    parts = [np.fromfile(directory / name, dtype=np.uint8) for name in bank_files(cfg)[:cfg.index_parts]]
    index = faiss.deserialize_index(parts[0] if len(parts) == 1 else np.concatenate(parts))
    return PhraseBankDecoder(index, texts, cfg, directory)
