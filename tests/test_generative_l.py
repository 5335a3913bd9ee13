"""generative-l: registered (not by default), its committed config and tokenizer, and a loader that
names the training command until its weights exist. CPU only, no weights needed."""
import json
import shutil

import pytest
import torch

from decoders import DECODERS, checkpoint, default_decoders
from decoders.base import Sampling
from decoders.generative import (KIND, LARGE_DIR, BPETokenizer, Config, GenerativeDecoderModel, load_large,
                                 load_model)
from training.__main__ import main as training_main
from training.params import build


def test_generative_l_is_registered_but_not_a_default():
    assert DECODERS["generative-l"].loader == "decoders.generative:load_large"
    assert "generative-l" not in default_decoders()


def test_committed_config_is_20_to_40m_parameters_and_matches_its_tokenizer():
    data = json.loads((LARGE_DIR / "config.json").read_text())
    assert data.pop("kind") == KIND
    cfg = Config(**data)
    assert 20_000_000 <= build(KIND, data).num_parameters() <= 40_000_000
    checkpoint.check_tokenizer(BPETokenizer.load(LARGE_DIR), cfg, "assets/generative-l/tokenizer.json")
    assert not (LARGE_DIR / "train_state.pt").exists()  # optimizer state never ships for the large model


def test_generative_l_without_weights_names_its_training_command(tmp_path):
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(LARGE_DIR / name, tmp_path / name)
    with pytest.raises(FileNotFoundError, match="python -m training generative --out assets/generative-l"):
        load_large(directory=tmp_path)


def test_bfloat16_weights_load_into_the_float32_model_and_decode(tmp_path):
    tok = BPETokenizer.load(LARGE_DIR)
    torch.manual_seed(0)
    m = GenerativeDecoderModel(Config(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, ffn_hidden=48,
                                      n_prefix=2, bridge_hidden=16, conditioning="adaln+prefix", max_len=16))
    checkpoint.save(tmp_path / "src", m, tok, KIND)
    assert training_main(["export", str(tmp_path / "src"), "--out", str(tmp_path / "l"), "--dtype", "bfloat16"]) == 0
    m2, _ = load_model(tmp_path / "l")
    assert next(m2.parameters()).dtype == torch.float32
    for k, v in m.state_dict().items():
        assert torch.equal(m2.state_dict()[k], v.to(torch.bfloat16).float()), k
    dec = load_large(directory=tmp_path / "l")
    out = dec.decode(torch.randn(2, 768), Sampling(max_new_tokens=4))
    assert dec.name == "generative-l" and len(out) == 2 and isinstance(out[0][0].text, str)
