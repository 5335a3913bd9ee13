"""The running app through gradio_client and raw HTTP: named endpoints only, keyword arguments
with defaults, limits, logs, and the README's two API examples (bad input of every kind: test_fuzz.py)."""
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from decoders import default_decoders

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"decoder", "text", "cos", "bleu", "bertscore", "latency_ms", "params", "row", "sample"}
FAST = ["phrase-bank"]


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server["url"], verbose=False)


def readme_block(marker: str) -> str:
    """The README's ```python block that contains `marker`."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"expected one README python block with {marker!r}, found {len(found)}"
    return found[0]


def test_only_the_three_named_endpoints_are_exposed(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/decode_text", "/decode_vector", "/interpolate"}
    assert not api["unnamed_endpoints"]
    params = [p["parameter_name"] for p in api["named_endpoints"]["/decode_text"]["parameters"]]
    assert params == ["text", "decoders", "temperature", "top_k", "top_p", "max_new_tokens", "num_samples", "seed",
                      "hybrid_budget_ms"]
    assert [p["parameter_has_default"] for p in api["named_endpoints"]["/decode_text"]["parameters"]] == [False] + [True] * 8


def test_decode_text_with_only_a_text_uses_the_default_decoders(client):
    rows = client.predict(text="a small dog barked at the mailman", api_name="/decode_text")
    assert [r["decoder"] for r in rows] == default_decoders()
    for r in rows:
        assert KEYS <= set(r) and r["text"] and -1 <= r["cos"] <= 1 and r["bleu"] is not None and r["latency_ms"] > 0


def test_decode_vector_and_interpolate_by_keyword(client):
    from decoders.encoder import encode

    a, b = encode(["the river flooded the valley", "a red apple"]).tolist()
    rows = client.predict(vector=[a, b], decoders=FAST, api_name="/decode_vector")
    assert [r["row"] for r in rows] == [0, 1] and all(r["bleu"] is None and r["cos"] > 0.5 for r in rows)
    rows = client.predict(text_a="a cat", text_b="a dog", steps=3, decoders=FAST, seed=3, api_name="/interpolate")
    assert [(r["alpha"], r["reference"]) for r in rows] == [(0.0, "A"), (0.5, "A"), (1.0, "B")]


def raw_call(url: str, endpoint: str, body: bytes) -> str:
    """POST to gradio's REST route, then read the event stream; returns the stream's text."""
    base = f"{url}gradio_api/call/{endpoint}"
    req = urllib.request.Request(base, data=body, headers={"Content-Type": "application/json"})
    event = json.load(urllib.request.urlopen(req, timeout=30))["event_id"]
    return urllib.request.urlopen(f"{base}/{event}", timeout=120).read().decode()


@pytest.mark.parametrize("body, message", [   # every other bad input, by client and raw HTTP: test_fuzz.py
    (b'{"data": ["hi"]}', "didn't receive enough input values (needed: 9, got: 1)"),
])
def test_raw_http_errors_carry_the_message_not_null(app_server, body, message):
    stream = raw_call(app_server["url"], "decode_text", body)
    assert "event: error" in stream and '"error": null' not in stream
    assert message in json.loads(stream.split("data: ", 1)[1].splitlines()[0])["error"]


def test_a_good_raw_request_after_the_bad_ones_succeeds(app_server):
    stream = raw_call(app_server["url"], "decode_text", b'{"data": ["a cat", ["phrase-bank"], 0, 0, 1, 16, 1, 0, null]}')
    assert "event: complete" in stream
    assert json.loads(stream.split("data: ", 1)[1].splitlines()[0])[0][0]["decoder"] == "phrase-bank"


def test_an_upload_over_10_mb_is_refused_and_not_kept(app_server):
    boundary = "xyzzy"
    payload = b"\0" * (10 * 2**20 + 1)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.npy\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{app_server['url']}gradio_api/upload", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code == 413 and "maximum allowed size of 10485760 bytes" in e.value.read().decode()
    assert not [p for p in app_server["uploads"].rglob("*") if p.is_file() and p.stat().st_size > 10 * 2**20]


def test_start_up_warms_everything_before_serving_and_user_errors_log_one_line(client, app_server):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError):
        client.predict(text="hi", seed="not-a-seed", decoders=FAST, api_name="/decode_text")
    log = app_server["log"].read_text()
    served = log.index("Running on local URL")
    for step in ["loading encoder all-mpnet-base-v2", *(f"loading decoder {n}" for n in default_decoders()),
                 "warm-up request in"]:
        assert -1 < log.find(step) < served, step
    line = [ln for ln in log.splitlines() if "not-a-seed" in ln]
    assert len(line) == 1 and line[0].endswith("user error in /decode_text: seed must be a whole number in "
                                               "[0, 4294967295], got 'not-a-seed'")
    # the only tracebacks are gradio's own, for a raw call with too few values (its check runs before ours)
    assert log.count("Traceback") == log.count("ValueError: An event handler (decode_text) didn't receive enough")


def test_readme_gradio_client_example_runs_as_written(app_server, capsys):
    code = readme_block("api_name=").replace("http://127.0.0.1:7860/", app_server["url"])
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert [r["decoder"] for r in scope["results"]] == ["phrase-bank", "generative"]
    printed = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("Loaded as API")]
    assert len(printed) == 2 and printed[0].startswith("phrase-bank") and " ms " in printed[0]


def test_readme_in_process_example_gives_the_same_results_as_the_server(client):
    scope = {}
    exec(compile(readme_block("from app import"), "README.md", "exec"), scope)
    local = scope["results"]
    remote = client.predict(text="a small dog barked at the mailman", decoders=["phrase-bank", "generative"],
                            api_name="/decode_text")
    drop = {"latency_ms"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in local] == \
        [{k: v for k, v in r.items() if k not in drop} for r in remote]
