"""decoders/inputs.py and validate_embeddings: every bad input is refused with a message that
names the input and the limit; good input becomes unit rows. No model is loaded here."""
import json
import math

import numpy as np
import pytest
import torch

from decoders import EMBED_DIM, validate_embeddings
from decoders import inputs

RNG = np.random.default_rng(0)
V = RNG.standard_normal(EMBED_DIM)


def unit(v):
    return v / np.linalg.norm(v)


# ----------------------------------------------------------------------------- validate_embeddings

@pytest.mark.parametrize("scale, dtype", [(1e38 / 5, np.float32), (1e-30, np.float32), (1e-300, np.float64),
                                          (1e300, np.float64)])
def test_validate_embeddings_treats_any_finite_scale_as_a_direction(scale, dtype):
    arr = (V * scale).astype(dtype)  # |V| entries reach ~4, so 1e38 / 5 stays finite in float32
    assert np.isfinite(arr).all() and (arr != 0).all()
    out = validate_embeddings(arr).numpy()[0]
    assert np.isfinite(out).all()
    assert math.isclose(np.linalg.norm(out), 1.0, rel_tol=1e-5)
    assert float(out @ unit(V)) > 0.9999


def test_validate_embeddings_keeps_float32_1e38_which_overflowed_before():
    out = validate_embeddings(np.full((1, EMBED_DIM), 1e38, dtype=np.float32))
    assert torch.allclose(out, torch.full((1, EMBED_DIM), 1 / math.sqrt(EMBED_DIM)))


def test_only_an_exact_zero_row_is_all_zero_and_the_row_is_named():
    x = np.stack([V, np.zeros(EMBED_DIM), V * 1e-30])
    with pytest.raises(ValueError, match=r"all-zero vector\(s\) in row\(s\) \[1\]"):
        validate_embeddings(x)


@pytest.mark.parametrize("bad", [V * 1j, torch.ones(EMBED_DIM, dtype=torch.complex64), (V + 0j).astype(np.complex128)])
def test_complex_embeddings_are_refused_not_truncated(bad):
    with pytest.raises(ValueError, match="complex"):
        validate_embeddings(bad)


# ----------------------------------------------------------------------------- sampling values

@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature="nan"), r"temperature must be a number in \[0, 2\], got nan"),
    (dict(temperature=float("inf")), "temperature must be a number"),
    (dict(temperature=2.5), r"temperature must be a number in \[0, 2\], got 2.5"),
    (dict(seed="abc"), r"seed must be a whole number in \[0, 4294967295\], got 'abc'"),
    (dict(seed=2**80), r"seed must be a whole number in \[0, 4294967295\], got 1208925819614629174706176"),
    (dict(seed=1.5), "seed must be a whole number .* got 1.5"),
    (dict(seed=-1), "seed must be a whole number"),
    (dict(top_k=2.5), r"top_k must be a whole number in \[0, 200\], got 2.5"),
    (dict(top_p=0), r"top_p must be a number in \[0.01, 1\], got 0"),
    (dict(max_new_tokens=64), r"max_new_tokens must be a whole number in \[1, 63\]"),
    (dict(num_samples=9), r"num_samples must be a whole number in \[1, 8\], got 9"),
    (dict(num_samples=None), "num_samples must be"),
    (dict(num_samples=True), "num_samples must be"),
    (dict(top_k=[1]), "top_k must be .* got list"),
])
def test_bad_sampling_values_name_the_parameter_and_its_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inputs.parse_sampling(**kwargs)


def test_sampling_values_from_strings_and_whole_floats_are_accepted():
    s = inputs.parse_sampling(temperature="0.7", top_k="5", top_p=0.9, max_new_tokens=16.0, num_samples="2", seed="42")
    assert (s.temperature, s.top_k, s.top_p, s.max_new_tokens, s.num_samples, s.seed) == (0.7, 5, 0.9, 16, 2, 42)
    assert isinstance(s.max_new_tokens, int) and isinstance(s.seed, int)


# ----------------------------------------------------------------------------- text

@pytest.mark.parametrize("text, message", [
    ("", "text is empty"),
    ("  \n ", "text is empty"),
    (None, "text is empty"),
    (12, "text must be a string"),
    ("x" * 100_000, "text has 100,000 characters; the limit is 2,000"),
    ("caf\ud800e", r"invalid character U\+D800 at position 3"),
])
def test_bad_text_is_refused_with_a_reason(text, message):
    with pytest.raises(ValueError, match=message):
        inputs.check_text(text)


def test_text_at_the_limit_is_kept_whole():
    assert inputs.check_text("y" * inputs.MAX_TEXT_CHARS) == "y" * inputs.MAX_TEXT_CHARS


def test_review_lines_are_checked_and_counted():
    assert inputs.check_lines("a cat\n\n  a dog \n") == ["a cat", "a dog"]
    with pytest.raises(ValueError, match="line 2"):
        inputs.check_lines("fine\n" + "z" * 3000)
    with pytest.raises(ValueError, match="the limit is 500"):
        inputs.check_lines("\n".join(["s"] * 501))


# ----------------------------------------------------------------------------- vectors

def write(tmp_path, name, payload):
    path = tmp_path / name
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    elif name.endswith(".npy"):
        np.save(path, payload, allow_pickle=False)
    else:
        path.write_text(payload)
    return path


@pytest.mark.parametrize("name, payload", [
    ("v.npy", V.astype(np.float32)),
    ("v.npy", V[None]),
    ("v.json", json.dumps(V.tolist())),
    ("v.json", json.dumps([V.tolist()])),
    ("v.txt", " ".join(map(str, V))),
    ("v.txt", "\n".join(map(str, V))),
    ("v.csv", ",".join(map(str, V))),
])
def test_one_vector_reads_from_every_format_as_one_unit_row(tmp_path, name, payload):
    rows = inputs.read_vector_file(write(tmp_path, name, payload))
    assert rows.shape == (1, EMBED_DIM) and rows.dtype == np.float32
    assert np.allclose(rows[0], unit(V), atol=1e-6)


def test_several_rows_are_all_kept_in_order(tmp_path):
    m = RNG.standard_normal((3, EMBED_DIM))
    for name, payload in [("m.npy", m), ("m.json", json.dumps(m.tolist())),
                          ("m.csv", "\n".join(",".join(map(str, r)) for r in m))]:
        rows = inputs.read_vector_file(write(tmp_path, name, payload))
        assert rows.shape == (3, EMBED_DIM)
        assert np.allclose(rows, m / np.linalg.norm(m, axis=1, keepdims=True), atol=1e-6)


@pytest.mark.parametrize("name, payload, message", [
    ("e.npy", np.zeros((0, EMBED_DIM), np.float32), r"e.npy is empty \(shape \(0, 768\)\)"),
    ("o.json", json.dumps({"embedding": [1, 2]}), "o.json holds a JSON dict; expected a list of 768 numbers"),
    ("s.json", json.dumps(["a"] * EMBED_DIM), "s.json holds 'a' \\(str\\); expected numbers only"),
    ("c.npy", (V + 1j).astype(np.complex64), "c.npy holds complex numbers"),
    ("m.npy", np.ones((inputs.MAX_ROWS + 1, EMBED_DIM)), f"m.npy has {inputs.MAX_ROWS + 1} rows; at most {inputs.MAX_ROWS}"),
    ("t.npy", np.ones((2, 3, EMBED_DIM)), r"t.npy has shape \(2, 3, 768\)"),
    ("d.npy", np.ones(512), "d.npy has 512 numbers per row; expected 768"),
    ("z.npy", np.zeros(EMBED_DIM), r"z.npy: .*all-zero vector\(s\) in row\(s\) \[0\]"),
    ("n.txt", "nan " * EMBED_DIM, "n.txt: .*NaN"),
    ("w.txt", "one two three", "w.txt: 'one' is not a number"),
    ("r.txt", "1 2 3\n4 5", "r.txt has lines of 2, 3 numbers"),
    ("b.npy", b"not a numpy file", "b.npy could not be read"),
    ("u.txt", b"\xff\xfe\x00", "u.txt is not UTF-8 text"),
    ("j.json", "[1, 2,", "j.json is not valid JSON"),
    ("x.bin", b"1234", "x.bin: unsupported file type .bin"),
])
def test_bad_vector_files_name_the_file_and_the_problem(tmp_path, name, payload, message):
    with pytest.raises(ValueError, match=message):
        inputs.read_vector_file(write(tmp_path, name, payload))


def test_an_object_npy_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="p.npy could not be read"):
        inputs.read_vector_file(path)


def test_a_file_over_the_upload_limit_is_refused_unread(tmp_path, monkeypatch):
    path = tmp_path / "big.npy"
    with open(path, "wb") as f:
        f.truncate(inputs.MAX_UPLOAD_BYTES + 1)  # sparse: no real 10 MB written
    with pytest.raises(ValueError, match="big.npy is 10.0 MB; the upload limit is 10 MB"):
        inputs.read_vector_file(path)


def test_pasted_numbers_in_the_usual_shapes():
    for text in [", ".join(map(str, V)), "[" + " ".join(map(str, V)) + "]", json.dumps(V.tolist())]:
        assert np.allclose(inputs.parse_pasted(text)[0], unit(V), atol=1e-6)
    two = "\n".join(" ".join(map(str, r)) for r in (V, -V))
    rows = inputs.parse_pasted(two)
    assert rows.shape == (2, EMBED_DIM) and np.allclose(rows[1], -unit(V), atol=1e-6)


@pytest.mark.parametrize("text, message", [
    ("", "the pasted vector is empty"),
    ("1, 2, 3", "the pasted vector has 3 numbers per row; expected 768"),
    ("0 " * EMBED_DIM, "all-zero"),
    ("1" * (inputs.MAX_PASTED_CHARS + 1), "the limit is"),
    ('{"a": 1}', "holds a JSON dict"),
])
def test_bad_pasted_vectors_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        inputs.parse_pasted(text)


# ----------------------------------------------------------------------------- new points

def test_slerp_ends_at_its_endpoints_and_keeps_unit_length_and_equal_angles():
    a, b = unit(V), unit(RNG.standard_normal(EMBED_DIM))
    alphas, path = inputs.slerp_path(a, b, 5)
    assert np.allclose(alphas, [0, 0.25, 0.5, 0.75, 1])
    assert np.allclose(path[0], a, atol=1e-6) and np.allclose(path[-1], b, atol=1e-6)
    assert np.allclose(np.linalg.norm(path, axis=1), 1, atol=1e-6)
    steps = [math.acos(np.clip(path[i] @ path[i + 1], -1, 1)) for i in range(4)]
    assert np.allclose(steps, steps[0], atol=1e-5)  # evenly spaced in angle, unlike a normalised lerp


def test_slerp_limits():
    a = unit(V)
    assert np.allclose(inputs.slerp(a, a, 0.3), a, atol=1e-6)
    with pytest.raises(ValueError, match="opposite directions"):
        inputs.slerp(a, -a, 0.5)
    with pytest.raises(ValueError, match=r"steps must be a whole number in \[2, 11\], got 12"):
        inputs.slerp_path(a, a, 12)
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        inputs.slerp(a, a, 1.5)


def test_arithmetic_is_normalised_a_minus_b_plus_c_and_refuses_a_null_result():
    a, b, c = (unit(RNG.standard_normal(EMBED_DIM)) for _ in range(3))
    assert np.allclose(inputs.arithmetic(a, b, c), unit(a - b + c), atol=1e-6)
    with pytest.raises(ValueError, match="A - B \\+ C has no direction"):
        e1, e2 = np.eye(EMBED_DIM)[:2]
        h = math.sqrt(3) / 2  # three unit vectors 120 degrees apart in a plane: a - b + c = 0
        inputs.arithmetic(e1, 0.5 * e1 + h * e2, -0.5 * e1 + h * e2)


def test_noise_of_a_given_size_moves_the_vector_by_the_expected_angle_and_is_seeded():
    e = unit(V)
    v, cos = inputs.add_noise(e, 1.0, seed=3)
    assert math.isclose(cos, float(v @ e), rel_tol=1e-5)
    assert 0.6 < cos < 0.8  # |u| = |e| = 1 and u almost orthogonal to e in 768-d: cos ~ 1/sqrt(2)
    assert np.array_equal(v, inputs.add_noise(e, 1.0, seed=3)[0])
    assert not np.array_equal(v, inputs.add_noise(e, 1.0, seed=4)[0])
    assert inputs.add_noise(e, 0.0)[1] > 0.99999
    with pytest.raises(ValueError, match=r"noise size must be a number in \[0, 2\], got 3"):
        inputs.add_noise(e, 3.0)


@pytest.mark.parametrize("values, message", [
    (None, "the vector is empty"),
    ("abc", r"holds text \('abc'...\), not numbers"),
    ([True] * EMBED_DIM, "holds true/false values, not numbers"),
    ([None] * EMBED_DIM, r"holds 'None' \(NoneType\) at position 0"),
    ([1.0] * 5 + [{"a": 1}] + [1.0] * (EMBED_DIM - 6), r"\(dict\) at position 5"),
    ([10**400] + [0] * (EMBED_DIM - 1), "a whole number of 401 digits at position 0; numbers must stay below about 1.8e308"),
])
def test_vectors_that_are_not_real_numbers_name_what_they_hold(values, message):
    with pytest.raises(ValueError, match=message):
        inputs.to_rows(values, "the vector")


def test_a_json_integer_beyond_int64_is_a_number_like_any_other():
    rows = inputs.to_rows([2**70] + [0] * (EMBED_DIM - 1))
    assert rows.shape == (1, EMBED_DIM) and rows[0, 0] == 1.0
