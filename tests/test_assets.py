"""Shipped files are checked against their MANIFEST.json: a missing, damaged or unrecorded file
stops the load with a message naming the file and the commands that fix it; savers record what
they write; checkpoints never go through pickle."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from decoders import assets, checkpoint, phrase_bank, ret
from tools import manifest

ROOT = Path(__file__).resolve().parent.parent


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def ret_copy(tmp_path):
    """The shipped RET checkpoint's model files and manifest, copied to tmp_path/ret."""
    d = tmp_path / "ret"
    d.mkdir()
    for name in ["config.json", "model.safetensors", "MANIFEST.json"]:
        shutil.copy(ret.ASSET_DIR / name, d / name)
    return d


def test_every_shipped_file_matches_its_manifest():
    found = [msg for folder in manifest.SHIPPED for msg in assets.problems(ROOT / folder)]
    assert not found, "\n".join(found) + "\n(after a deliberate rebuild: python -m tools.manifest)"
    for folder, rebuild in manifest.SHIPPED.items():
        data = assets.read(ROOT / folder)
        assert data["rebuild"] == rebuild and set(data["files"]) == set(assets.checked_files(ROOT / folder))
    assert manifest.SHIPPED["assets/phrase_bank"] == phrase_bank.REBUILD


def test_a_copy_of_the_shipped_checkpoint_loads_and_decodes(ret_copy):
    dec = ret.load(directory=ret_copy)
    assert dec.num_parameters == 756_352


@pytest.mark.parametrize("at", [100, -100])  # inside the header, inside the weights
def test_a_corrupt_weights_file_is_refused_naming_the_file_and_the_commands(ret_copy, at):
    flip_byte(ret_copy / "model.safetensors", at)
    with pytest.raises(ValueError) as e:
        ret.load(directory=ret_copy)
    msg = str(e.value)
    assert re.search(r"ret/model.safetensors has sha256 \w{12}\.\.\., but .*ret/MANIFEST.json records \w{12}", msg)
    assert "`python -m training ret --out assets/ret`" in msg and "`python -m tools.manifest`" in msg


def test_a_truncated_or_missing_file_is_refused_before_it_is_read(ret_copy):
    weights = ret_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"model.safetensors has 1,000 bytes, but .* records 3,026,608"):
        ret.load(directory=ret_copy)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=r"ret/model.safetensors is missing \(listed in .*MANIFEST.json\); "
                                                r"restore the committed file"):
        ret.load(directory=ret_copy)


def test_a_file_changed_after_a_first_load_is_caught_on_the_next(ret_copy):
    ret.load(directory=ret_copy)
    flip_byte(ret_copy / "config.json", 5)  # same size, new content and mtime: hashed again
    with pytest.raises(ValueError, match="config.json has sha256"):
        ret.load(directory=ret_copy)


def test_a_file_the_manifest_does_not_list_is_refused(ret_copy):
    data = json.loads((ret_copy / "MANIFEST.json").read_text())
    del data["files"]["model.safetensors"]
    (ret_copy / "MANIFEST.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="model.safetensors is not listed in .*MANIFEST.json; record it with "
                                         "`python -m tools.manifest`"):
        ret.load(directory=ret_copy)


def test_a_folder_under_assets_without_a_manifest_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "ASSETS", tmp_path)
    (tmp_path / "ret").mkdir()
    shutil.copy(ret.ASSET_DIR / "config.json", tmp_path / "ret" / "config.json")
    with pytest.raises(FileNotFoundError, match="ret/MANIFEST.json is missing.*python -m tools.manifest"):
        assets.verify(tmp_path / "ret", ["config.json"])
    assert assets.verify(tmp_path.parent, ["anything"]) is False  # outside assets/: no manifest, not checked


def test_each_file_is_hashed_once_per_process(ret_copy):
    before = assets._sha256.cache_info()
    for _ in range(3):
        assets.verify(ret_copy, checkpoint.MODEL_FILES)
    after = assets._sha256.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (2, 4)  # two files (no tokenizer.json)


def test_save_records_what_it_writes_so_a_checkpoint_written_in_place_reloads(ret_copy, tmp_path):
    model, tok = ret.load_model(ret_copy)
    out = tmp_path / "trained"
    checkpoint.save(out, model, tok, "ret")
    data = assets.read(out)
    assert set(data["files"]) == {"config.json", "model.safetensors"}
    assert data["rebuild"].startswith("python -m training ret --out ")
    with_state = {k: v.clone() for k, v in model.state_dict().items()}
    next(iter(model.parameters())).data.add_(0.5)  # a training step later, saved again in place
    checkpoint.save(out, model, tok, "ret")
    again, _ = ret.load_model(out)
    assert not all(np.allclose(with_state[k], v) for k, v in again.state_dict().items())


def test_a_phrase_bank_is_recorded_on_save_and_checked_on_load(tmp_path):
    rng = np.random.default_rng(0)
    cfg = phrase_bank.BankConfig(factory="Flat")
    texts = [f"phrase {i}" for i in range(20)]
    phrase_bank.save(tmp_path, phrase_bank.build_index(rng.standard_normal((20, 768)), cfg), texts, cfg)
    assert set(assets.read(tmp_path)["files"]) == set(phrase_bank.bank_files(cfg)) \
        == {"index.faiss", "texts.txt.xz", "config.json"}
    assert phrase_bank.load(directory=tmp_path).n_phrases == 20
    flip_byte(tmp_path / "texts.txt.xz", 20)
    with pytest.raises(ValueError, match="texts.txt.xz has sha256 .*`python -m tools.phrase_bank build`"):
        phrase_bank.load(directory=tmp_path)


def test_the_manifest_command_writes_and_checks(tmp_path, monkeypatch, capsys):
    d = tmp_path / "assets" / "ret"
    d.mkdir(parents=True)
    for name in ["config.json", "model.safetensors", "MODEL_CARD.md"]:
        shutil.copy(ret.ASSET_DIR / name, d / name)
    monkeypatch.setattr(manifest, "ROOT", tmp_path)
    assert manifest.main(["assets/ret"]) == 0
    assert set(assets.read(d)["files"]) == {"config.json", "model.safetensors"}  # documents are not checked
    assert manifest.main(["--check", "assets/ret"]) == 0
    flip_byte(d / "config.json", 3)
    assert manifest.main(["--check", "assets/ret"]) == 1
    assert "config.json has sha256" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        manifest.main(["assets/elsewhere"])


def test_no_checkpoint_is_read_through_pickle():
    """torch.load only with weights_only=True, np.load never with allow_pickle=True (the repository's code)."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("data", ".git") or rel.parts[0].startswith("."):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"torch\.load\(", line) and "weights_only=True" not in line:
                offenders.append(f"{rel}:{i}: {line.strip()}")
            if re.search(r"np\.load\(", line) and "allow_pickle=True" in line:
                offenders.append(f"{rel}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
