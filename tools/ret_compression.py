"""RET compression study: fp32 vs dynamic int8 vs magnitude pruning (size on disk, CPU latency,
dev quality with the trainer's evaluation), printed as a markdown table for assets/ret/MODEL_CARD.md.

    python -m tools.ret_compression [--n 256] [--runs 30] [--threads 2]
    python -m tools.ret_compression --kernels [--threads 1]   # one matrix product per int8 kernel

--kernels times one product of RET's shapes for one row (a decode step's size), fp32 against
the int8 kernels this torch build has: dynamic int8 (fbgemm, onednn, x86 engines) and
int8 weights with fp32 or bf16 activations (`torch._weight_int8pack_mm`), in microseconds of
CPU time, best of 7.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from decoders.base import Sampling
from decoders.encoder import is_available as encoder_available
from decoders.ret import ASSET_DIR, RET, RETDecoder, load_model
from eval.latency import decoder_latency
from training.data import load_dev
from training.trainer import evaluate


def quantize_int8(model: RET) -> nn.Module:
    """Dynamic int8 quantisation of the linear layers (weights int8, activations quantised on the fly).
    lm_head is an nn.Linear too: it gets its own int8 copy of the (tied) embedding table. The
    quantised linears are not plain nn.Linear, so generation takes the module path (no `block_step`)."""
    from torch.ao.quantization import quantize_dynamic  # deprecated in torch; only this study uses it

    return quantize_dynamic(model.to("cpu").eval(), {nn.Linear}, dtype=torch.qint8)


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


def _cpu_us(fn, n: int = 2000) -> float:
    """Best of 7 runs of n calls, microseconds of process CPU time per call."""
    for _ in range(100):
        fn()
    best = float("inf")
    for _ in range(7):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n * 1e6)
    return best


def int8_kernel_report(shapes=((256, 768), (256, 512), (256, 256), (256, 259))) -> list[dict]:
    """Microseconds per product of one row [1, in] with a weight [out, in], fp32 and each int8 kernel.
    RET's step: per loop qkv 256x768, gate+up 256x512, out and down 256x256; the head 256x259."""
    gen = torch.Generator().manual_seed(0)
    rows = []
    for fan_in, fan_out in shapes:
        w = torch.randn(fan_out, fan_in, generator=gen) * 0.05
        x, w_t = torch.randn(1, fan_in, generator=gen), w.t().contiguous()
        row = {"shape": f"{fan_in}x{fan_out}", "fp32 mm": _cpu_us(lambda: torch.mm(x, w_t))}
        engine = torch.backends.quantized.engine
        for name in ("fbgemm", "onednn", "x86"):
            if name not in torch.backends.quantized.supported_engines:
                continue
            torch.backends.quantized.engine = name
            lin = nn.Linear(fan_in, fan_out, bias=False)
            lin.weight.data = w
            q = quantize_int8(nn.Sequential(lin))[0]
            row[f"dynamic int8 ({name})"] = _cpu_us(lambda: q(x))
        torch.backends.quantized.engine = engine
        scale = w.abs().amax(1) / 127
        w8 = (w / scale[:, None]).round().to(torch.int8)
        x16, scale16 = x.bfloat16(), scale.bfloat16()
        row["int8 weights, fp32 x"] = _cpu_us(lambda: torch._weight_int8pack_mm(x, w8, scale))
        row["int8 weights, bf16 x"] = _cpu_us(lambda: torch._weight_int8pack_mm(x16, w8, scale16))
        rows.append(row)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.ret_compression", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256, help="first N dev sentences")
    p.add_argument("--runs", type=int, default=30, help="timed decodes per variant")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--kernels", action="store_true", help="time one matrix product per int8 kernel instead")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.kernels:
        rows = int8_kernel_report()
        print(f"One row times a weight matrix, us of CPU time (best of 7), {torch.get_num_threads()} thread(s)")
        print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
        for r in rows:
            print("| " + " | ".join(v if isinstance(v, str) else f"{v:.1f}" for v in r.values()) + " |")
        return
    rows = compression_report(n=a.n, runs=a.runs)
    print(f"RET compression, {torch.get_num_threads()} CPU threads, first {a.n} dev sentences, greedy, up to 96 bytes")
    print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
    for r in rows:
        print("| " + " | ".join(str(v) for v in r.values()) + " |")


if __name__ == "__main__":
    main()
