"""RET byte-level decoder: tiny configs, CPU only (plus the shipped checkpoint where named)."""
import json

import pytest
import torch

from decoders.base import Sampling
from decoders.generative import generate, load_model, save_model
from decoders.ret import (ASSET_DIR, RET, ByteTokenizer, RETConfig, RETDecoder, bytes_to_text,
                          create_ultra_compact_decoder, prune_magnitude, quantize_int8)

TINY = dict(d_model=32, n_heads=2, ffn_hidden=32, n_loops=3, n_prefix=2, bridge_hidden=16, max_len=32)


def tiny(**kw):
    torch.manual_seed(0)
    return RET(RETConfig(**{**TINY, **kw})).eval()


def test_parameter_budget():
    assert create_ultra_compact_decoder().num_parameters() <= 800_000
    cfg = RETConfig(**json.loads((ASSET_DIR / "config.json").read_text()))
    assert RET(cfg).num_parameters() <= 800_000


def test_one_block_shared_across_loops():
    m = tiny()
    assert len(m.blocks) == 1
    layers = m.layers()
    assert len(layers) == m.cfg.n_loops and all(b is m.blocks[0] for b in layers)
    # parameter count does not grow with the number of loops
    assert tiny(n_loops=6).num_parameters() == m.num_parameters()
    # and each application is really used: the output changes with n_loops
    x, e = torch.randint(3, 259, (1, 5)), torch.randn(1, 768)
    m6 = tiny(n_loops=6)
    m6.load_state_dict(m.state_dict())
    assert not torch.allclose(m(x, emb=e), m6(x, emb=e))


def test_more_than_one_block_is_refused():
    with pytest.raises(ValueError, match="n_layers must be 1"):
        RETConfig(n_layers=2)


def test_tied_embeddings():
    m = tiny()
    assert m.lm_head.weight is m.tok_emb.weight


@pytest.mark.parametrize("text", ["plain ascii", "naïve café", "日本語のテキスト", "emoji 🧪🚀 mix", "Ωμέγα ✓", ""])
def test_byte_round_trip_of_unicode(text):
    tok = ByteTokenizer()
    ids = tok.encode([text])[0]
    assert all(3 <= i < 259 for i in ids)
    assert tok.decode(ids) == text


def test_text_cut_mid_character_is_repaired():
    b = "café 🧪".encode()
    for cut in range(len(b) + 1):
        s = bytes_to_text(b[:cut])
        s.encode("utf-8")  # valid UTF-8
        assert "\ufffd" not in s
        assert "café 🧪".startswith(s)


def test_kv_cache_equals_full_recompute():
    m = tiny()
    emb, toks = torch.randn(2, 768), torch.randint(3, 259, (2, 9))
    full = m(toks, emb=emb)
    cache = m.new_cache()
    parts = [m(toks[:, :4], emb=emb, cache=cache)] + [m(toks[:, i:i + 1], cache=cache) for i in range(4, 9)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-4)


def test_byte_budget_follows_max_new_tokens():
    m = tiny(bytes_per_token=2)
    m.cfg.eos_id = -1  # never stop early
    out = RETDecoder(m).decode(torch.randn(1, 768), Sampling(max_new_tokens=5))
    seqs, _ = generate(m, torch.randn(1, 768), Sampling(max_new_tokens=5), 1, -1, max_new_tokens=10)
    assert len(seqs[0]) == 10
    assert isinstance(out[0][0].text, str)


def test_save_load_round_trip(tmp_path):
    m = tiny()
    save_model(m, tmp_path)
    m2 = load_model(tmp_path, RET, RETConfig)
    x, e = torch.randint(3, 259, (2, 6)), torch.randn(2, 768)
    torch.testing.assert_close(m(x, emb=e), m2(x, emb=e))


def test_int8_variant_quantises_linears_and_decodes():
    m = tiny()
    q = quantize_int8(m)
    assert "quantized" in type(q.blocks[0].attn.qkv).__module__
    out = RETDecoder(q, n_params=m.num_parameters()).decode(torch.randn(2, 768), Sampling(max_new_tokens=4))
    assert len(out) == 2 and all(isinstance(o[0].text, str) for o in out)


def test_pruning_zeroes_the_requested_share():
    m = tiny()
    p = prune_magnitude(m, 0.5)
    w = p.blocks[0].ffn.up_proj.weight
    assert abs((w == 0).float().mean().item() - 0.5) < 0.02
    assert not (m.blocks[0].ffn.up_proj.weight == 0).any()  # the original is untouched


def test_shipped_checkpoints_decode():
    from decoders import get_decoder
    from decoders.encoder import encode

    e = encode(["the river flooded the valley after the storm"])
    for name in ("ret", "ret-int8"):
        out = get_decoder(name).decode(e, Sampling())
        assert out[0][0].text.strip()
        out[0][0].text.encode("utf-8")
