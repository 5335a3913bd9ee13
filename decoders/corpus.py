"""The WordNet 3.0 phrase corpus: build it, split it, embed it.

    python -m decoders.corpus build --wordnet /usr/share/wordnet   # -> assets/corpus/wordnet.tsv.gz
    python -m decoders.corpus embed --split train                    # -> data/emb_train.npy (float16)

Texts are WordNet's usage examples and glosses (definitions). The split is a
deterministic function of the text (sha1 of its lower-cased form): the 2,000 texts
with the smallest hash are `test`, the next 2,000 `dev`, the rest `train`.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS_PATH = ROOT / "assets" / "corpus" / "wordnet.tsv.gz"
DATA_DIR = ROOT / "data"                       # embeddings and training packs (git-ignored)
SHARED_CACHE = ROOT.parent / "shared" / "corpus"  # optional developer cache, never required
SPLITS = ("train", "dev", "test")
N_TEST, N_DEV = 2000, 2000
MIN_WORDS, MAX_WORDS = 3, 32
POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")


def _clean(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def parse_gloss(gloss: str) -> list[tuple[str, str]]:
    """Split one synset gloss into (source, text) pairs; source is 'example' or 'gloss'."""
    out = []
    for part in gloss.split(";"):
        part = part.strip()
        if not part:
            continue
        if part.startswith('"'):
            part = re.sub(r'"\s*-+\s*[^"]*$', '"', part)  # drop a trailing "- Author attribution
            text, source = part.strip().strip('"'), "example"
        else:
            text, source = part, "gloss"
        text = _clean(text)
        if '"' in text or not (MIN_WORDS <= len(text.split()) <= MAX_WORDS):
            continue
        out.append((source, text))
    return out


def read_wordnet(wordnet_dir: Path) -> list[tuple[str, str]]:
    """All (source, text) pairs, examples first, deduplicated case-insensitively."""
    examples, glosses = [], []
    for name in POS_FILES:
        path = Path(wordnet_dir) / name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: point --wordnet at WordNet 3.0's dict folder "
                                    "(Debian: apt-get install wordnet-base -> /usr/share/wordnet)")
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # license header
                for source, text in parse_gloss(line.split("|", 1)[1]):
                    (examples if source == "example" else glosses).append((source, text))
    seen, out = set(), []
    for source, text in examples + glosses:
        key = text.lower()
        if key not in seen:
            seen.add(key)
            out.append((source, text))
    return out


def split_of_all(texts: list[str]) -> list[str]:
    """Deterministic split by sha1 of the lower-cased text: smallest 2,000 test, next 2,000 dev."""
    order = sorted(range(len(texts)), key=lambda i: hashlib.sha1(texts[i].lower().encode()).hexdigest())
    split = ["train"] * len(texts)
    for rank, i in enumerate(order[: N_TEST + N_DEV]):
        split[i] = "test" if rank < N_TEST else "dev"
    return split


def build(wordnet_dir: Path, out: Path = CORPUS_PATH) -> int:
    pairs = read_wordnet(wordnet_dir)
    splits = split_of_all([t for _, t in pairs])
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        f.write("split\tsource\ttext\n")
        for (source, text), split in zip(pairs, splits):
            f.write(f"{split}\t{source}\t{text}\n")
    return len(pairs)


@lru_cache(maxsize=None)
def _rows(path: str) -> tuple[tuple[str, str, str], ...]:
    if not Path(path).exists():
        raise FileNotFoundError(f"corpus {path} not found; build it with "
                                "`python -m decoders.corpus build --wordnet /usr/share/wordnet`")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["split", "source", "text"]:
            raise ValueError(f"{path}: unexpected header {header}")
        return tuple(tuple(line.rstrip("\n").split("\t", 2)) for line in f)


def load_split(split: str, path: Path = CORPUS_PATH) -> list[str]:
    """Texts of one split, in corpus order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return [t for s, _, t in _rows(str(path)) if s == split]


def load_shared_cache(cache_dir: Path = SHARED_CACHE) -> dict[str, np.ndarray] | None:
    """text -> unit float32 embedding from the developer cache in ../shared/corpus, if present."""
    cache_dir = Path(cache_dir)
    if not (cache_dir / "emb_int8.npy").exists():
        return None
    with gzip.open(cache_dir / "texts.tsv.gz", "rt", encoding="utf-8") as f:
        texts = [line.rstrip("\n").split("\t", 1)[1] for line in f]
    q = np.load(cache_dir / "emb_int8.npy", mmap_mode="r")
    scale = np.load(cache_dir / "emb_scale.npy")
    return {"texts": texts, "q": q, "scale": scale}


def embed_split(split: str, out: Path | None = None, chunk: int = 2048, use_cache: bool = True,
                batch_size: int = 64) -> Path:
    """Embed one split with all-mpnet-base-v2 into a float16 .npy, chunked and resumable."""
    from tqdm import tqdm

    from .encoder import encode

    texts = load_split(split)
    out = Path(out or DATA_DIR / f"emb_{split}.npy")
    out.parent.mkdir(parents=True, exist_ok=True)
    done_path = out.with_suffix(".done.npy")
    if out.exists() and done_path.exists():
        emb = np.load(out, mmap_mode="r+")
        done = np.load(done_path)
        if emb.shape != (len(texts), 768):
            raise ValueError(f"{out} has shape {emb.shape}, expected {(len(texts), 768)}; delete it to rebuild")
    else:
        emb = np.lib.format.open_memmap(out, mode="w+", dtype=np.float16, shape=(len(texts), 768))
        done = np.zeros(len(texts), dtype=bool)
    cache = load_shared_cache() if use_cache else None
    if cache is not None:
        index = {t: i for i, t in enumerate(cache["texts"])}
        hits = [(i, index[t]) for i, t in enumerate(texts) if not done[i] and t in index]
        if hits:
            rows, src = np.array([h[0] for h in hits]), np.array([h[1] for h in hits])
            order = np.argsort(src)  # read the memmap in order
            v = cache["q"][src[order]].astype(np.float32) * cache["scale"][src[order], None]
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            emb[rows[order]] = v.astype(np.float16)
            done[rows] = True
            print(f"{len(hits)} of {len(texts)} embeddings taken from {SHARED_CACHE}", file=sys.stderr)
    todo = np.flatnonzero(~done)
    for start in tqdm(range(0, len(todo), chunk), desc=f"embedding {split}", unit="chunk"):
        idx = todo[start:start + chunk]
        emb[idx] = encode([texts[i] for i in idx], batch_size=batch_size).astype(np.float16)
        done[idx] = True
        emb.flush()
        np.save(done_path, done)
    emb.flush()
    np.save(done_path, done)
    return out


def load_embeddings(split: str) -> np.ndarray:
    path = DATA_DIR / f"emb_{split}.npy"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run `python -m decoders.corpus embed --split {split}`")
    return np.load(path)


def pq_pack(split: str, out: Path, m: int = 256, train_n: int = 40000, seed: int = 0) -> float:
    """Product-quantise a split's embeddings (m sub-vectors x 8 bits) into a small .npz
    (codes + centroids) that fits where the float16 array does not, e.g. the 64 MiB that
    travels to a lent GPU machine. Returns the mean cosine of reconstruction to the original.
    The trainer reads the pack with `--embeddings FILE.npz`."""
    import faiss

    x = load_embeddings(split).astype(np.float32)
    rng = np.random.default_rng(seed)
    pq = faiss.ProductQuantizer(x.shape[1], m, 8)
    pq.train(x[rng.choice(len(x), min(train_n, len(x)), replace=False)])
    codes = pq.compute_codes(x)
    centroids = faiss.vector_to_array(pq.centroids).reshape(m, 256, x.shape[1] // m)
    rec = pq.decode(codes[:5000])
    cos = float(((rec * x[:5000]).sum(1) / np.linalg.norm(rec, axis=1)).mean())
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, codes=codes, centroids=centroids.astype(np.float32), mean_cos=cos)
    return cos


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m decoders.corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build assets/corpus/wordnet.tsv.gz from WordNet 3.0")
    b.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"), help="folder with data.noun etc.")
    b.add_argument("--out", type=Path, default=CORPUS_PATH)
    e = sub.add_parser("embed", help="embed a split with all-mpnet-base-v2 (resumable)")
    e.add_argument("--split", choices=SPLITS, required=True)
    e.add_argument("--out", type=Path, default=None)
    e.add_argument("--no-cache", action="store_true", help="ignore ../shared/corpus and compute everything")
    e.add_argument("--batch-size", type=int, default=64)
    q = sub.add_parser("pack", help="product-quantised copy of a split's embeddings for a GPU machine")
    q.add_argument("--split", choices=SPLITS, default="train")
    q.add_argument("--out", type=Path, default=Path("gpu/train_pq.npz"))
    q.add_argument("--m", type=int, default=256, help="sub-vectors (bytes per embedding)")
    a = p.parse_args(argv)
    if a.cmd == "pack":
        print(f"wrote {a.out}: reconstruction cosine {pq_pack(a.split, a.out, a.m):.4f}")
    elif a.cmd == "build":
        n = build(a.wordnet, a.out)
        counts = {s: sum(1 for r in _rows(str(a.out)) if r[0] == s) for s in SPLITS}
        print(f"wrote {a.out}: {n} texts {counts}")
    else:
        print(embed_split(a.split, a.out, use_cache=not a.no_cache, batch_size=a.batch_size))


if __name__ == "__main__":
    main()
