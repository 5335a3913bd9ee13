"""Hybrid decoder: encoder-in-the-loop selection, with stub proposers and a stub encoder."""
import numpy as np
import pytest

from decoders.base import Decoded, Decoder, Sampling
from decoders.hybrid import HybridConfig, HybridDecoder, load

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
BASIS = {w: np.eye(8, dtype=np.float32)[i] for i, w in enumerate(WORDS)}


def stub_encode(texts):
    """Bag of basis vectors over the known words, unit length."""
    out = []
    for t in texts:
        v = sum((BASIS[w] for w in t.split() if w in BASIS), np.zeros(8, dtype=np.float32)) + 1e-3
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


class Fixed(Decoder):
    def __init__(self, texts, params=0):
        self.texts, self._p = texts, params

    @property
    def num_parameters(self):
        return self._p

    def _decode(self, x, s):
        return [[Decoded(self.texts[i % len(self.texts)]) for i in range(s.num_samples)] for _ in range(x.shape[0])]


def hybrid(**cfg):
    return HybridDecoder(Fixed(["alpha", "beta gamma", "delta"]), Fixed(["zeta"], 100), Fixed(["gamma"], 10),
                         HybridConfig(**{"generative_samples": 2, **cfg}), encode=stub_encode)


def target(text):
    # the stub lives in 8-d; pad to 768 so the public decode() validates it like any embedding
    v = np.zeros((1, 768), dtype=np.float32)
    v[0, :8] = stub_encode([text])[0]
    return v



def test_greedy_returns_the_candidate_closest_to_the_target_under_the_encoder():
    h = hybrid(refine_steps=0)
    h.encode = lambda texts: np.pad(stub_encode(texts), ((0, 0), (0, 760)))
    out = h.decode(target("beta gamma"), Sampling())
    assert out[0][0].text == "beta gamma" and out[0][0].score == pytest.approx(1.0, abs=1e-3)


def test_refinement_never_loses_the_best_candidate():
    h = hybrid(refine_steps=2)
    h.encode = lambda texts: np.pad(stub_encode(texts), ((0, 0), (0, 760)))
    out = h.decode(target("delta"), Sampling(num_samples=3))
    assert out[0][0].text == "delta"
    scores = [d.score for d in out[0]]
    assert scores == sorted(scores, reverse=True)


def test_same_seed_same_samples():
    h = hybrid()
    h.encode = lambda texts: np.pad(stub_encode(texts), ((0, 0), (0, 760)))
    s = Sampling(temperature=1.0, num_samples=2, seed=4)
    assert [d.text for d in h.decode(target("alpha"), s)[0]] == [d.text for d in h.decode(target("alpha"), s)[0]]


def test_parameter_count_is_the_neural_parts():
    assert hybrid().num_parameters == 110


def test_proposers_are_registry_names_checked_before_loading():
    with pytest.raises(ValueError, match="unknown decoder\\(s\\) 'nope'; valid decoders: phrase-bank"):
        load(cfg=HybridConfig(ret_decoder="nope"))
