"""Conditioning options of the token decoders (prefix / adaLN-Zero / both) and beam search:
tiny configs, CPU only."""
import itertools
import json

import pytest
import torch

from decoders import checkpoint
from decoders.base import Sampling
from decoders.generative import KIND, Config, GenerativeDecoderModel, load_model
from decoders.ret import RET, RETConfig
from decoders.transformer import CONDITIONINGS, Block, beam_search, generate

TINY = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, ffn_hidden=48, bridge_hidden=16, max_len=24)
TINY_RET = dict(d_model=32, n_heads=2, ffn_hidden=32, n_loops=3, bridge_hidden=16, max_len=32)
PREFIX = {"prefix": 2, "adaln": 0, "adaln+prefix": 2}


def gen(conditioning="prefix", perturb=True, **kw):
    """A tiny generative model; `perturb` moves the zero-initialised modulations off zero, as training would."""
    torch.manual_seed(0)
    m = GenerativeDecoderModel(Config(**{**TINY, "n_prefix": PREFIX[conditioning], "conditioning": conditioning,
                                         **kw})).eval()
    return _perturb(m) if perturb else m


def ret(conditioning="prefix", perturb=True):
    torch.manual_seed(0)
    m = RET(RETConfig(**TINY_RET, n_prefix=PREFIX[conditioning], conditioning=conditioning)).eval()
    return _perturb(m) if perturb else m


def _perturb(m):
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "modulation" in name:
                p.normal_(0, 0.2)
    return m


def scrambled(m):
    """Weights drawn large, so that a random model's next token depends on the whole history (a freshly
    initialised model with tied embeddings mostly repeats its last input token)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.5)
    return m


def test_config_refuses_an_unknown_conditioning_and_a_prefix_that_does_not_fit():
    with pytest.raises(ValueError, match="unknown conditioning 'film'"):
        Config(conditioning="film")
    with pytest.raises(ValueError, match="set n_prefix=0"):
        Config(conditioning="adaln", n_prefix=4)
    with pytest.raises(ValueError, match="needs n_prefix >= 1"):
        RETConfig(conditioning="adaln+prefix", n_prefix=0)


def test_prefix_is_the_default_and_shipped_configs_read_as_prefix():
    assert Config().conditioning == RETConfig().conditioning == "prefix"
    assert gen("prefix").blocks[0].modulation is None


def test_adaln_zero_blocks_start_as_the_identity():
    torch.manual_seed(0)
    block = Block(32, 2, 48, adaln_dim=16)
    block.apply(__import__("decoders.transformer", fromlist=["init_weights"]).init_weights)
    x, cond = torch.randn(2, 5, 32), torch.randn(2, 16)
    from decoders.transformer import precompute_rope
    cos, sin = precompute_rope(16, 5)
    assert torch.equal(block(x, cos, sin, cond=cond), x)
    assert (block.modulation.proj.weight == 0).all()  # zero-initialised by the model's init_weights too
    assert all((b.modulation.proj.weight == 0).all() for b in gen("adaln", perturb=False).blocks)
    with pytest.raises(ValueError, match="pass its conditioning vector"):
        block(x, cos, sin)


def test_adaln_zero_model_ignores_the_embedding_until_its_modulation_moves():
    toks = torch.randint(3, 64, (2, 6))
    e1, e2 = torch.randn(2, 768), torch.randn(2, 768)
    m = gen("adaln", perturb=False)
    torch.testing.assert_close(m(toks, emb=e1), m(toks, emb=e2))
    m = _perturb(m)
    assert not torch.allclose(m(toks, emb=e1), m(toks, emb=e2))


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("make", [gen, ret], ids=["generative", "ret"])
def test_kv_cache_equals_full_recompute_for_every_conditioning(make, conditioning):
    m = scrambled(make(conditioning))
    V = m.cfg.vocab_size
    emb, toks = torch.randn(2, 768), torch.randint(3, V, (2, 9))
    full = m(toks, emb=emb)
    cache = m.new_cache()
    parts = [m(toks[:, :3], emb=emb, cache=cache), m(toks[:, 3:7], cache=cache)]
    parts += [m(toks[:, i:i + 1], cache=cache) for i in range(7, 9)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_future_tokens_cannot_change_earlier_logits(conditioning):
    m = gen(conditioning, bridge_per_layer=True)
    emb, a = torch.randn(2, 768), torch.randint(3, 64, (2, 10))
    b = a.clone()
    b[:, 6:] = torch.randint(3, 64, (2, 4))
    torch.testing.assert_close(m(a, emb=emb)[:, :6], m(b, emb=emb)[:, :6])


def test_adaln_model_without_an_embedding_on_its_first_call_is_refused():
    with pytest.raises(ValueError, match="needs `emb` on its first call"):
        gen("adaln")(torch.randint(3, 64, (1, 3)))


@pytest.mark.parametrize("conditioning", ["adaln", "adaln+prefix"])
def test_adaln_checkpoint_round_trip(tmp_path, conditioning):
    from decoders.generative import BPETokenizer, train_tokenizer
    tok = BPETokenizer(train_tokenizer(["the cat sat on the mat", "a dog barked"] * 5, 64))
    m = gen(conditioning, vocab_size=tok.vocab_size)
    checkpoint.save(tmp_path, m, tok, KIND)
    assert json.loads((tmp_path / "config.json").read_text())["conditioning"] == conditioning
    m2, _ = load_model(tmp_path)
    x, e = torch.randint(3, tok.vocab_size, (2, 5)), torch.randn(2, 768)
    torch.testing.assert_close(m(x, emb=e), m2(x, emb=e))


def test_adaln_costs_a_modulation_per_block_and_drops_the_prefix_projection():
    p, a, ap = gen("prefix"), gen("adaln"), gen("adaln+prefix")
    per_block = TINY["bridge_hidden"] * 6 * TINY["d_model"] + 6 * TINY["d_model"]
    prefix_proj = TINY["bridge_hidden"] * 2 * TINY["d_model"] + 2 * TINY["d_model"]
    assert ap.num_parameters() - p.num_parameters() == TINY["n_layers"] * per_block
    assert ap.num_parameters() - a.num_parameters() == prefix_proj
    assert ret("adaln").num_parameters() - ret("prefix").num_parameters() == per_block - prefix_proj  # one shared block


# --------------------------------------------------------------------------- beam search

def _greedy_with_eos_that_occurs(m, emb):
    """An <eos> id that greedy decoding of row 0 emits at step 3, so sequences really end early."""
    m.cfg.eos_id = -1
    seqs, _ = generate(m, emb, Sampling(max_new_tokens=12), m.cfg.bos_id, -1)
    return seqs[0][3]


@pytest.mark.parametrize("make", [lambda: gen("prefix", bridge_per_layer=True), lambda: gen("adaln"),
                                  lambda: ret("adaln+prefix")], ids=["prefix", "adaln", "ret"])
def test_beam_of_one_is_greedy(make):
    m = scrambled(make())
    emb = torch.randn(4, 768)
    eos = _greedy_with_eos_that_occurs(m, emb)
    seqs, scores = generate(m, emb, Sampling(max_new_tokens=12), m.cfg.bos_id, eos)
    bseqs, bscores = beam_search(m, emb, 1, m.cfg.bos_id, eos, max_new_tokens=12)
    assert bseqs == seqs and any(len(s) < 12 for s in seqs)
    assert bscores == pytest.approx(scores, abs=1e-5)


def _all_hypotheses(m, emb, eos, limit, length_penalty):
    """Brute force: every sequence of at most `limit` tokens (ended by <eos> or cut at the limit),
    scored from one forward pass (no cache) over all V**limit full-length continuations."""
    V = m.cfg.vocab_size
    full = torch.tensor(list(itertools.product(range(V), repeat=limit)))
    toks = torch.cat([torch.full((len(full), 1), m.cfg.bos_id), full[:, :-1]], dim=1)
    logp = torch.log_softmax(m(toks, emb=emb.expand(len(full), -1)).float(), -1)
    cum = logp.gather(2, full[:, :, None])[:, :, 0].cumsum(1)  # log p of each prefix
    best = (float("-inf"), None)
    for row, seq in enumerate(full.tolist()):
        for n in range(1, limit + 1):
            if eos in seq[:n - 1] or (n < limit and seq[n - 1] != eos):
                continue
            ids = seq[:n - 1] if seq[n - 1] == eos else seq[:n]
            best = max(best, (cum[row, n - 1].item() / n ** length_penalty, ids), key=lambda h: h[0])
    return best


@pytest.mark.parametrize("length_penalty", [1.0, 0.0])
def test_a_beam_wider_than_the_search_space_finds_the_best_sequence(length_penalty):
    m = scrambled(gen("adaln+prefix", vocab_size=5))
    emb = torch.randn(2, 768)
    seqs, scores = beam_search(m, emb, 128, m.cfg.bos_id, m.cfg.eos_id, max_new_tokens=3, length_penalty=length_penalty,
                               early_stopping=False)
    for i in range(2):
        score, ids = _all_hypotheses(m, emb[i:i + 1], m.cfg.eos_id, 3, length_penalty)
        assert seqs[i] == ids and scores[i] == pytest.approx(score, abs=1e-4)


def _rescore(m, emb, ids, eos, limit, length_penalty=1.0):
    """Score of one hypothesis recomputed without the cache: its tokens (+ <eos> when shorter than the limit)."""
    seq = ids + [eos] if len(ids) < limit else ids
    toks = torch.tensor([[m.cfg.bos_id, *seq[:-1]]])
    logp = torch.log_softmax(m(toks, emb=emb[None]).float(), -1)[0]
    return sum(logp[i, t].item() for i, t in enumerate(seq)) / len(seq) ** length_penalty


@pytest.mark.parametrize("early_stopping", [True, False])
def test_beam_search_of_a_batch_equals_each_row_alone(early_stopping):
    m = scrambled(gen("prefix"))
    emb = torch.randn(3, 768)
    eos = _greedy_with_eos_that_occurs(m, emb)
    batch = beam_search(m, emb, 4, m.cfg.bos_id, eos, max_new_tokens=10, early_stopping=early_stopping)
    alone = [beam_search(m, emb[i:i + 1], 4, m.cfg.bos_id, eos, max_new_tokens=10, early_stopping=early_stopping)
             for i in range(3)]
    assert batch[0] == [a[0][0] for a in alone]
    assert batch[1] == pytest.approx([a[1][0] for a in alone], abs=1e-5)
    assert batch[1] == pytest.approx([_rescore(m, emb[i], batch[0][i], eos, 10) for i in range(3)], abs=1e-4)


def test_beam_size_below_one_is_refused():
    with pytest.raises(ValueError, match="beam_size must be >= 1, got 0"):
        beam_search(gen(), torch.randn(1, 768), 0, 1, 2)
