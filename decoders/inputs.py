"""What a user brings, turned into checked values: text, vector files, pasted numbers, sampling
settings from a form or an API call, and new points built from embeddings (slerp between two,
a - b + c, added noise).

Every function raises ValueError naming the input and the limit it broke; the app shows that
message as it is. Nothing here encodes text: pair it with `decoders.encoder.encode`.

    rows = read_vector_file("v.npy")                 # [N, 768] unit rows, N <= MAX_ROWS
    rows = parse_pasted("0.1, -0.2, ...")            # same, from pasted numbers or JSON
    alphas, path = slerp_path(e_a, e_b, steps=5)     # [5, 768] along the great circle
    sampling = parse_sampling(temperature="0.7", seed=3)
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np

from .base import EMBED_DIM, Sampling, validate_embeddings
from .encoder import MAX_CHARS

# Limits (README "Limits"); the app and the API enforce these, not less.
MAX_TEXT_CHARS = MAX_CHARS              # longer text is refused (the encoder reads 384 word pieces at most)
MAX_UPLOAD_BYTES = 10 * 1024 * 1024     # a vector file larger than this is refused unread
MAX_ROWS = 16                           # rows of a multi-row vector decoded in one request
MAX_PASTED_CHARS = MAX_ROWS * EMBED_DIM * 24  # about 24 characters per pasted number
MAX_STEPS = 11                          # points on an interpolation path (at least 2)
MAX_NOISE = 2.0                         # noise size, as a fraction of the unit embedding's length
MAX_REVIEW_LINES = 500                  # inputs in one review set
HYBRID_BUDGET_MS = (100, 10_000)        # the hybrid's anytime wall-clock budget per embedding, ms
VECTOR_SUFFIXES = (".npy", ".json", ".txt", ".csv")

# (low, high, whole number?) of every sampling setting a form or an API call may set
SAMPLING_LIMITS = {
    "temperature": (0.0, 2.0, False),
    "top_k": (0, 200, True),
    "top_p": (0.01, 1.0, False),
    "max_new_tokens": (1, 63, True),   # the generative decoder's context is 64 tokens
    "num_samples": (1, 8, True),
    "seed": (0, 2**32 - 1, True),
}


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def check_number(value, name: str, low: float, high: float, whole: bool = False) -> float | int:
    """`value` (a number or a numeric string) as a float, or an int when `whole`, inside [low, high]."""
    kind = "a whole number" if whole else "a number"
    limit = f"{kind} in [{_fmt(low)}, {_fmt(high)}]"
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be {limit}, got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip()) if re.fullmatch(r"\s*[-+]?\d+\s*", value) else float(value)
        except ValueError:
            raise ValueError(f"{name} must be {limit}, got {value[:40]!r}") from None
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be {limit}, got {type(value).__name__}")
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        raise ValueError(f"{name} must be {limit}, got {value}")
    if whole and not float(value).is_integer():
        raise ValueError(f"{name} must be {limit}, got {_fmt(float(value))}")
    if not (low <= value <= high):
        raise ValueError(f"{name} must be {limit}, got {_fmt(value)}")
    return int(value) if whole else float(value)


def parse_sampling(temperature=0.0, top_k=0, top_p=1.0, max_new_tokens=Sampling.max_new_tokens, num_samples=1,
                   seed=0) -> Sampling:
    """A `Sampling` from form or API values, each checked against SAMPLING_LIMITS by name."""
    given = dict(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens,
                 num_samples=num_samples, seed=seed)
    return Sampling(**{k: check_number(v, k, *SAMPLING_LIMITS[k]) for k, v in given.items()})


def check_text(text, name: str = "text") -> str:
    """A non-empty string of at most MAX_TEXT_CHARS characters that UTF-8 can encode."""
    if text is None:
        raise ValueError(f"{name} is empty: type a sentence")
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{name} is empty: type a sentence")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"{name} has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,} "
                         "(shorten it: nothing is cut silently)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{name} has an invalid character U+{ord(text[e.start]):04X} at position {e.start} "
                         "(a lone surrogate, not a real character); retype or paste it as plain text") from None
    return text


def check_lines(text: str, name: str = "the review set") -> list[str]:
    """Non-empty lines of `text`, each a valid input text; at most MAX_REVIEW_LINES of them."""
    if not isinstance(text, str):
        raise ValueError(f"{name} must be text, got {type(text).__name__}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{name} has no non-empty line")
    if len(lines) > MAX_REVIEW_LINES:
        raise ValueError(f"{name} has {len(lines):,} lines; the limit is {MAX_REVIEW_LINES}")
    return [check_text(line, f"{name}, line {i + 1}") for i, line in enumerate(lines)]


# ----------------------------------------------------------------------------- vectors

def to_rows(values, source: str = "the vector") -> np.ndarray:
    """[N, 768] float32 unit rows from a vector [768] or rows [N, 768], 1 <= N <= MAX_ROWS.

    Real numbers only; the scale of a row does not matter (it is a direction), but a row of
    zeros, NaN or inf is refused, naming the row.
    """
    if values is None:
        raise ValueError(f"{source} is empty: expected {EMBED_DIM} numbers per row")
    try:
        arr = np.asarray(values)
    except ValueError:
        raise ValueError(f"{source} has rows of different lengths; every row needs {EMBED_DIM} numbers") from None
    if np.iscomplexobj(arr):
        raise ValueError(f"{source} holds complex numbers; an embedding is {EMBED_DIM} real numbers")
    if arr.dtype == object:  # e.g. a JSON integer beyond int64, or a null among the numbers
        arr = _object_numbers(arr, source)
    if arr.dtype.kind == "b":
        raise ValueError(f"{source} holds true/false values, not numbers; expected {EMBED_DIM} real numbers per row")
    if arr.dtype.kind in "US":
        raise ValueError(f"{source} holds text ({str(arr.flat[0])[:30]!r}...), not numbers; "
                         f"expected {EMBED_DIM} real numbers per row")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{source} holds {arr.dtype} values, not numbers; expected {EMBED_DIM} real numbers per row")
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise ValueError(f"{source} has shape {arr.shape}; expected [{EMBED_DIM}] or [rows, {EMBED_DIM}]")
    if arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(f"{source} is empty (shape {arr.shape}); expected {EMBED_DIM} numbers per row")
    if arr.shape[1] != EMBED_DIM:
        raise ValueError(f"{source} has {arr.shape[1]} numbers per row; expected {EMBED_DIM} (all-mpnet-base-v2)")
    if arr.shape[0] > MAX_ROWS:
        raise ValueError(f"{source} has {arr.shape[0]} rows; at most {MAX_ROWS} are decoded in one request")
    try:
        return validate_embeddings(arr).numpy()
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def _object_numbers(arr: np.ndarray, source: str) -> np.ndarray:
    """A float64 copy of an object array whose items are all Python ints or floats, or ValueError
    naming the first item that is not a number or is too large for a float."""
    for i, x in enumerate(arr.flat):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ValueError(f"{source} holds {str(x)[:30]!r} ({type(x).__name__}) at position {i}; "
                             f"expected {EMBED_DIM} real numbers per row")
        try:
            float(x)
        except OverflowError:
            raise ValueError(f"{source} holds a whole number of {len(str(abs(x)))} digits at position {i}; "
                             "numbers must stay below about 1.8e308 (float64)") from None
    return arr.astype(np.float64)


def _numbers(line: str) -> list[float]:
    tokens = line.replace(",", " ").replace(";", " ").replace("[", " ").replace("]", " ").split()
    out = []
    for t in tokens:
        try:
            out.append(float(t))
        except ValueError:
            raise ValueError(f"{t[:30]!r} is not a number; separate numbers with commas or spaces") from None
    return out


def parse_pasted(text: str, source: str = "the pasted vector") -> np.ndarray:
    """Unit rows [N, 768] from pasted numbers: one vector (comma, space or newline separated, or a
    JSON list) or several, one per line (or a JSON list of lists)."""
    if text is None or not str(text).strip():
        raise ValueError(f"{source} is empty: paste {EMBED_DIM} numbers separated by commas or spaces")
    if len(text) > MAX_PASTED_CHARS:
        raise ValueError(f"{source} has {len(text):,} characters; the limit is {MAX_PASTED_CHARS:,} "
                         f"(about {MAX_ROWS} vectors; upload a .npy file up to {MAX_UPLOAD_BYTES // 2**20} MB instead)")
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            return _from_json(json.loads(stripped), source)
        except json.JSONDecodeError:
            pass  # e.g. "[0.1 0.2 ...]": numbers in brackets without commas, read below
    lines = [ln for ln in stripped.splitlines() if ln.strip()]
    try:
        rows = [_numbers(ln) for ln in lines]
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    if all(len(r) <= 1 for r in rows) or len(rows) == 1:  # one vector, one number per line or all on one line
        rows = [[x for r in rows for x in r]]
    lengths = sorted({len(r) for r in rows})
    if len(lengths) > 1:
        raise ValueError(f"{source} has lines of {', '.join(map(str, lengths))} numbers; "
                         f"each line (one vector) needs {EMBED_DIM}")
    return to_rows(np.asarray(rows, dtype=np.float64), source)


def _from_json(obj, source: str) -> np.ndarray:
    if not isinstance(obj, list):
        raise ValueError(f"{source} holds a JSON {type(obj).__name__}; expected a list of {EMBED_DIM} numbers "
                         "or a list of such lists")
    rows = obj if obj and all(isinstance(r, list) for r in obj) else [obj]
    for row in rows:
        for x in row:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise ValueError(f"{source} holds {str(x)[:30]!r} ({type(x).__name__}); expected numbers only")
    return to_rows(obj, source)


def read_vector_file(path, name: str | None = None) -> np.ndarray:
    """Unit rows [N, 768] from a .npy, .json, .txt or .csv file of at most MAX_UPLOAD_BYTES."""
    path = Path(path)
    source = name or path.name
    if path.suffix.lower() not in VECTOR_SUFFIXES:
        raise ValueError(f"{source}: unsupported file type {path.suffix or '(none)'}; use {', '.join(VECTOR_SUFFIXES)}")
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise ValueError(f"{source} could not be read: {e.strerror}") from None
    if size > MAX_UPLOAD_BYTES:
        raise ValueError(f"{source} is {size / 2**20:.1f} MB; the upload limit is {MAX_UPLOAD_BYTES // 2**20} MB")
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{source} is not UTF-8 text; save it as plain text or .npy") from None
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{source} could not be read ({e}); a .npy file must be written by numpy.save") from None
    if path.suffix.lower() == ".npy":
        return to_rows(arr, source)
    if path.suffix.lower() == ".json":
        try:
            return _from_json(json.loads(text), source)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source} is not valid JSON ({e.msg} at line {e.lineno})") from None
    return parse_pasted(text, source)


# ----------------------------------------------------------------------------- new points

def _unit(v: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"{what} has no direction (length {n:.2g}); it cannot be decoded")
    return v / n


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """The point a fraction `t` of the way from a to b along the great circle (unit inputs and output).

    Equal directions give a; opposite directions have no unique great circle and raise.
    """
    t = check_number(t, "alpha", 0.0, 1.0)
    a, b = _unit(a, "A"), _unit(b, "B")
    dot = float(np.clip(a @ b, -1.0, 1.0))
    omega = math.acos(dot)
    if math.sin(omega) < 1e-6:
        if dot > 0:
            return a.astype(np.float32)
        raise ValueError("A and B point in opposite directions: no unique path between them")
    v = (math.sin((1 - t) * omega) * a + math.sin(t * omega) * b) / math.sin(omega)
    return _unit(v, "the interpolated point").astype(np.float32)


def slerp_path(a: np.ndarray, b: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas [steps], unit points [steps, 768]) evenly spaced in angle from a to b."""
    steps = check_number(steps, "steps", 2, MAX_STEPS, whole=True)
    alphas = np.linspace(0.0, 1.0, steps)
    return alphas, np.stack([slerp(a, b, t) for t in alphas])


def arithmetic(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """normalise(a - b + c), the analogy point ("king - man + woman"), as a unit float32 vector."""
    a, b, c = (_unit(v, n) for v, n in ((a, "A"), (b, "B"), (c, "C")))
    return _unit(a - b + c, "A - B + C").astype(np.float32)


def add_noise(e: np.ndarray, size: float, seed: int = 0) -> tuple[np.ndarray, float]:
    """(normalise(e + size * u), its cosine with e) for a random unit direction u drawn with `seed`.

    `size` is the noise length relative to the unit embedding: 0 keeps e, 1 adds a vector as long
    as e (cosine about 0.71), MAX_NOISE at most.
    """
    size = check_number(size, "noise size", 0.0, MAX_NOISE)
    seed = check_number(seed, "seed", *SAMPLING_LIMITS["seed"][:2], whole=True)
    e = _unit(e, "the embedding")
    u = np.random.default_rng(seed).standard_normal(e.shape[-1])
    v = _unit(e + size * u / np.linalg.norm(u), "the noisy embedding")
    return v.astype(np.float32), float(v @ e)
