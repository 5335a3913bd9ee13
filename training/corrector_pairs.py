"""Training pairs for the corrector: (target row, hypothesis text, hypothesis embedding).

    python -m training.corrector_pairs --out data/corrector_pairs --sources bank --rows 4000      # CPU proof of life
    python -m training.corrector_pairs --out data/corrector_pairs --sources bank,generative --rows 150000 \\
        --bank-k 2 --decoded-rows 15000 --encode-batch 32 --threads 1                         # CPU (AMX Xeon)
    python -m training.corrector_pairs --out data/corrector_pairs --sources bank,generative,ret \\
        --device cuda --chunk 8192 --encode-batch 1024                                             # every embedded row
    python -m training.corrector_pairs --out data/corrector_pairs --sources corrector \\
        --corrector assets/corrector --from bank,generative,ret --rows 200000 --device cuda         # second round
    python -m training.corrector_pairs pack-encoder --out gpu/mpnet --part-mb 50                   # encoder for a GPU box

Targets are train-split rows that are already embedded (data/emb_train.npy), a random
sample of `--rows` of them (seeded; all of them by default), kept in OUT/targets.npy.
A hypothesis for a target comes from one of the sources:

  bank        the nearest *other* embedded train rows (exact inner product over all embedded
              rows, rows with the same text as the target skipped): their embeddings are corpus
              rows, so nothing is encoded
  generative  the generative decoder's greedy output and `--samples` sampled ones
  ret         RET's greedy output
  corrector   the second round: a trained corrector's greedy (and sampled) correction of
              hypotheses of the `--from` sources, i.e. its own outputs

Every text that is not a corpus row is re-encoded with all-mpnet-base-v2 in bfloat16
(`--device cuda` on a GPU). Per source, OUT holds

  SOURCE.jsonl      one [train_row, text] per line
  SOURCE.emb.npy    float16 [lines, 768], the text's embedding
  SOURCE.done.npy   which lines are embedded

and OUT/manifest.json the progress. Both stages run chunk by chunk and resume where they
stopped (texts: the byte length of the .jsonl written so far; embeddings: the done mask).
The training side is training/corrector.py.
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

from decoders.base import EMBED_DIM, Sampling
from decoders.corpus import DATA_DIR, _texts_sha256, embedding_paths, load_split
from decoders.encoder import default_dtype

SOURCES = ("bank", "generative", "ret", "corrector")
ENCODED = ("generative", "ret", "corrector")   # sources whose texts need the encoder


def text_key(text: str) -> str:
    """Texts that count as the same sentence: lower-cased, whitespace collapsed."""
    return " ".join(text.lower().split())


# --------------------------------------------------------------------------- corpus side

def embedded_train(data_dir: Path = DATA_DIR) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(all train texts, the embedding memmap float16 [N, 768], indices of the embedded rows)."""
    texts = load_split("train")
    path, done_path = embedding_paths("train", data_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run `python -m decoders.corpus embed --split train`")
    emb = np.load(path, mmap_mode="r")
    if emb.shape != (len(texts), EMBED_DIM):
        raise ValueError(f"{path} has shape {emb.shape}; the train split has {len(texts)} texts")
    return texts, emb, np.flatnonzero(np.load(done_path))


def nearest_other(queries: np.ndarray, query_keys: list[str], bank: torch.Tensor, bank_ids: np.ndarray,
                  keys: list[str], k: int, chunk: int = 256) -> np.ndarray:
    """For each query, the k bank rows of highest inner product whose text differs from the
    query's (by `text_key`): ids into `keys` [n, k], -1 where fewer than k qualify.

    Exact search: `bank` [M, 768] holds the rows `bank_ids` (on the compute device; bfloat16 on a GPU
    or a CPU that has it natively, 2.6x faster than float32 on an AMX Xeon core, float32 elsewhere;
    near ties may swap, which a training pair does not mind); `keys[i]` is the text key of row i.
    """
    out = np.full((len(queries), k), -1, dtype=np.int64)
    extra = 8  # candidates beyond k, for the ones with the query's own text
    for s in range(0, len(queries), chunk):
        q = torch.as_tensor(np.asarray(queries[s:s + chunk], dtype=np.float32), device=bank.device).to(bank.dtype)
        top = torch.topk((q @ bank.T).float(), min(k + extra, bank.shape[0]), dim=1).indices.cpu().numpy()
        for j, cand in enumerate(top):
            got = [int(bank_ids[c]) for c in cand if keys[bank_ids[c]] != query_keys[s + j]][:k]
            out[s + j, :len(got)] = got
    return out


# --------------------------------------------------------------------------- the pairs folder

class PairsDir:
    """OUT/targets.npy, OUT/manifest.json and the per-source files (see the module docstring)."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "manifest.json"
        self.manifest = json.loads(path.read_text()) if path.exists() else {"sources": {}}

    def save(self) -> None:
        tmp = self.out / "manifest.tmp"
        tmp.write_text(json.dumps(self.manifest, indent=1))
        tmp.replace(self.out / "manifest.json")

    def targets(self, train_texts: list[str], embedded: np.ndarray, rows: int | None, seed: int) -> np.ndarray:
        """The target rows: chosen once (a seeded sample of the embedded rows), then read back."""
        path = self.out / "targets.npy"
        sha = _texts_sha256(train_texts)
        if path.exists():
            t = self.manifest["targets"]
            if t["train_sha256"] != sha:
                raise ValueError(f"{path} was made for other train texts (the corpus changed); use a new --out")
            if rows is not None and rows != t["rows"]:
                raise ValueError(f"{path} holds {t['rows']} targets, not --rows {rows}; use a new --out")
            return np.load(path)
        rng = np.random.default_rng(seed)
        chosen = embedded if rows is None or rows >= len(embedded) else rng.choice(embedded, rows, replace=False)
        chosen = rng.permutation(chosen) if rows is None or rows >= len(embedded) else chosen
        np.save(path, chosen.astype(np.int64))
        self.manifest["targets"] = {"rows": len(chosen), "seed": seed, "train_sha256": sha,
                                    "embedded_when_chosen": len(embedded)}
        self.save()
        return chosen

    def source(self, name: str) -> dict:
        return self.manifest["sources"].setdefault(name, {"items_done": 0, "lines": 0, "bytes": 0, "complete": False})

    def append(self, name: str, lines: list[tuple[int, str]], items_done: int) -> None:
        """Add lines to SOURCE.jsonl, then record progress (a crash in between is undone on resume)."""
        st = self.source(name)
        path = self.out / f"{name}.jsonl"
        with open(path, "ab") as f:
            f.truncate(st["bytes"])
            f.seek(st["bytes"])
            f.write("".join(json.dumps([r, t]) + "\n" for r, t in lines).encode())
            st["bytes"] = f.tell()
        st["lines"] += len(lines)
        st["items_done"] = items_done
        self.save()

    def lines(self, name: str) -> list[tuple[int, str]]:
        st = self.source(name)
        with open(self.out / f"{name}.jsonl", "rb") as f:
            data = f.read(st["bytes"]).decode()
        return [tuple(json.loads(line)) for line in data.splitlines()]

    def embeddings(self, name: str, create: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(SOURCE.emb.npy memmap [lines, 768] float16, done mask); made on first use."""
        n = self.source(name)["lines"]
        path, done_path = self.out / f"{name}.emb.npy", self.out / f"{name}.done.npy"
        if path.exists():
            emb = np.load(path, mmap_mode="r+")
            if emb.shape != (n, EMBED_DIM):
                raise ValueError(f"{path} has shape {emb.shape}, but {name}.jsonl has {n} lines")
            return emb, np.load(done_path)
        if not create:
            raise FileNotFoundError(f"{path} not found: the {name} pairs are not encoded yet")
        emb = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, EMBED_DIM))
        done = np.zeros(n, dtype=bool)
        np.save(done_path, done)
        return emb, done


# --------------------------------------------------------------------------- stages

def write_bank(pairs: PairsDir, targets: np.ndarray, train_texts: list[str], emb: np.ndarray,
               embedded: np.ndarray, k: int, device: str, chunk: int, log=print) -> None:
    """Bank neighbours: texts and their (free) embeddings, chunk by chunk."""
    st = pairs.source("bank")
    if st["complete"]:
        return
    keys = [text_key(t) for t in train_texts]
    dtype = getattr(torch, default_dtype(device))   # bfloat16 on a GPU or a CPU that has it natively
    bank = torch.as_tensor(np.asarray(emb[embedded]), device=device).to(dtype)
    t0 = time.perf_counter()
    for s in range(st["items_done"], len(targets), chunk):
        rows = targets[s:s + chunk]
        nb = nearest_other(np.asarray(emb[rows]), [keys[r] for r in rows], bank, embedded, keys, k)
        pairs.append("bank", [(int(r), train_texts[j]) for r, js in zip(rows, nb) for j in js if j >= 0],
                     s + len(rows))
        log(f"bank: {s + len(rows)}/{len(targets)} targets, {time.perf_counter() - t0:.0f}s")
    vecs, done = pairs.embeddings("bank", create=True)
    index = {train_texts[i]: i for i in embedded}
    lines = pairs.lines("bank")
    for s in range(0, len(lines), 65536):
        part = lines[s:s + 65536]
        vecs[s:s + len(part)] = emb[[index[t] for _, t in part]]
        done[s:s + len(part)] = True
    vecs.flush()
    np.save(pairs.out / "bank.done.npy", done)
    st["complete"] = True
    pairs.save()


def write_decoded(pairs: PairsDir, name: str, targets: np.ndarray, emb: np.ndarray, decode, chunk: int,
                  log=print) -> None:
    """Texts of a decoder source: `decode(embeddings [n, 768] float32, chunk_index) -> list[list[str]]`."""
    st = pairs.source(name)
    if st["complete"]:
        return
    t0 = time.perf_counter()
    for s in range(st["items_done"], len(targets), chunk):
        rows = targets[s:s + chunk]
        outs = decode(np.asarray(emb[rows], dtype=np.float32), s // chunk)
        lines = [(int(r), t) for r, texts in zip(rows, outs) for t in dict.fromkeys(texts)]
        pairs.append(name, lines, s + len(rows))
        log(f"{name}: {s + len(rows)}/{len(targets)} targets, {time.perf_counter() - t0:.0f}s")
    pairs.source(name)["complete"] = True
    pairs.save()


def write_corrected(pairs: PairsDir, from_sources: list[str], rows: int | None, seed: int, emb: np.ndarray,
                    propose, chunk: int, log=print) -> None:
    """Second round: `propose(target, landed, texts, chunk_index) -> list[list[str]]` on a seeded
    sample of `rows` encoded pairs of the `from_sources`."""
    name = "corrector"
    st = pairs.source(name)
    if st["complete"]:
        return
    inputs = []   # (source, line index)
    for src in from_sources:
        _, done = pairs.embeddings(src)
        inputs += [(src, i) for i in np.flatnonzero(done)]
    rng = np.random.default_rng(seed + 1)
    order = rng.permutation(len(inputs))[:rows] if rows else rng.permutation(len(inputs))
    plan = {"sources": from_sources, "pairs": len(order), "seed": seed}
    if st.setdefault("from", plan) != plan:
        raise ValueError(f"{pairs.out}: the corrector pairs were started with {st['from']}, not {plan}; use a new --out")
    lines = {src: pairs.lines(src) for src in from_sources}
    vecs = {src: pairs.embeddings(src)[0] for src in from_sources}
    t0 = time.perf_counter()
    for s in range(st["items_done"], len(order), chunk):
        picked = [inputs[i] for i in order[s:s + chunk]]
        r = np.array([lines[src][i][0] for src, i in picked])
        hyp = [lines[src][i][1] for src, i in picked]
        landed = np.stack([np.asarray(vecs[src][i], dtype=np.float32) for src, i in picked])
        outs = propose(np.asarray(emb[r], dtype=np.float32), landed, hyp, s // chunk)
        new = [(int(row), t) for row, h, texts in zip(r, hyp, outs) for t in dict.fromkeys(texts) if t != h]
        pairs.append(name, new, s + len(picked))
        log(f"{name}: {s + len(picked)}/{len(order)} hypotheses corrected, {time.perf_counter() - t0:.0f}s")
    pairs.source(name)["complete"] = True
    pairs.save()


def encode_source(pairs: PairsDir, name: str, train_texts: list[str], emb: np.ndarray, embedded: np.ndarray,
                  encode, chunk: int = 8192, log=print) -> None:
    """Embed the source's texts not yet embedded: a text that is an embedded corpus row takes that
    row's vector; the others go to `encode(list[str]) -> float32 [n, 768]`, each distinct text once."""
    vecs, done = pairs.embeddings(name, create=True)
    if done.all():
        return
    lines = pairs.lines(name)
    known = {train_texts[i]: i for i in embedded}
    t0, new = time.perf_counter(), 0
    for s in range(0, len(lines), chunk):
        idx = [i for i in range(s, min(s + chunk, len(lines))) if not done[i]]
        if not idx:
            continue
        texts = [lines[i][1] for i in idx]
        fresh = sorted({t for t in texts if t not in known})
        got = dict(zip(fresh, encode(fresh))) if fresh else {}
        vecs[idx] = np.stack([got[t] if t in got else np.asarray(emb[known[t]], dtype=np.float32)
                              for t in texts]).astype(np.float16)
        done[idx] = True
        vecs.flush()
        np.save(pairs.out / f"{name}.done.npy", done)
        new += len(fresh)
        log(f"{name}: {int(done.sum())}/{len(lines)} embedded ({new} encoded, "
            f"{new / (time.perf_counter() - t0):.0f} texts/s)")
    st = pairs.source(name)
    st["encoded"] = int(done.sum())
    pairs.save()


# --------------------------------------------------------------------------- command line

def pack_encoder(out: Path, shard_mb: int, part_mb: int | None = None) -> None:
    """all-mpnet-base-v2 in bfloat16 as a sentence-transformers folder with safetensors shards of at
    most `shard_mb` MB (the word embeddings, 47 MB, are one tensor and stay whole), so that it can
    travel to a GPU machine in parts; there, the parts copied into one folder are loaded with
    MPNET_DIR=that folder. With `part_mb`, the files are also grouped into OUT/part-1, part-2, ...
    of at most `part_mb` MB each (one per device call)."""
    import shutil

    from decoders.encoder import resolve_model_dir

    src = Path(resolve_model_dir())
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", "desktop.ini", "README.md"):
            shutil.copy(f, out / f.name)
        elif f.is_dir():
            shutil.copytree(f, out / f.name, dirs_exist_ok=True)
    from transformers import AutoModel
    AutoModel.from_pretrained(str(src), dtype=torch.bfloat16).save_pretrained(
        str(out), max_shard_size=f"{shard_mb}MB", safe_serialization=True)
    if part_mb:
        files = sorted((f for f in out.iterdir()), key=lambda f: f.is_file() and f.stat().st_size)
        parts: list[list[Path]] = [[]]
        size = lambda f: f.stat().st_size if f.is_file() else sum(g.stat().st_size for g in f.rglob("*"))  # noqa: E731
        for f in files:
            if parts[-1] and sum(map(size, parts[-1])) + size(f) > part_mb * 1e6:
                parts.append([])
            parts[-1].append(f)
        for i, group in enumerate(parts, 1):
            (out / f"part-{i}").mkdir()
            for f in group:
                shutil.move(str(f), str(out / f"part-{i}" / f.name))
    for f in sorted(out.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size:>12,}  {f}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["pack-encoder"]:
        p = argparse.ArgumentParser(prog="python -m training.corrector_pairs pack-encoder")
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--shard-mb", type=int, default=40, help="largest safetensors shard")
        p.add_argument("--part-mb", type=int, default=None, help="group the files into OUT/part-N of at most this size")
        a = p.parse_args(argv[1:])
        pack_encoder(a.out, a.shard_mb, a.part_mb)
        return 0
    p = argparse.ArgumentParser(prog="python -m training.corrector_pairs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="pairs folder (e.g. data/corrector_pairs)")
    p.add_argument("--sources", default="bank", help=f"comma list of {', '.join(SOURCES)}")
    p.add_argument("--rows", type=int, default=None, help="targets: a seeded sample of this many embedded train rows "
                   "(default all; for 'corrector': hypotheses to correct)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bank-k", type=int, default=1, help="bank neighbours per target")
    p.add_argument("--decoded-rows", type=int, default=None,
                   help="the generative and ret sources decode only the first N targets (default: all); "
                        "keep it the same when resuming")
    p.add_argument("--samples", type=int, default=2, help="sampled outputs per target (generative, corrector)")
    p.add_argument("--temperature", type=float, default=1.0, help="temperature of the sampled outputs")
    p.add_argument("--top-p", type=float, default=0.95, help="top-p of the sampled outputs")
    p.add_argument("--corrector", type=Path, default=None, help="checkpoint for the 'corrector' source")
    p.add_argument("--from", dest="from_sources", default="bank,generative,ret",
                   help="sources whose pairs the 'corrector' source corrects (those present)")
    p.add_argument("--device", default="cpu", help="cpu or cuda: decoders, neighbour search and the encoder")
    p.add_argument("--chunk", type=int, default=2048, help="targets per chunk (a resume point)")
    p.add_argument("--encode-batch", type=int, default=128, help="encoder batch size")
    p.add_argument("--no-encode", action="store_true", help="write texts only; encode later (or elsewhere)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR)
    a = p.parse_args(argv)
    sources = [s for s in a.sources.split(",") if s]
    bad = [s for s in sources if s not in SOURCES]
    if bad:
        p.error(f"unknown source(s) {bad}; valid sources: {', '.join(SOURCES)}")
    if "corrector" in sources and a.corrector is None:
        p.error("--sources corrector needs --corrector CHECKPOINT")
    if a.threads:
        torch.set_num_threads(a.threads)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    from decoders import get_decoder
    from decoders.encoder import encode

    train_texts, emb, embedded = embedded_train(a.data_dir)
    pairs = PairsDir(a.out)
    targets = pairs.targets(train_texts, embedded, None if sources == ["corrector"] else a.rows, a.seed)
    log(f"{len(targets)} targets of {len(embedded)} embedded train rows -> {a.out}")

    def sampled(decoder, greedy_only: bool):
        def decode(x, chunk_index):
            out = [[d.text for d in row] for row in decoder.decode(x, Sampling())]
            if not greedy_only and a.samples:
                s = Sampling(temperature=a.temperature, top_p=a.top_p, num_samples=a.samples, seed=a.seed + chunk_index)
                out = [g + [d.text for d in row] for g, row in zip(out, decoder.decode(x, s))]
            return out
        return decode

    for name in sources:
        if name == "bank":
            write_bank(pairs, targets, train_texts, emb, embedded, a.bank_k, a.device, a.chunk, log)
        elif name in ("generative", "ret"):
            write_decoded(pairs, name, targets[:a.decoded_rows], emb, sampled(get_decoder(name, a.device), name == "ret"),
                          a.chunk, log)
        else:
            from decoders import corrector
            corr = corrector.load(a.device, a.corrector)

            def propose(target, landed, texts, chunk_index):
                greedy = corr.propose(target, landed, texts, Sampling(), 1)
                if not a.samples:
                    return greedy
                s = Sampling(temperature=a.temperature, top_p=a.top_p, seed=a.seed + chunk_index)
                return [g + o for g, o in zip(greedy, corr.propose(target, landed, texts, s, a.samples))]
            present = [s for s in a.from_sources.split(",") if s in pairs.manifest["sources"]]
            write_corrected(pairs, present, a.rows, a.seed, emb, propose, a.chunk, log)
        if name in ENCODED and not a.no_encode:
            encode_source(pairs, name, train_texts, emb, embedded,
                          lambda t: encode(t, device=a.device, strict=False, dtype="bfloat16",
                                           batch_size=a.encode_batch), log=log)
    print(json.dumps(pairs.manifest["sources"], indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
