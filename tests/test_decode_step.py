"""The fast decode paths (static KV cache; `block_step` in torch, the compiled `_cpu_step` for a few rows
on the CPU) against the module path: tiny configs, CPU only."""
import pytest
import torch

from decoders.base import Sampling
from decoders.generative import Config, GenerativeDecoderModel
from decoders.ret import RET, RETConfig
from decoders import transformer
from decoders.transformer import GATES, Block, KVCache, block_weights, cpu_step_weights, generate

GEN = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, ffn_hidden=48, n_prefix=2, bridge_hidden=16, max_len=24)
BYTES = dict(d_model=32, n_heads=2, ffn_hidden=32, n_loops=3, n_prefix=2, bridge_hidden=16, max_len=24)


def gen_model(**kw):
    torch.manual_seed(0)
    return GenerativeDecoderModel(Config(**{**GEN, **kw})).eval()


def ret_model(**kw):
    torch.manual_seed(0)
    return RET(RETConfig(**{**BYTES, **kw})).eval()


def greedy_by_recompute(m, emb, steps):
    """Reference: the whole sequence through `forward`, no cache, at every step."""
    toks = torch.full((emb.shape[0], 1), m.cfg.bos_id)
    for _ in range(steps):
        nxt = m(toks, emb=emb)[:, -1].argmax(-1, keepdim=True)
        toks = torch.cat([toks, nxt], dim=1)
    return toks[:, 1:].tolist()


MODELS = [("generative " + g, lambda g=g: gen_model(gate=g, bridge_per_layer=True)) for g in GATES]
MODELS += [("generative no signals", lambda: gen_model()), ("ret", lambda: ret_model())]


@pytest.fixture(params=["cpu_step", "torch"])
def step_path(request, monkeypatch):
    """Run a test through the compiled CPU step (batches of up to 4 rows) and through the torch step."""
    monkeypatch.setattr(transformer, "CPU_STEP_MAX_ROWS", 4 if request.param == "cpu_step" else 0)
    return request.param


@pytest.mark.parametrize("name, make", MODELS, ids=[n for n, _ in MODELS])
def test_static_cache_step_gives_the_tokens_of_full_recompute(name, make, step_path):
    m = make()
    m.cfg.eos_id = -1  # never stop early: both run every step
    emb = torch.randn(3, 768)
    assert m.decode_step() is not None  # the fast path is the one under test
    steps = m.cfg.max_len - 1
    seqs, _ = generate(m, emb, Sampling(max_new_tokens=steps), m.cfg.bos_id, m.cfg.eos_id)
    assert seqs == greedy_by_recompute(m, emb, steps)


@pytest.mark.parametrize("name, make", MODELS, ids=[n for n, _ in MODELS])
def test_step_logits_equal_forward_logits(name, make, step_path):
    m = make()
    emb, toks = torch.randn(2, 768), torch.randint(3, 60, (2, 7))
    full = m(toks, emb=emb)
    with torch.inference_mode():
        cache, step = m.new_cache(), m.decode_step()
        parts = [m(toks[:, :1], emb=emb, cache=cache)[:, 0]] + [step(toks[:, i], cache) for i in range(1, 7)]
    torch.testing.assert_close(torch.stack(parts, 1), full, atol=1e-5, rtol=1e-4)


def test_cpu_step_runs_every_gate_and_float32_only():
    for gate in GATES:
        m = gen_model(gate=gate)
        assert cpu_step_weights(list(m.blocks), m.norm, m.lm_head) is not None, gate
    m = gen_model().to(torch.float64)
    assert cpu_step_weights(list(m.blocks), m.norm, m.lm_head) is None


def test_cpu_step_stores_a_shared_block_once():
    m = ret_model()
    qkv, *_, slot_block, _, _, _ = cpu_step_weights([m.block] * m.cfg.n_loops, m.norm, m.lm_head)
    assert qkv.shape[0] == 1 and slot_block.tolist() == [0] * m.cfg.n_loops


def test_sampled_generation_matches_the_module_path(step_path):
    """Same seed, same samples, whether the steps go through `block_step` or through `forward`."""
    m = gen_model()
    emb = torch.randn(2, 768)
    s = Sampling(temperature=1.2, top_k=20, top_p=0.9, max_new_tokens=15, num_samples=3, seed=5)
    fast = generate(m, emb, s, 1, 2)
    m.decode_step = lambda: None  # the module path
    slow = generate(m, emb, s, 1, 2)
    assert fast[0] == slow[0]
    torch.testing.assert_close(torch.tensor(fast[1]), torch.tensor(slow[1]), atol=1e-5, rtol=1e-5)


def test_unknown_block_keeps_the_module_path():
    class Conditioned(Block):  # e.g. a block with other parts: block_step does not know it
        pass

    m = ret_model()
    assert block_weights(m.block) is not None
    m.block.__class__ = Conditioned
    assert block_weights(m.block) is None and m.decode_step() is None
    seqs, _ = generate(m, torch.randn(1, 768), Sampling(max_new_tokens=5), 1, -1)
    assert len(seqs[0]) == 5
    m.train()
    m.block.__class__ = Block
    assert m.decode_step() is None  # training mode: dropout, no fast path


def test_prepared_weights_follow_in_place_updates():
    m = ret_model()
    emb = torch.randn(2, 768)
    before = generate(m, emb, Sampling(max_new_tokens=8), 1, -1)[0]
    with torch.no_grad():
        m.block.ffn.down_proj.weight.mul_(-3.0)  # what an optimizer step does: in place
    after = generate(m, emb, Sampling(max_new_tokens=8), 1, -1)[0]
    assert after == greedy_by_recompute(m, emb, 8) and after != before


def test_cache_is_allocated_once_and_written_in_place():
    m = ret_model()
    with torch.inference_mode():
        cache, step = m.new_cache(), m.decode_step()
        m(torch.ones(2, 1, dtype=torch.long), emb=torch.randn(2, 768), cache=cache)
        k, ptr = cache.k, cache.k.data_ptr()
        assert k.shape == (m.cfg.n_loops, 2, m.cfg.n_heads, m.cfg.n_prefix + m.cfg.max_len, 16)
        for t in range(5):
            step(torch.full((2,), 7 + t), cache)
        assert cache.k is k and cache.k.data_ptr() == ptr and cache.pos == m.cfg.n_prefix + 1 + 5


def test_cache_refuses_positions_past_its_length_and_grows_without_one():
    k = torch.randn(1, 2, 3, 4)
    cache = KVCache(1, max_len=4)
    cache.update(0, k, k)
    cache.pos = 3
    with pytest.raises(ValueError, match="holds 4 positions, 6 were asked for"):
        cache.update(0, k, k)
    grow = KVCache(2)
    a, _ = grow.update(0, k, k)
    grow.pos = 3
    for i in range(2):
        grow.update(i, k + 1, k + 1)
    grow.pos, n = 6, grow.k.shape[3]
    b, _ = grow.update(0, torch.randn(1, 2, n, 4), torch.randn(1, 2, n, 4))  # past the first allocation
    torch.testing.assert_close(b[:, :, :3], k)
    torch.testing.assert_close(b[:, :, 3:6], k + 1)
