"""Corrector (decoders/corrector.py): tiny configs, a BPE tokenizer trained here, stub encoders."""
import hashlib

import numpy as np
import pytest
import torch

from decoders import checkpoint, corrector, hybrid
from decoders.base import Decoded, Decoder, Sampling
from decoders.corrector import Config, Corrector, CorrectorModel, condition, hypothesis_ids
from decoders.generative import BPETokenizer
from decoders.hybrid import HybridConfig, HybridDecoder, TargetShift
from decoders.transformer import generate

TEXTS = ["a small dog barked at the mailman", "the cat sat on the mat", "rain fell on the old roof",
         "she read the letter twice", "a cold wind blew across the lake"]


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train(TEXTS * 4, Config(vocab_size=300))


def tiny(tokenizer, **kw) -> CorrectorModel:
    torch.manual_seed(0)
    cfg = dict(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, n_prefix=2,
               proj_hidden=16, hyp_len=12, max_len=16)
    return CorrectorModel(Config(**{**cfg, **kw})).eval()


def unit(n, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, 768)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cond_for(model, tokenizer, texts, seed=0, landed=None):
    e = unit(len(texts), seed)
    return condition(e, unit(len(texts), seed + 1) if landed is None else landed,
                     hypothesis_ids(tokenizer, texts, model.cfg))


def test_logits_cover_the_token_positions_only(tokenizer):
    model = tiny(tokenizer)
    cond = cond_for(model, tokenizer, TEXTS[:3])
    assert cond.shape == (3, 2 * 768 + 12 + 1) and model.cfg.prefix_len == 3 * 2 + 12
    assert model(torch.ones(3, 5, dtype=torch.long), emb=cond).shape == (3, 5, tokenizer.vocab_size)


def test_hypothesis_slot_is_the_texts_ids_then_eos_then_padding(tokenizer):
    cfg = Config(vocab_size=tokenizer.vocab_size, hyp_len=12)
    ids = hypothesis_ids(tokenizer, ["the cat", "", " ".join(TEXTS)], cfg)
    want = tokenizer.encode(["the cat"])[0]
    assert ids[0, :len(want)].tolist() == want and ids[0, len(want)] == cfg.eos_id and (ids[0, len(want) + 1:] == 0).all()
    assert ids[1, 0] == cfg.eos_id and (ids[1, 1:] == 0).all()
    assert ids[2, -1] == cfg.eos_id and (ids[2] != 0).all()     # cut to hyp_len - 1 tokens + <eos>


@pytest.mark.parametrize("part", ["target", "landed", "hypothesis"])
def test_every_conditioning_input_changes_the_logits(tokenizer, part):
    model = tiny(tokenizer)
    e, landed, texts = unit(2, 0), unit(2, 1), TEXTS[:2]
    base = model(torch.ones(2, 4, dtype=torch.long), emb=condition(e, landed, hypothesis_ids(tokenizer, texts, model.cfg)))
    if part == "target":
        e = unit(2, 5)
    elif part == "landed":
        landed = unit(2, 6)
    else:
        texts = TEXTS[2:4]
    other = model(torch.ones(2, 4, dtype=torch.long), emb=condition(e, landed, hypothesis_ids(tokenizer, texts, model.cfg)))
    assert not torch.allclose(base, other, atol=1e-5)


def test_the_three_projections_and_the_hypothesis_role_all_get_gradient(tokenizer):
    model = tiny(tokenizer).train()
    cond = cond_for(model, tokenizer, TEXTS[:2])
    model(torch.ones(2, 4, dtype=torch.long), emb=cond).logsumexp(-1).sum().backward()
    for name in ("proj_target.inp.weight", "proj_landed.inp.weight", "proj_diff.inp.weight", "hyp_role"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_the_difference_projection_reads_e_minus_e_hat(tokenizer):
    """With the target and landed projections zeroed, only e - ê reaches the model: two pairs with
    the same difference give the same logits, two with different ones do not."""
    model = tiny(tokenizer, per_layer=False)
    for proj in (model.proj_target, model.proj_landed):
        torch.nn.init.zeros_(proj.prefix.weight)
        torch.nn.init.zeros_(proj.prefix.bias)
    ids = hypothesis_ids(tokenizer, ["the cat"], model.cfg)
    e, d = unit(1, 0), 0.1 * unit(1, 1)
    tok = torch.ones(1, 3, dtype=torch.long)
    a = model(tok, emb=condition(e, e - d, ids))
    b = model(tok, emb=condition(e + 1.0, e + 1.0 - d, ids))
    c = model(tok, emb=condition(e, e + d, ids))
    assert torch.allclose(a, b, atol=1e-4) and not torch.allclose(a, c, atol=1e-4)


def test_cached_generation_matches_recomputation(tokenizer):
    model = tiny(tokenizer)
    cond = cond_for(model, tokenizer, TEXTS[:2])
    seqs, _ = generate(model, cond, Sampling(max_new_tokens=8), model.cfg.bos_id, model.cfg.eos_id)
    for row, seq in enumerate(seqs):
        tokens = torch.tensor([[model.cfg.bos_id] + seq])
        full = model(tokens, emb=cond[row:row + 1])[0]
        assert full[:len(seq)].argmax(-1).tolist() == seq


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_condition_that_went_through_low_precision_is_refused(tokenizer, dtype):
    model = tiny(tokenizer)
    cond = cond_for(model, tokenizer, TEXTS[:1])
    model(torch.ones(1, 2, dtype=torch.long), emb=cond)     # float32: fine
    with pytest.raises(ValueError, match="lost precision"):
        model(torch.ones(1, 2, dtype=torch.long), emb=cond.to(dtype).float())


def test_a_malformed_condition_is_refused(tokenizer):
    model = tiny(tokenizer)
    cond = cond_for(model, tokenizer, TEXTS[:1])
    with pytest.raises(ValueError, match=r"shape \[B, 1549\]"):
        model(torch.ones(1, 2, dtype=torch.long), emb=cond[:, :-1])
    bad = cond.clone()
    bad[0, 2 * 768] = 2.5
    with pytest.raises(ValueError, match="not whole token ids"):
        model(torch.ones(1, 2, dtype=torch.long), emb=bad)


def test_save_and_load_round_trip(tokenizer, tmp_path):
    model = tiny(tokenizer)
    checkpoint.save(tmp_path, model, tokenizer, corrector.KIND)
    loaded, tok = corrector.load_model(tmp_path)
    cond = cond_for(model, tokenizer, TEXTS[:2])
    tokens = torch.ones(2, 3, dtype=torch.long)
    assert loaded.cfg == model.cfg and tok.vocab_size == tokenizer.vocab_size
    assert torch.allclose(loaded(tokens, emb=cond), model(tokens, emb=cond))
    with pytest.raises(ValueError, match="not 'generative'"):
        checkpoint.load(tmp_path, "generative", Config, CorrectorModel, BPETokenizer)


def test_default_config_fits_the_parameter_budget():
    n = CorrectorModel(Config()).num_parameters()
    assert 1_000_000 < n <= corrector.MAX_PARAMETERS


def test_propose_returns_n_texts_per_hypothesis_and_is_seeded(tokenizer):
    corr = Corrector(tiny(tokenizer), tokenizer)
    s = Sampling(temperature=1.0, seed=3, max_new_tokens=6)
    out = corr.propose(unit(2), unit(2, 1), TEXTS[:2], s, 3)
    assert len(out) == 2 and all(len(r) == 3 and all(isinstance(t, str) for t in r) for r in out)
    assert out == corr.propose(unit(2), unit(2, 1), TEXTS[:2], s, 3)
    greedy = corr.propose(unit(2), unit(2, 1), TEXTS[:2], Sampling(max_new_tokens=6), 2)
    assert all(r[0] == r[1] for r in greedy)
    with pytest.raises(ValueError, match="3 target embeddings"):
        corr.propose(unit(3), unit(3, 1), TEXTS[:2], s, 1)
    with pytest.raises(ValueError, match="n \\(corrections per hypothesis\\)"):
        corr.propose(unit(2), unit(2, 1), TEXTS[:2], s, 0)


# ------------------------------------------------------------------- with the hybrid search

def hash_encode(texts):
    """Stub encoder: a fixed random unit vector per text."""
    out = []
    for t in texts:
        seed = int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)
        out.append(unit(1, seed)[0])
    return np.stack(out)


class FixedBank(Decoder):
    num_parameters = 0

    def _decode(self, x, s):
        return [[Decoded(TEXTS[i % len(TEXTS)]) for i in range(s.num_samples)] for _ in range(x.shape[0])]


def test_a_random_corrector_plugs_into_the_hybrid_search(tokenizer):
    corr = Corrector(tiny(tokenizer), tokenizer)
    dec = HybridDecoder(FixedBank(), FixedBank(), corr, HybridConfig(start="bank", steps=3, beam=2, proposals=2,
                                                                      budget_ms=0, stop_cos=1.01), hash_encode)
    out = dec.decode(unit(2, 9), Sampling(max_new_tokens=6))
    for row in out:
        traj = row[0].extra["trajectory"]
        assert [p["step"] for p in traj] == [0, 1, 2, 3] or traj[-1]["step"] < 3   # stops early when nothing improves
        cos = [p["cos"] for p in traj]
        assert cos == sorted(cos) and row[0].score == pytest.approx(cos[-1], abs=1e-6)
    assert dec.num_parameters == corr.num_parameters
    # empty start: the corrector is called with ê = 0 and an empty hypothesis
    empty = dec.configured(start="empty", steps=1).decode(unit(1, 9), Sampling(max_new_tokens=6))[0][0]
    assert [p["step"] for p in empty.extra["trajectory"]] == [0, 1]


def test_hybrid_load_uses_a_corrector_checkpoint_when_there_is_one(tokenizer, tmp_path):
    cfg = HybridConfig(bank_decoder=None)
    assert isinstance(hybrid.load(cfg=cfg, corrector_dir=tmp_path).corrector, TargetShift)
    gen_tok = BPETokenizer.load(corrector.TOKENIZER_DIR)
    model = tiny(gen_tok)
    checkpoint.save(tmp_path, model, gen_tok, corrector.KIND)
    loaded = hybrid.load(cfg=cfg, corrector_dir=tmp_path)
    assert isinstance(loaded.corrector, Corrector) and loaded.corrector.model.cfg == model.cfg
    assert loaded.configured(steps=1).corrector is loaded.corrector


def test_the_ablation_runner_scores_each_sentence_alone(tokenizer):
    from tools.hybrid_ablations import GROUPS, markdown, run

    corr = Corrector(tiny(tokenizer), tokenizer)
    dec = HybridDecoder(FixedBank(), FixedBank(), corr, HybridConfig(start="bank", steps=1, budget_ms=0), hash_encode)
    refs = TEXTS[:2] + TEXTS[4:]          # the bank's four candidates are TEXTS[:4]: the last is not among them
    row = run(dec, refs, hash_encode(refs), max_new_tokens=4)
    assert row["n"] == 3 and row["exact"] == pytest.approx(2 / 3) and row["cos"] < 0.99
    assert row["steps"] == pytest.approx(1 / 3) and row["p50_ms"] > 0   # only the third is corrected
    assert "| base | steps=1 | 3 |" in markdown([{"group": "base", "setting": {"steps": 1}, **row}])
    better = {**row, "cos_rows": [c + d for c, d in zip(row["cos_rows"], (0.01, 0.03, 0.02))]}
    table = markdown([{"group": "g", "setting": {}, **row}, {"group": "g", "setting": {"steps": 2}, **better}])
    assert "| g | steps=2 | 3 |" in table and "| +0.0200 ± 0.0058 |" in table   # paired against the group's first
    assert [s["steps"] for s in GROUPS["steps"]] == [1, 3, 5, 10]
