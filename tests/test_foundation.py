"""Encoder, corpus split, decoder API and registry."""
from pathlib import Path

import numpy as np
import pytest
import torch

from decoders import Sampling, available_decoders, get_decoder, validate_embeddings
from decoders.encoder import MINILM, encode, resolve_model_dir
from decoders.generative import LARGE_DIR
from decoders.sampling import make_generator, sample_next_token


def test_real_encoder_loads_offline_and_ranks_a_paraphrase_above_an_unrelated_sentence(embed):
    assert not resolve_model_dir().startswith("sentence-transformers/")  # a local folder, not the hub
    e = embed(["a man is playing a guitar", "someone plays the guitar", "the stock market fell sharply"])
    assert e.shape == (3, 768) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3


def test_independent_encoder_loads_from_its_package():
    e = encode(["a man is playing a guitar"], name=MINILM)
    assert e.shape == (1, 384)


@pytest.mark.parametrize("texts, message", [([""], "empty"), (["x" * 5000], "limit"), ([], "no text")])
def test_encoder_rejects_bad_text(texts, message):
    with pytest.raises(ValueError, match=message):
        encode(texts)


def test_encoder_encodes_empty_decoder_outputs_when_not_strict(encoder):
    e = encode(["", "a dog barks"], strict=False)  # how the metrics score an empty output
    assert e.shape == (2, 768)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 768, 1)), "shape"),
    (np.ones((2, 512)), "768-dimensional"),
    (np.full((1, 768), np.nan), "NaN"),
    (np.full((1, 768), np.inf), "NaN or inf"),
    (np.zeros((1, 768)), "all-zero"),
    (np.zeros((0, 768)), "empty batch"),
    ("not numbers", "float array"),
])
def test_validate_embeddings_names_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_embeddings(bad)


def test_validate_embeddings_accepts_one_vector_and_normalises():
    x = validate_embeddings(np.full(768, 3.0))
    assert x.shape == (1, 768) and torch.allclose(x.norm(dim=1), torch.ones(1))


@pytest.mark.parametrize("kw", [dict(temperature=-1), dict(temperature=float("nan")), dict(top_k=-2),
                                dict(top_p=0.0), dict(top_p=1.5), dict(max_new_tokens=0), dict(num_samples=0)])
def test_sampling_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        Sampling(**kw)


def test_same_seed_gives_the_same_samples():
    logits = torch.randn(4, 1000, generator=make_generator(0))
    s = Sampling(temperature=1.0, top_k=50, top_p=0.9, seed=3)
    draws = [torch.stack([sample_next_token(logits, s, g) for _ in range(20)])
             for g in (make_generator(3), make_generator(3), make_generator(4))]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_top_k_1_equals_greedy(temperature):
    logits = torch.randn(8, 300, generator=make_generator(1))
    greedy = sample_next_token(logits, Sampling(temperature=0))
    for seed in range(5):
        s = Sampling(temperature=temperature, top_k=1, seed=seed)
        assert torch.equal(sample_next_token(logits, s, make_generator(seed)), greedy)
    assert torch.equal(greedy, logits.argmax(-1))


def test_sampling_never_picks_masked_or_out_of_nucleus_tokens():
    logits = torch.tensor([[5.0, 4.9, 0.0, float("-inf")]]).repeat(200, 1)
    picks = sample_next_token(logits, Sampling(temperature=1.0, top_p=0.9), make_generator(0))
    assert set(picks.tolist()) == {0, 1}


def test_unknown_decoder_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid decoders: phrase-bank, generative, ret, hybrid, generative-l"):
        get_decoder("nope")


def test_every_registered_decoder_rejects_a_wrong_sized_vector():
    for name in available_decoders():
        if name == "generative-l" and not (LARGE_DIR / "model.safetensors").exists():
            continue  # no weights yet: test_generative_l_without_weights_names_its_training_command
        with pytest.raises(ValueError, match="768-dimensional"):
            get_decoder(name).decode(np.ones((1, 100)), Sampling())


@pytest.mark.parametrize("names, message", [
    (123, "decoders must be a list of names, got int; valid decoders: phrase-bank"),
    ([["phrase-bank"]], r"unknown decoder\(s\) \['phrase-bank'\]; valid decoders:"),
    ([None], r"unknown decoder\(s\) None"),
])
def test_decoder_names_that_are_not_names_are_refused_with_the_valid_ones(names, message):
    from decoders import check_decoder_names

    with pytest.raises(ValueError, match=message):
        check_decoder_names(names)


def _mapped_ranges(path) -> list[tuple[int, int]]:
    """Address ranges of this process that map `path` (Linux /proc/self/maps)."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            if line.rstrip().endswith(str(path)):
                lo, hi = line.split()[0].split("-")
                out.append((int(lo, 16), int(hi, 16)))
    return out


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/maps"), reason="Linux only")
def test_encoder_weights_are_copied_off_the_weights_file():
    """A weight left on the memory map of model.safetensors grows RSS as new words are read (README, Limits)."""
    from sentence_transformers import SentenceTransformer

    from decoders.encoder import MPNET, load_encoder, resident

    weights = Path(resolve_model_dir(MPNET)) / "model.safetensors"

    def on_file(model):
        ranges = _mapped_ranges(weights.resolve())
        return sum(any(lo <= p.data_ptr() < hi for lo, hi in ranges) for p in model.parameters())

    fresh = SentenceTransformer(str(resolve_model_dir(MPNET)), device="cpu")
    if on_file(fresh) == 0:
        pytest.skip("this transformers version copies the weights itself")
    assert on_file(resident(fresh)) == 0
    assert on_file(load_encoder()) == 0
