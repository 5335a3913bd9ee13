"""The text corpus: WordNet 3.0 plus nine open-domain sources, its splits and its embeddings.

    python -m decoders.corpus stats                      # sentences per source and split (JSON)
    python -m decoders.corpus embed --split open-test    # -> data/emb_open-test.npy (resumable)
    python -m decoders.corpus embed --split train --device cuda --batch-size 512
    python -m decoders.corpus speed --batch-sizes 8,32,128   # the encoder's sentences/s here

Two committed files make the corpus (`python -m tools.corpus_build` writes them):
  assets/corpus/wordnet.tsv.gz  split, source, text   WordNet glosses and usage examples
  assets/corpus/open.tsv.gz     split, source, kind, text   the open-domain sources

Splits:
  test, dev            2,000 WordNet texts each, chosen by sha1 of the text (unchanged since round 1)
  open-test, open-dev  2,000 sentences each from the open sources, by hash, stratified by source
  train                everything else: WordNet train + open train

Within a split, WordNet rows come first (examples before glosses), then the open rows in
hash order. `embed` visits rows source by source in turn (`balanced_order`), so a partly
embedded split holds about as many rows of each source, like the open test splits.

Embeddings (all-mpnet-base-v2, unit length, float16) live in data/ outside git, one
memory-mapped array per split with a mask of rows done, so `embed` resumes after a stop
and can run as several shards (`--shard 0/2`). data/manifest.json ties each array to the
corpus: row count, sha256 of the split's texts, rows done.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import assets
from .encoder import default_dtype, encode

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = ROOT / "assets" / "corpus"
CORPUS_PATH = CORPUS_DIR / "wordnet.tsv.gz"
OPEN_PATH = CORPUS_DIR / "open.tsv.gz"
DATA_DIR = ROOT / "data"                       # embeddings and training packs (git-ignored)
SPLITS = ("train", "dev", "test", "open-dev", "open-test")
WORDNET_KINDS = ("example", "gloss")
EMBED_DIM = 768


class Row(NamedTuple):   # a tuple: the corpus is 650K of them, built at every load
    split: str
    source: str   # "wordnet", "gcide", "brown", ...
    kind: str     # sub-source: "example"/"gloss" for WordNet, "quotation", "ham", a book, ...
    text: str


def text_hash(text: str) -> str:
    """The hash that assigns a text to a split: sha1 of its lower-cased form."""
    return hashlib.sha1(text.lower().encode()).hexdigest()


def _read_tsv(path: Path, header: list[str]) -> list[list[str]]:
    if not path.exists():
        raise FileNotFoundError(f"corpus file {path} not found; build it with `python -m tools.corpus_build`")
    assets.verify(path.parent, [path.name])  # size and sha256 against MANIFEST.json, where there is one
    with gzip.open(path, "rt", encoding="utf-8") as f:
        head, *lines = f.read().split("\n")
    got = head.split("\t")
    if got != header:
        raise ValueError(f"{path}: header {got}, expected {header}")
    return [line.split("\t", len(header) - 1) for line in lines if line]


def wordnet_rows(path: Path = CORPUS_PATH) -> list[Row]:
    """WordNet's rows as committed (kind 'example' or 'gloss'), examples first."""
    return [Row(split, "wordnet", kind, text) for split, kind, text in _read_tsv(path, ["split", "source", "text"])]


@lru_cache(maxsize=4)
def rows(wordnet_path: Path = CORPUS_PATH, open_path: Path = OPEN_PATH) -> tuple[Row, ...]:
    """Every row of the corpus, WordNet first; without the open file, WordNet alone."""
    out = wordnet_rows(wordnet_path)
    if open_path.exists():
        out += map(Row._make, _read_tsv(open_path, ["split", "source", "kind", "text"]))
    return tuple(out)


def load_rows(split: str, sources: list[str] | None = None) -> list[Row]:
    """Rows of one split, in corpus order, optionally only from some sources."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return [r for r in rows() if r.split == split and (sources is None or r.source in sources)]


def load_split(split: str, sources: list[str] | None = None) -> list[str]:
    """Texts of one split, in corpus order."""
    return [r.text for r in load_rows(split, sources)]


def stats() -> dict:
    """Sentences per source and split, and the totals."""
    table: dict[str, dict[str, int]] = {}
    for r in rows():
        per = table.setdefault(r.source, {s: 0 for s in SPLITS})
        per[r.split] += 1
    totals = {s: sum(per[s] for per in table.values()) for s in SPLITS}
    train = totals["train"]
    return {"sources": table, "totals": totals, "all": sum(totals.values()), "n_sources": len(table),
            "train_share": {src: round(per["train"] / train, 4) for src, per in table.items()} if train else {}}


# ---------------------------------------------------------------------------------------------
# Embeddings


def _texts_sha256(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\n")
    return h.hexdigest()


def embedding_paths(split: str, data_dir: Path = DATA_DIR) -> tuple[Path, Path]:
    return data_dir / f"emb_{split}.npy", data_dir / f"emb_{split}.done.npy"


def _update_manifest(split: str, texts: list[str], done: np.ndarray, data_dir: Path, extra: dict) -> None:
    path = data_dir / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest[split] = {"rows": len(texts), "texts_sha256": _texts_sha256(texts), "done": int(done.sum()),
                       "file": embedding_paths(split, data_dir)[0].name, "dtype": "float16",
                       "encoder": "all-mpnet-base-v2", "normalized": True, **extra}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(path)


def _open_embeddings(split: str, n: int, data_dir: Path) -> tuple[np.memmap, np.ndarray]:
    out, done_path = embedding_paths(split, data_dir)
    if out.exists() and done_path.exists():
        emb = np.load(out, mmap_mode="r+")
        if emb.shape != (n, EMBED_DIM):
            raise ValueError(f"{out} has shape {emb.shape} but split {split!r} has {n} texts now; "
                             "the corpus changed: delete it and embed again")
        return emb, np.load(done_path)
    data_dir.mkdir(parents=True, exist_ok=True)
    emb = np.lib.format.open_memmap(out, mode="w+", dtype=np.float16, shape=(n, EMBED_DIM))
    return emb, np.zeros(n, dtype=bool)


def _check_manifest(split: str, texts: list[str], data_dir: Path) -> None:
    path = data_dir / "manifest.json"
    entry = json.loads(path.read_text()).get(split) if path.exists() else None
    if entry is not None and entry["texts_sha256"] != _texts_sha256(texts):
        raise ValueError(f"{embedding_paths(split, data_dir)[0]} was computed for other texts than split "
                         f"{split!r} holds now (manifest hash differs); delete it and embed again")


def take_from_cache(texts: list[str], emb: np.ndarray, done: np.ndarray, cache_dir: Path) -> int:
    """Fill rows whose exact text is in a developer cache (texts.tsv.gz + emb_int8.npy + emb_scale.npy,
    the format of ../shared/corpus). Returns how many rows it filled."""
    with gzip.open(cache_dir / "texts.tsv.gz", "rt", encoding="utf-8") as f:
        index = {line.rstrip("\n").split("\t", 1)[1]: i for i, line in enumerate(f)}
    hits = [(i, index[t]) for i, t in enumerate(texts) if not done[i] and t in index]
    if not hits:
        return 0
    dst, src = np.array([h[0] for h in hits]), np.array([h[1] for h in hits])
    order = np.argsort(src)                      # read the memmap in order
    q = np.load(cache_dir / "emb_int8.npy", mmap_mode="r")
    v = q[src[order]].astype(np.float32) * np.load(cache_dir / "emb_scale.npy")[src[order], None]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    emb[dst[order]] = v.astype(np.float16)
    done[dst] = True
    return len(hits)


def balanced_order(sources: list[str]) -> np.ndarray:
    """Row indices taking the sources in turn (row k of each source before row k+1 of any),
    keeping corpus order within a source: every prefix is a source-balanced sample."""
    rank: dict[str, int] = {}
    keys = []
    for s in sources:
        keys.append(rank.get(s, 0))
        rank[s] = keys[-1] + 1
    return np.lexsort((np.arange(len(sources)), np.array(keys)))


def embed_split(split: str, data_dir: Path = DATA_DIR, device: str = "cpu", dtype: str | None = None,
                batch_size: int = 128, chunk: int = 4096, shard: tuple[int, int] = (0, 1),
                cache_dir: Path | None = None, max_rows: int | None = None, log=print,
                texts: list[str] | None = None) -> Path:
    """Embed one split with all-mpnet-base-v2 into data/emb_{split}.npy, chunk by chunk.

    Resumable: rows already done are skipped. `shard=(i, n)` takes chunks i, i+n, i+2n, ... so
    n processes (or machines) can share a split. `max_rows` stops after that many new rows.
    `texts` defaults to the split's texts (tests pass their own). Rows are visited in
    `balanced_order` of their sources; `dtype` defaults to `default_dtype(device)`.
    """
    dtype = dtype or default_dtype(device)
    if texts is None:
        split_rows = load_rows(split)
        texts, order = [r.text for r in split_rows], balanced_order([r.source for r in split_rows])
    else:
        order = np.arange(len(texts))
    _check_manifest(split, texts, data_dir)
    emb, done = _open_embeddings(split, len(texts), data_dir)
    done_path = embedding_paths(split, data_dir)[1]
    if cache_dir is not None and Path(cache_dir, "emb_int8.npy").exists():
        n = take_from_cache(texts, emb, done, Path(cache_dir))
        if n:
            log(f"{split}: {n} rows from the cache in {cache_dir}")
            emb.flush()
            np.save(done_path, done)
    i, n_shards = shard
    chunks = [c for c in range(0, len(texts), chunk) if (c // chunk) % n_shards == i]
    new, t0 = 0, time.perf_counter()
    for c in chunks:
        idx = order[c:c + chunk]
        idx = np.sort(idx[~done[idx]])
        if max_rows is not None:
            idx = idx[:max_rows - new]
        if len(idx) == 0:
            continue
        emb[idx] = encode([texts[j] for j in idx], batch_size=batch_size, device=device,
                          dtype=dtype).astype(np.float16)
        done[idx] = True
        emb.flush()
        np.save(done_path, done)
        new += len(idx)
        rate = new / (time.perf_counter() - t0)
        log(f"{split}: {int(done.sum())}/{len(texts)} done, {rate:.1f} sentences/s ({device}, {dtype})")
        _update_manifest(split, texts, done, data_dir, {"last_rate_per_s": round(rate, 1), "device": device,
                                                        "compute_dtype": dtype})
        if max_rows is not None and new >= max_rows:
            break
    _update_manifest(split, texts, done, data_dir, {})
    return embedding_paths(split, data_dir)[0]


def load_embedded(split: str, data_dir: Path = DATA_DIR, sources: list[str] | None = None
                  ) -> tuple[list[Row], np.ndarray]:
    """The rows of a split that are embedded so far, and their embeddings as float32 [n, 768]."""
    all_rows = load_rows(split)
    _check_manifest(split, [r.text for r in all_rows], data_dir)
    out, done_path = embedding_paths(split, data_dir)
    if not out.exists():
        raise FileNotFoundError(f"{out} not found; run `python -m decoders.corpus embed --split {split}`")
    done = np.load(done_path)
    keep = done & np.array([sources is None or r.source in sources for r in all_rows])
    idx = np.flatnonzero(keep)
    return [all_rows[i] for i in idx], np.asarray(np.load(out, mmap_mode="r")[idx], dtype=np.float32)


def load_embeddings(split: str, data_dir: Path = DATA_DIR) -> np.ndarray:
    """All embeddings of a split as float16 [n, 768]; raises unless every row is embedded."""
    out, done_path = embedding_paths(split, data_dir)
    if not out.exists():
        raise FileNotFoundError(f"{out} not found; run `python -m decoders.corpus embed --split {split}`")
    _check_manifest(split, load_split(split), data_dir)
    done = np.load(done_path)
    if not done.all():
        raise ValueError(f"{out}: only {int(done.sum())} of {len(done)} rows are embedded; finish with "
                         f"`python -m decoders.corpus embed --split {split}` or use load_embedded()")
    return np.load(out)


def encode_speed(texts: list[str], batch_sizes: list[int], dtypes: list[str], device: str = "cpu") -> list[dict]:
    """Sentences a second of all-mpnet-base-v2 over `texts`, for each compute dtype and batch size
    (one untimed batch first): what `embed` would reach on this machine with nothing else running."""
    rows = []
    for dtype in dtypes:
        for batch_size in batch_sizes:
            encode(texts[:batch_size], batch_size=batch_size, device=device, dtype=dtype, strict=False)
            t = time.perf_counter()
            encode(texts, batch_size=batch_size, device=device, dtype=dtype, strict=False)
            rows.append({"dtype": dtype, "batch_size": batch_size, "n": len(texts), "device": device,
                         "sentences_per_s": round(len(texts) / (time.perf_counter() - t), 1)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m decoders.corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("stats", help="sentences per source and split, as JSON")
    e = sub.add_parser("embed", help="embed a split with all-mpnet-base-v2 (resumable, sharded)")
    e.add_argument("--split", choices=SPLITS + ("all",), required=True, help="'all': open-dev, open-test, dev, test, train")
    e.add_argument("--data-dir", type=Path, default=DATA_DIR)
    e.add_argument("--device", default="cpu", help="cpu or cuda")
    e.add_argument("--dtype", default=None, choices=["bfloat16", "float16", "float32"],
                   help="compute dtype of the encoder (default: bfloat16 on cuda, float32 on cpu; outputs are "
                        "normalised in float32, stored as float16)")
    e.add_argument("--batch-size", type=int, default=None,
                   help="sentences per encoder call (default: 128 on cuda; 32 on cpu, which measured 27 sentences/s "
                        "against 22 at 128 on 2 AMD EPYC cores)")
    e.add_argument("--shard", default="0/1", help="i/n: this process takes every n-th chunk starting at i")
    e.add_argument("--max-rows", type=int, default=None, help="stop after embedding this many new rows")
    e.add_argument("--cache", type=Path, default=None,
                   help="a developer cache of known embeddings (e.g. ../shared/corpus), matched by exact text")
    sp = sub.add_parser("speed", help="sentences/s of the encoder per batch size and dtype (JSON)")
    sp.add_argument("--split", choices=SPLITS, default="open-dev", help="texts taken source by source from this split")
    sp.add_argument("--n", type=int, default=512)
    sp.add_argument("--batch-sizes", default="8,32,128")
    sp.add_argument("--dtypes", default="float32", help="comma-separated: float32, bfloat16, float16")
    sp.add_argument("--device", default="cpu")
    for q in (e, sp):
        q.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    a = p.parse_args(argv)
    if a.cmd == "stats":
        print(json.dumps(stats(), indent=1))
        return
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    if a.cmd == "speed":
        split_rows = load_rows(a.split)
        texts = [split_rows[i].text for i in balanced_order([r.source for r in split_rows])[:a.n]]
        result = encode_speed(texts, [int(b) for b in a.batch_sizes.split(",")], a.dtypes.split(","), a.device)
        words = sum(len(t.split()) for t in texts) / len(texts)
        print(json.dumps({"split": a.split, "words_per_text": round(words, 1), "threads": a.threads,
                          "rows": result}, indent=1))
        return
    i, n = (int(v) for v in a.shard.split("/"))
    splits = ["open-dev", "open-test", "dev", "test", "train"] if a.split == "all" else [a.split]
    batch_size = a.batch_size or (128 if a.device.startswith("cuda") else 32)
    for split in splits:
        path = embed_split(split, a.data_dir, a.device, a.dtype, batch_size, shard=(i, n), cache_dir=a.cache,
                           max_rows=a.max_rows, log=lambda m: print(m, file=sys.stderr, flush=True))
        print(path)


if __name__ == "__main__":
    main()
