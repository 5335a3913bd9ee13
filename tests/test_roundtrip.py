"""Round-trip fine-tuning (training/roundtrip.py): the reward and the self-critical loss, with a stub
encoder (hashed bag of words) so nothing here loads all-mpnet-base-v2. Tiny model, CPU only."""
import zlib

import numpy as np
import pytest
import torch

from decoders.generative import BPETokenizer, Config, GenerativeDecoderModel, train_tokenizer
from eval.metrics import sentence_bleu, words
from training.roundtrip import SCSTConfig, roundtrip_reward, scst_loss, sequence_logprob


def stub_encode(texts):
    """Unit bag-of-words vectors [N, 768]; "" and texts without words map to one fixed direction."""
    out = np.zeros((len(texts), 768), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in words(t) or ["<empty>"]:
            out[i, zlib.crc32(w.encode()) % 768] += 1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_reward_is_cosine_of_the_reencoded_output_plus_weighted_bleu():
    refs = ["the cat sat on the mat", "a dog barked at night"]
    hyps = ["the cat sat on the mat", "a cat slept"]
    target = stub_encode(refs) * 3.0  # targets need not be unit length
    r = roundtrip_reward(hyps, target, refs, stub_encode, bleu_weight=0.5)
    assert r[0] == pytest.approx(1.0 + 0.5 * 1.0)  # exact copy: cos 1, BLEU 100
    cos = float(stub_encode([hyps[1]])[0] @ stub_encode([refs[1]])[0])
    assert r[1] == pytest.approx(cos + 0.5 * sentence_bleu(hyps[1], refs[1]) / 100)
    assert roundtrip_reward(hyps, target, refs, stub_encode, bleu_weight=0)[1] == pytest.approx(cos)
    with pytest.raises(ValueError, match="one target row and one reference per hypothesis"):
        roundtrip_reward(hyps, target[:1], refs, stub_encode)


@pytest.fixture(scope="module")
def tiny():
    texts = ["the cat sat on the mat", "a dog barked at night", "the sun rose over the hills"] * 10
    tok = BPETokenizer(train_tokenizer(texts, 300))
    torch.manual_seed(0)
    m = GenerativeDecoderModel(Config(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, ffn_hidden=48,
                                      n_prefix=2, bridge_hidden=16, max_len=16))
    return m, tok


def test_sequence_logprob_sums_the_token_log_probabilities_and_the_eos(tiny):
    m, _ = tiny
    emb = torch.randn(2, 768)
    seqs = [[5, 9, 7], [4]]
    got = sequence_logprob(m, emb, seqs)
    for i, s in enumerate(seqs):
        toks = torch.tensor([[1, *s]])
        lp = torch.log_softmax(m(toks, emb=emb[i:i + 1]).float(), -1)[0]
        want = sum(lp[j, t] for j, t in enumerate(s + [2]))
        assert got[i].item() == pytest.approx(want.item(), abs=1e-5)


def test_a_step_makes_samples_that_beat_greedy_more_likely(tiny):
    """Reward = overlap with the reference: after SGD steps on the SCST loss alone, the model's
    log-probability of the sampled outputs that beat greedy rises relative to those that lost."""
    m, tok = tiny
    torch.manual_seed(1)
    emb = torch.randn(2, 768)
    refs = ["the cat sat on the mat", "a dog barked at night"]
    cfg = SCSTConfig(samples=6, temperature=1.5, ce_weight=0.0, max_new_tokens=8, baseline="greedy")
    loss, stats = scst_loss(m, tok, emb, refs, stub_encode, cfg, seed=3)
    assert torch.isfinite(loss) and 0 < stats["beat_greedy"] < 1
    # the same draws again (same seed), to read which won, and their log-probabilities
    from decoders.base import Sampling
    from decoders.transformer import generate
    samp, _ = generate(m.eval(), emb, Sampling(temperature=1.5, num_samples=6, seed=3, max_new_tokens=8), 1, 2)
    greedy, _ = generate(m, emb, Sampling(max_new_tokens=8), 1, 2)
    texts = [tok.decode(s) for s in samp]
    r = roundtrip_reward(texts, np.repeat(emb.numpy(), 6, 0), [x for x in refs for _ in range(6)], stub_encode, 0.5)
    rg = roundtrip_reward([tok.decode(g) for g in greedy], emb.numpy(), refs, stub_encode, 0.5)
    won = r > np.repeat(rg, 6)
    lost = r < np.repeat(rg, 6)
    before = sequence_logprob(m, emb.repeat_interleave(6, 0), samp).detach()
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    for _ in range(3):
        loss, _ = scst_loss(m, tok, emb, refs, stub_encode, cfg, seed=3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = sequence_logprob(m, emb.repeat_interleave(6, 0), samp).detach()
    delta = (after - before).numpy()
    assert delta[won].mean() > delta[lost].mean()


def test_equal_rewards_leave_only_the_reference_loss(tiny):
    m, tok = tiny
    constant = lambda texts: np.tile(np.eye(768, dtype=np.float32)[:1], (len(texts), 1))  # noqa: E731
    emb = torch.randn(2, 768, generator=torch.Generator().manual_seed(4))
    cfg = SCSTConfig(samples=3, bleu_weight=0.0, ce_weight=0.0, max_new_tokens=6)
    loss, stats = scst_loss(m, tok, emb, ["a b", "c d"], constant, cfg)
    # the leave-one-out mean of equal float rewards can differ from them in the last bit
    assert abs(loss.item()) < 1e-6 and stats["beat_greedy"] == 0.0


def test_sample_baseline_advantages_are_zero_mean_per_target(tiny):
    """baseline="samples": each sample is judged against the mean of the other k-1 (leave-one-out), so the
    advantages of a target sum to zero and a step cannot push every draw down (greedy's baseline did, on CPU)."""
    m, tok = tiny
    torch.manual_seed(2)
    emb = torch.randn(2, 768)
    refs = ["the cat sat on the mat", "a dog barked at night"]
    cfg = SCSTConfig(samples=4, temperature=1.5, ce_weight=0.0, max_new_tokens=8, baseline="samples")
    seen = {}
    def fake_logprob(model, e, samp):   # a log-probability of 1 per draw: the loss is minus the mean advantage
        seen["n"] = len(samp)
        return torch.ones(len(samp), requires_grad=True)
    import training.roundtrip as rt
    real, rt.sequence_logprob = rt.sequence_logprob, fake_logprob
    try:
        loss, stats = scst_loss(m, tok, emb, refs, stub_encode, cfg, seed=3)
    finally:
        rt.sequence_logprob = real
    assert seen["n"] == 8 and abs(loss.item()) < 1e-6 and 0 <= stats["beat_greedy"] <= 1
    with pytest.raises(ValueError, match="baseline"):
        scst_loss(m, tok, emb, refs, stub_encode, SCSTConfig(samples=1, baseline="samples"), seed=3)


def test_samples_run_to_the_models_length_limit_by_default(tiny, monkeypatch):
    """A sample cut short is scored as if it ended there, so the default cap is the model's own limit
    (max_len - 1), not the 32 units the app shows by default: with <eos> never drawn, every sample
    scored has max_len - 1 tokens; an explicit cap still applies."""
    m, tok = tiny
    emb = torch.randn(2, 768)
    seen = []
    import training.roundtrip as rt
    monkeypatch.setattr(rt, "sequence_logprob", lambda model, e, samp: (seen.append([len(s) for s in samp]),
                                                                         torch.zeros(len(samp), requires_grad=True))[1])
    monkeypatch.setattr(m.cfg, "eos_id", -1)   # never drawn: every sequence runs to its cap
    scst_loss(m, tok, emb, ["a b", "c d"], stub_encode, SCSTConfig(samples=2, ce_weight=0.0), seed=1)
    scst_loss(m, tok, emb, ["a b", "c d"], stub_encode, SCSTConfig(samples=2, ce_weight=0.0, max_new_tokens=5), seed=1)
    assert seen == [[m.cfg.max_len - 1] * 4, [5] * 4]
