"""RET compression study: fp32 vs dynamic int8 vs magnitude pruning (size on disk, CPU latency,
dev quality with the trainer's evaluation), printed as a markdown table for assets/ret/MODEL_CARD.md.

    python -m tools.ret_compression [--n 256] [--runs 30] [--threads 2]
"""
from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from decoders.base import Sampling
from decoders.encoder import is_available as encoder_available
from decoders.ret import ASSET_DIR, RET, RETDecoder, load_model, quantize_int8
from eval.latency import decoder_latency
from training.data import load_dev
from training.trainer import evaluate


def prune_magnitude(model: RET, sparsity: float) -> RET:
    """A copy with the smallest-magnitude `sparsity` share of each block linear weight set to zero
    (the tied embedding table is left dense)."""
    model = copy.deepcopy(model)
    for module in model.block.modules():
        if isinstance(module, nn.Linear):
            w = module.weight.data
            k = int(sparsity * w.numel())
            if k:
                threshold = w.abs().flatten().kthvalue(k).values
                w[w.abs() <= threshold] = 0.0
    return model


def state_dict_mb(model: nn.Module) -> float:
    """Size of `torch.save(model.state_dict())`, MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pt"
        torch.save(model.state_dict(), path)
        return path.stat().st_size / 2**20


def compression_report(directory: Path = ASSET_DIR, n: int = 256, runs: int = 30) -> list[dict]:
    """One row per variant: size, p50/p95 ms of one embedding (greedy, 96 bytes), dev BLEU/cos/loss."""
    texts, emb = load_dev(n)
    base, tok = load_model(directory)
    variants = {"fp32": base, "int8 (dynamic)": quantize_int8(load_model(directory)[0]),
                "pruned 30%": prune_magnitude(base, 0.3), "pruned 60%": prune_magnitude(base, 0.6)}
    rows = []
    for name, model in variants.items():
        # evaluate() runs the int8 model through the same code path as the float ones
        m = evaluate(model, tok, texts, emb, torch.device("cpu"), with_cosine=encoder_available())
        lat = decoder_latency(RETDecoder(model, n_params=base.num_parameters()), emb.numpy(),
                              Sampling(max_new_tokens=32), runs=runs, warmup=3, device="cpu")
        rows.append({"variant": name, "size_mb": round(state_dict_mb(model), 2), "p50_ms": round(lat["p50_ms"], 1),
                     "p95_ms": round(lat["p95_ms"], 1), "dev_bleu": round(m["dev_bleu"], 2),
                     "dev_cos": round(m.get("dev_cos", float("nan")), 4), "dev_loss": round(m["dev_loss"], 4)})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.ret_compression", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256, help="first N dev sentences")
    p.add_argument("--runs", type=int, default=30, help="timed decodes per variant")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = compression_report(n=a.n, runs=a.runs)
    print(f"RET compression, {torch.get_num_threads()} CPU threads, first {a.n} dev sentences, greedy, up to 96 bytes")
    print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
    for r in rows:
        print("| " + " | ".join(str(v) for v in r.values()) + " |")


if __name__ == "__main__":
    main()
