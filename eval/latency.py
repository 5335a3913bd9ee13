"""Wall-clock latency and peak memory of a decoder (and of the encoder), measured as a benchmark.

- `warmup` untimed calls, then `runs` timed calls; p50 and p95 in milliseconds.
- Timed run i uses input row i (cycling), so the percentiles cover different inputs and
  thus different output lengths, not one sentence timed over and over.
- "one" = one embedding (or sentence) per call; "batch32" = 32 per call; throughput =
  32 / the batch's p50, embeddings (or sentences) per second.
- CUDA: torch.cuda.synchronize() before starting and before stopping the clock.
- CPU: the thread count is set once with torch.set_num_threads and recorded.
- Peak memory: the process's peak resident set size (RSS) (VmHWM) since `reset_peak_memory()`, which resets
  it through /proc/self/clear_refs on Linux; where that is unavailable it is the
  lifetime peak (getrusage ru_maxrss), and `rss_peak_is_reset()` says which. The process
  also holds Python, torch and the metric models, so this is an upper bound on the
  decoder's own footprint. On CUDA also torch.cuda.max_memory_allocated.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from decoders.encoder import encode

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; valid devices: cpu, cuda, auto")
    return device


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op CPU threads (None: keep torch's default) and return the count in use."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


MIN_RUNS, MAX_SECONDS = 3, 60.0   # a slow setting (the hybrid on 32 embeddings) stops early


def time_calls(fn, runs: int, warmup: int, device: str, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Milliseconds of `fn(i)` for i in range(runs), after `warmup` untimed calls fn(0..warmup-1).
    Stops after `max_seconds` of timed calls once MIN_RUNS are done (fewer runs, never a partial one)."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    for i in range(warmup):
        fn(i)
    _sync(device)
    ms = []
    for i in range(runs):
        _sync(device)
        t0 = time.perf_counter()
        fn(i)
        _sync(device)
        ms.append((time.perf_counter() - t0) * 1000.0)
        if len(ms) >= MIN_RUNS and sum(ms) > max_seconds * 1000.0:
            break
    return np.array(ms)


def p50_p95(ms: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def _rows(n_total: int, i: int, size: int) -> np.ndarray:
    return (np.arange(size) + i * size) % n_total


def decoder_latency(decoder, embeddings: np.ndarray, sampling, runs: int, warmup: int, device: str,
                    batch: int = 32) -> dict:
    """p50/p95 ms of `decoder.decode` on one embedding and on a batch of `batch`, cycling through `embeddings`."""
    emb = np.asarray(embeddings, dtype=np.float32)
    one = time_calls(lambda i: decoder.decode(emb[_rows(len(emb), i, 1)], sampling), runs, warmup, device)
    many = time_calls(lambda i: decoder.decode(emb[_rows(len(emb), i, batch)], sampling), runs, warmup, device)
    return _summary(one, many, batch)


def _summary(one: np.ndarray, many: np.ndarray, batch: int) -> dict:
    (p50, p95), (b50, b95) = p50_p95(one), p50_p95(many)
    return {"p50_ms": p50, "p95_ms": p95, f"p50_batch{batch}_ms": b50, f"p95_batch{batch}_ms": b95,
            f"batch{batch}_per_s": batch / (b50 / 1000.0)}


def encoder_latency(texts: list[str], runs: int, warmup: int, device: str, batch: int = 32) -> dict:
    """p50/p95 ms of `decoders.encoder.encode` (all-mpnet-base-v2) on one sentence and on `batch` sentences."""
    one = time_calls(lambda i: encode([texts[j] for j in _rows(len(texts), i, 1)], device=device),
                     runs, warmup, device)
    many = time_calls(lambda i: encode([texts[j] for j in _rows(len(texts), i, batch)], batch_size=batch,
                                       device=device), runs, warmup, device)
    return _summary(one, many, batch)


def rss_peak_is_reset() -> bool:
    return sys.platform.startswith("linux") and _CLEAR_REFS.exists() and _STATUS.exists()


def reset_peak_memory(device: str) -> None:
    """Start a new peak: process RSS high-water mark (Linux) and, on CUDA, torch's allocator peak."""
    if rss_peak_is_reset():
        _CLEAR_REFS.write_text("5")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _status_kb(key: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not found in {_STATUS}")


def rss_mb() -> float:
    """Current resident set size of this process, MiB (/proc on Linux, psutil elsewhere)."""
    if _STATUS.exists():
        return _status_kb("VmRSS") / 1024
    import psutil  # only off Linux (no /proc): not imported where it is not needed

    return psutil.Process().memory_info().rss / 2**20


def peak_memory(device: str) -> dict:
    """Peak RSS (MiB) since `reset_peak_memory` (or process lifetime) and, on CUDA, peak allocated MiB."""
    if rss_peak_is_reset():
        peak = _status_kb("VmHWM") / 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform.startswith("linux") else 2**20)
    out = {"peak_rss_mb": peak}
    if device == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out
