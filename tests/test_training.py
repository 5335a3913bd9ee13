"""Trainer: TrainConfig <-> command line <-> train_args.json, a tiny CPU run, resume, dev scores via eval.metrics."""
import argparse
import json
from dataclasses import asdict, fields

import numpy as np
import pytest
import torch

from decoders import checkpoint
from decoders.base import Sampling
from decoders.corpus import load_rows, load_split
from decoders.generative import ASSET_DIR as GENERATIVE_DIR
from decoders.ret import ASSET_DIR as RET_DIR
from decoders.transformer import generate
from eval import metrics
from training.config import TrainConfig, add_arguments, from_args
from training.data import build_examples
from training.trainer import MODELS, Trainer, evaluate, lr_at

TINY_RET = {"d_model": 32, "n_heads": 2, "ffn_hidden": 32, "n_loops": 2, "n_prefix": 2, "bridge_hidden": 16,
            "max_len": 48}


def parse(argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return from_args(p.parse_args(argv))


def test_every_train_config_field_is_a_flag_and_the_cli_builds_the_config():
    cfg = parse(["ret", "--out", "x", "--set", "d_model=64", "dropout=0.1", "gate_name=a b", "--minutes", "2",
                 "--batch-size", "16", "--snapshot-at", "5", "10", "--resume", "--device", "cpu"])
    assert cfg == TrainConfig(kind="ret", out="x", resume=True, model={"d_model": 64, "dropout": 0.1, "gate_name": "a b"},
                              minutes=2.0, batch_size=16, snapshot_at=[5, 10], device="cpu")
    defaults = parse(["generative", "--out", "y"])
    assert asdict(defaults) == {**asdict(TrainConfig()), "out": "y"}
    assert len(fields(TrainConfig)) == len(vars(argparse.Namespace(**asdict(defaults))))


def test_bad_settings_are_refused_with_the_name():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="unknown model kind 'gpt'"):
        TrainConfig(kind="gpt")
    with pytest.raises(ValueError, match="--set takes KEY=VALUE"):
        parse(["ret", "--out", "x", "--set", "d_model"])


@pytest.mark.parametrize("directory", [GENERATIVE_DIR, RET_DIR])
def test_shipped_train_args_are_train_configs(directory):
    cfg = TrainConfig.load(directory)
    assert cfg.kind == checkpoint.read_config(directory)["kind"]


def test_trainer_kinds_are_the_checkpoint_kinds():
    assert set(MODELS) == {"generative", "ret"}


def test_lr_warms_up_then_decays_to_the_floor_on_time():
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(20, 10_000, 1.0, 10, time_frac=1.0) == pytest.approx(0.1)  # out of time: end of schedule


@pytest.fixture(scope="module")
def tiny_data():
    rows = load_rows("train")[:48]
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((48, 768)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    dev = {"dev": (load_split("dev")[:6], torch.as_tensor(emb[:6])),
           "open-dev": (load_split("open-dev")[:2], torch.as_tensor(emb[6:8]))}
    return build_examples(rows, emb.astype(np.float16)), dev


def test_tiny_run_writes_a_loadable_checkpoint_and_resumes(tmp_path, tiny_data):
    data, dev = tiny_data
    cfg = TrainConfig(kind="ret", out=str(tmp_path), model=TINY_RET, steps=4, eval_every=2, batch_size=8,
                      warmup=1, device="cpu", eval_n=6)
    torch.manual_seed(0)
    last = Trainer(cfg, data, dev, quiet=True).run()
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and last["step"] == 4
    assert {"dev_loss", "dev_bleu", "dev_exact", "dev_cos"} <= set(last)
    assert {"open_dev_loss", "open_dev_bleu", "open_dev_exact", "open_dev_cos"} <= set(last)
    assert last["data"] == {"rows": 48, "examples": 48, "kd_examples": 0, "copies_per_epoch": 48.0,
                            "kd_copies_per_epoch": 0.0}
    assert TrainConfig.load(tmp_path) == cfg
    model, _ = checkpoint.load(tmp_path, "ret", *MODELS["ret"])
    assert model.cfg.d_model == 32
    resumed = TrainConfig(**{**asdict(cfg), "resume": True, "steps": 6})
    last = Trainer(resumed, data, dev, quiet=True).run()
    state = torch.load(tmp_path / "train_state.pt", weights_only=True)
    assert last["step"] == 6 and state["step"] == 6 and state["sessions"] == 2

    tuned = TrainConfig(kind="ret", out=str(tmp_path / "tuned"), init=str(tmp_path), steps=2, eval_every=2,
                        batch_size=8, warmup=1, lr=1e-3, device="cpu", eval_n=6)
    trainer = Trainer(tuned, data, dev, quiet=True)   # --init: the checkpoint's weights, a new schedule
    model, _ = checkpoint.load(tmp_path, "ret", *MODELS["ret"])
    start = trainer.model.state_dict()
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    assert trainer.state["step"] == 0 and trainer.lr == 1e-3
    last = trainer.run()
    state = torch.load(tmp_path / "tuned" / "train_state.pt", weights_only=True)
    assert last["step"] == 2 and state["step"] == 2 and state["sessions"] == 1
    assert TrainConfig.load(tmp_path / "tuned").init == str(tmp_path)
    with pytest.raises(ValueError, match="--init takes the model"):
        TrainConfig(kind="ret", out="x", init=str(tmp_path), model={"d_model": 64})
    with pytest.raises(ValueError, match="holds a 'ret' checkpoint, not 'generative'"):
        Trainer(TrainConfig(kind="generative", out=str(tmp_path / "g"), init=str(tmp_path), device="cpu"),
                data, dev, quiet=True)


def test_dev_scores_are_the_benchmark_metrics_of_the_greedy_outputs(tiny_data):
    dev, dev_emb = tiny_data[1]["dev"]
    Config, Model, Tokenizer = MODELS["ret"]
    torch.manual_seed(0)
    model, tok = Model(Config(**TINY_RET)).eval(), Tokenizer()
    scores = evaluate(model, tok, dev, dev_emb, torch.device("cpu"))
    budget = model.cfg.max_len - 1
    ids, _ = generate(model, dev_emb, Sampling(max_new_tokens=budget), 1, 2, budget)
    hyps = [tok.decode(i) for i in ids]
    assert scores["dev_bleu"] == metrics.corpus_bleu(hyps, dev)[0]
    assert scores["dev_exact"] == np.mean([metrics.exact_match(h, t) for h, t in zip(hyps, dev)])
    assert scores["dev_cos"] == pytest.approx(float(metrics.roundtrip_cosine(hyps, dev_emb.numpy()).mean()))
    assert not model.training  # evaluation leaves the mode as it found it
