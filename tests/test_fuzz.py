"""Fuzzing the running app (`python app.py` on a free local port, the session's `app_server`).

Every kind of bad input below goes to the named endpoints both through gradio_client and as raw
HTTP (gradio's REST route: a POST, then the event stream); raw HTTP also gets malformed calls, and
the browser's own route (`/gradio_api/upload`, then the queue) gets bad files. Each must come
back as an error that names the input and its limit, and a good request right after must still
succeed. The server logs one line per user error, not a traceback.
"""
import io
import json
import re
import socket
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest

D = 768
FAST = ["phrase-bank"]
GOOD_VECTOR = np.random.default_rng(0).standard_normal(D).round(4).tolist()
LONG = "x" * 100_000

# (endpoint, keyword arguments, pattern the error message must match: the input's name and its limit)
KINDS = [
    ("/decode_text", dict(text=""), "text is empty"),
    ("/decode_text", dict(text=" \n\t "), "text is empty"),
    ("/decode_text", dict(text=None), "text is empty"),
    ("/decode_text", dict(text=123), "text must be a string, got int"),
    ("/decode_text", dict(text=["a", "b"]), "text must be a string, got list"),
    ("/decode_text", dict(text=LONG), "text has 100,000 characters; the limit is 2,000"),
    ("/decode_text", dict(text="hi", decoders=["nope"]), r"unknown decoder\(s\) 'nope'; valid decoders: phrase-bank"),
    ("/decode_text", dict(text="hi", decoders=[]), "choose at least one decoder; valid decoders:"),
    ("/decode_text", dict(text="hi", decoders=7), "decoders must be a list of names, got int"),
    ("/decode_text", dict(text="hi", decoders=[["phrase-bank"]]), r"unknown decoder\(s\) \['phrase-bank'\]"),
    ("/decode_text", dict(text="hi", temperature="nan"), r"temperature must be a number in \[0, 2\], got nan"),
    ("/decode_text", dict(text="hi", temperature="inf"), r"temperature must be a number in \[0, 2\], got inf"),
    ("/decode_text", dict(text="hi", temperature=-0.5), r"temperature must be a number in \[0, 2\], got -0.5"),
    ("/decode_text", dict(text="hi", temperature={"t": 1}), r"temperature must be a number in \[0, 2\], got dict"),
    ("/decode_text", dict(text="hi", top_k=2.5), r"top_k must be a whole number in \[0, 200\], got 2.5"),
    ("/decode_text", dict(text="hi", top_k=201), r"top_k must be a whole number in \[0, 200\], got 201"),
    ("/decode_text", dict(text="hi", top_p=0), r"top_p must be a number in \[0.01, 1\], got 0"),
    ("/decode_text", dict(text="hi", top_p=1.5), r"top_p must be a number in \[0.01, 1\], got 1.5"),
    ("/decode_text", dict(text="hi", max_new_tokens=0), r"max_new_tokens must be a whole number in \[1, 63\], got 0"),
    ("/decode_text", dict(text="hi", max_new_tokens=10**6), r"max_new_tokens must be a whole number in \[1, 63\]"),
    ("/decode_text", dict(text="hi", num_samples=9), r"num_samples must be a whole number in \[1, 8\], got 9"),
    ("/decode_text", dict(text="hi", num_samples=True), r"num_samples must be a whole number in \[1, 8\], got True"),
    ("/decode_text", dict(text="hi", seed="abc"), r"seed must be a whole number in \[0, 4294967295\], got 'abc'"),
    ("/decode_text", dict(text="hi", seed=2**80), r"seed must be a whole number in \[0, 4294967295\], got 12089"),
    ("/decode_text", dict(text="hi", seed=-1), r"seed must be a whole number in \[0, 4294967295\], got -1"),
    ("/decode_text", dict(text="hi", seed=1.5), r"seed must be a whole number in \[0, 4294967295\], got 1.5"),
    ("/decode_text", dict(text="hi", hybrid_budget_ms=20_000), r"hybrid_budget_ms must be a number in \[100, 10000\]"),
    ("/decode_text", dict(text="hi", hybrid_budget_ms="soon"), r"hybrid_budget_ms must be a number .*got 'soon'"),
    ("/decode_vector", dict(vector=[]), "vector is empty"),
    ("/decode_vector", dict(vector=None), "vector is empty"),
    ("/decode_vector", dict(vector=[0.0] * D), r"all-zero vector\(s\) in row\(s\) \[0\]"),
    ("/decode_vector", dict(vector=[GOOD_VECTOR, [0] * D]), r"all-zero vector\(s\) in row\(s\) \[1\]"),
    ("/decode_vector", dict(vector=[0.1] * (D - 1)), "vector has 767 numbers per row; expected 768"),
    ("/decode_vector", dict(vector=[GOOD_VECTOR] * 17), "vector has 17 rows; at most 16"),
    ("/decode_vector", dict(vector=[GOOD_VECTOR, GOOD_VECTOR[:10]]), "vector has rows of different lengths"),
    ("/decode_vector", dict(vector=[[GOOD_VECTOR]]), r"vector has shape \(1, 1, 768\); expected \[768\] or"),
    ("/decode_vector", dict(vector=["0.1"] * D), r"vector holds text \('0.1'...\), not numbers"),
    ("/decode_vector", dict(vector="0.1, 0.2"), r"vector holds text \('0.1, 0.2'...\), not numbers"),
    ("/decode_vector", dict(vector=[True] * D), "vector holds true/false values, not numbers"),
    ("/decode_vector", dict(vector=GOOD_VECTOR[:5] + [None] + GOOD_VECTOR[6:]), r"'None' \(NoneType\) at position 5"),
    ("/decode_vector", dict(vector={"embedding": GOOD_VECTOR}), r"vector holds .* \(dict\) at position 0"),
    ("/decode_vector", dict(vector=[10**400] + GOOD_VECTOR[1:]), "a whole number of 401 digits at position 0"),
    ("/decode_vector", dict(vector=GOOD_VECTOR, top_k=-3), r"top_k must be a whole number in \[0, 200\], got -3"),
    ("/interpolate", dict(text_a="a cat", text_b="a dog", steps=40), r"steps must be a whole number in \[2, 11\], got 40"),
    ("/interpolate", dict(text_a="a cat", text_b="a dog", steps=1), r"steps must be a whole number in \[2, 11\], got 1"),
    ("/interpolate", dict(text_a="a cat", text_b="a dog", steps="many"), r"steps must be .*got 'many'"),
    ("/interpolate", dict(text_a="a cat", text_b=" "), "text_b is empty"),
    ("/interpolate", dict(text_a=None, text_b="a dog"), "text_a is empty"),
    ("/interpolate", dict(text_a="y" * 5000, text_b="a dog"), "text_a has 5,000 characters; the limit is 2,000"),
    ("/interpolate", dict(text_a="a cat", text_b="a dog", num_samples=0), r"num_samples must be a whole number in \[1, 8\]"),
]
# gradio_client cannot send these at all (its JSON encoder refuses a lone surrogate, NaN and inf): raw HTTP only
RAW_ONLY = [
    ("/decode_text", dict(text="caf\ud800"), r"text has an invalid character U\+D800 at position 3"),
    ("/decode_text", dict(text="hi", temperature=float("nan")), r"temperature must be a number in \[0, 2\], got nan"),
    ("/decode_vector", dict(vector=[float("nan")] + GOOD_VECTOR[1:]), r"vector: .*NaN or inf in row\(s\) \[0\]"),
    ("/decode_vector", dict(vector=[float("inf")] + GOOD_VECTOR[1:]), r"vector: .*NaN or inf in row\(s\) \[0\]"),
]
IDS = [f"{i:02d}{e.replace('/', '-')}-{'-'.join(k)}" for i, (e, k, _) in enumerate(KINDS)]
GOOD = {"/decode_text": dict(text="a small dog barked at the mailman"), "/decode_vector": dict(vector=GOOD_VECTOR),
        "/interpolate": dict(text_a="a cat", text_b="a dog", steps=2)}


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server["url"], verbose=False)


@pytest.fixture(scope="module")
def params(client):
    """endpoint -> [(parameter name, default)] in order, from the server's own API description."""
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    return {e: [(p["parameter_name"], p["parameter_default"] if p["parameter_has_default"] else None)
                for p in api[e]["parameters"]] for e in GOOD}


@pytest.fixture
def server_log(app_server):
    """() -> what the server logged since the test began."""
    start = app_server["log"].stat().st_size

    def since() -> str:
        with open(app_server["log"], "rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace")

    return since


def raw_post(url: str, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, str]:
    req = urllib.request.Request(url + path, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def raw_call(url: str, endpoint: str, data) -> tuple[str, object]:
    """("complete", result) or ("error", message) from gradio's REST route for a named endpoint."""
    status, body = raw_post(url, f"gradio_api/call{endpoint}", json.dumps({"data": data}).encode())
    assert status == 200, body
    event = json.loads(body)["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call{endpoint}/{event}", timeout=60) as r:
        stream = r.read().decode()
    kind = re.search(r"^event: (\w+)$", stream, re.M).group(1)
    payload = json.loads(stream.split("data: ", 1)[1].splitlines()[0])
    return kind, (payload["error"] if kind == "error" else payload)


def positional(params, endpoint: str, kwargs: dict) -> list:
    """The raw route's positional data: every parameter, its default where the call does not set it."""
    given = {"decoders": FAST, **kwargs}
    return [given.get(name, default) for name, default in params[endpoint]]


def check_good(client, app_server, params, endpoint: str, via_client: bool):
    if via_client:
        rows = client.predict(**GOOD[endpoint], decoders=FAST, api_name=endpoint)
    else:
        kind, out = raw_call(app_server["url"], endpoint, positional(params, endpoint, GOOD[endpoint]))
        assert kind == "complete", out
        rows = out[0]
    assert rows and all(r["decoder"] == "phrase-bank" and r["text"] and -1 <= r["cos"] <= 1 for r in rows)


@pytest.mark.parametrize("i", range(len(KINDS)), ids=IDS)
def test_each_bad_input_gets_a_readable_error_through_client_and_raw_http(client, app_server, params, server_log, i):
    from gradio_client.exceptions import AppError

    endpoint, kwargs, message = KINDS[i]
    with pytest.raises(AppError) as e:
        client.predict(**{"decoders": FAST, **kwargs}, api_name=endpoint)
    assert re.search(message, str(e.value)), str(e.value)
    kind, out = raw_call(app_server["url"], endpoint, positional(params, endpoint, kwargs))
    assert kind == "error" and re.search(message, out), out
    log = server_log()
    assert log.count(f"user error in {endpoint}: ") == 2 and "Traceback" not in log, log[-2000:]  # one line each
    check_good(client, app_server, params, endpoint, via_client=i % 4 == 0)  # every 4th through the client


@pytest.mark.parametrize("endpoint, kwargs, message", RAW_ONLY, ids=["lone-surrogate", "nan", "vector-nan", "vector-inf"])
def test_what_the_client_cannot_send_gets_a_readable_error_over_raw_http(app_server, params, server_log, endpoint,
                                                                         kwargs, message):
    kind, out = raw_call(app_server["url"], endpoint, positional(params, endpoint, kwargs))
    assert kind == "error" and re.search(message, out), out
    assert "Traceback" not in server_log()
    check_good(None, app_server, params, endpoint, via_client=False)


# ----------------------------------------------------------------------------- malformed raw calls

@pytest.mark.parametrize("path, body, status, message", [
    ("gradio_api/call/decode_text", b"{not json", 422, "JSON decode error"),
    ("gradio_api/call/decode_text", b'{"data": "hi"}', 422, "Input should be a valid list"),
    ("gradio_api/call/decode_text", b'{"values": ["hi"]}', 422, r'"loc":\["body","data"\],"msg":"Field required"'),
    ("gradio_api/call/decode_text", b"", 422, "Field required"),
    ("gradio_api/call/nope", b'{"data": ["hi"]}', 404, "nope.*the API's endpoints are /decode_text, /decode_vector"),
], ids=["not-json", "data-not-a-list", "no-data", "empty-body", "unknown-endpoint"])
def test_malformed_raw_calls_are_refused_with_a_status_and_a_reason(app_server, params, server_log, path, body, status,
                                                                    message):
    got, text = raw_post(app_server["url"], path, body)
    assert got == status and re.search(message, text), (got, text[:300])
    assert "Traceback" not in server_log()
    check_good(None, app_server, params, "/decode_vector", False)


def test_a_request_body_over_the_limit_is_refused_before_it_is_read(app_server, params, server_log):
    """Any body over 11 MB (the 10 MB upload limit plus form fields): 413 as soon as the headers arrive."""
    host, port = app_server["url"].split("//")[1].strip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"POST /gradio_api/call/decode_vector HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {12 * 2**20}\r\nConnection: close\r\n\r\n".encode() + b'{"data": [' + b"0.5, " * 1000)
        reply = b"".join(iter(lambda: s.recv(4096), b"")).decode()  # until the server closes
    assert reply.startswith("HTTP/1.1 413 ") and reply.endswith("Content Too Large"), reply
    assert "Traceback" not in server_log()
    check_good(None, app_server, params, "/decode_vector", False)


def test_too_few_values_on_the_raw_route_are_counted_in_the_message(app_server, params, server_log):
    kind, out = raw_call(app_server["url"], "/decode_text", ["hi"])
    assert kind == "error" and "didn't receive enough input values (needed: 9, got: 1)" in out
    assert server_log().count("Traceback") == 1  # gradio's own: its check runs before the handler
    check_good(None, app_server, params, "/decode_text", False)


# ----------------------------------------------------------------------------- uploads, the browser's route

def npy(arr, **kw) -> bytes:
    f = io.BytesIO()
    np.save(f, arr, **kw)
    return f.getvalue()


def upload(url: str, name: str, payload: bytes) -> tuple[int, str]:
    b = uuid.uuid4().hex
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{b}--\r\n".encode()
    return raw_post(url, "gradio_api/upload", body, f"multipart/form-data; boundary={b}")


@pytest.fixture(scope="module")
def ui(app_server):
    """call(handler name, data) -> (success, output or error message) through the queue, as the page calls it."""
    config = json.load(urllib.request.urlopen(app_server["url"] + "config", timeout=30))
    index = {d["api_name"]: i for i, d in enumerate(config["dependencies"]) if d.get("api_name")}

    def call(handler: str, data: list) -> tuple[bool, object]:
        session = uuid.uuid4().hex[:12]
        status, body = raw_post(app_server["url"], "gradio_api/queue/join", json.dumps(
            {"data": data, "fn_index": index[handler], "session_hash": session, "event_data": None}).encode())
        assert status == 200, body
        with urllib.request.urlopen(f"{app_server['url']}gradio_api/queue/data?session_hash={session}", timeout=60) as r:
            for line in r:
                msg = json.loads(line[5:]) if line.startswith(b"data:") else {}
                if msg.get("msg") == "process_completed":
                    out = msg["output"]
                    return msg["success"], (out["data"] if msg["success"] else out["error"])
        raise AssertionError("the event stream ended without a result")

    return call


SETTINGS = [FAST, 0, 0, 1, 32, 1, 0, 1500]  # decoders, temperature, top-k, top-p, max tokens, samples, seed, budget
GOOD_FILE = ("good.npy", npy(np.stack([GOOD_VECTOR, GOOD_VECTOR[::-1]]).astype(np.float32)))


def file_data(path: str, name: str) -> dict:
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


@pytest.mark.parametrize("name, payload, message", [
    ("empty.npy", npy(np.zeros((0, D), np.float32)), r"empty.npy is empty \(shape \(0, 768\)\)"),
    ("object.json", json.dumps({"embedding": GOOD_VECTOR}).encode(), "object.json holds a JSON dict; expected a list"),
    ("complex.npy", npy(np.ones(D, np.complex64)), "complex.npy holds complex numbers"),
    ("rows.npy", npy(np.ones((17, D), np.float32)), "rows.npy has 17 rows; at most 16 are decoded"),
    ("pickle.npy", npy(np.array([{"a": 1}], dtype=object), allow_pickle=True), "pickle.npy could not be read"),
    ("garbage.npy", b"\x93NUMPY garbage", "garbage.npy could not be read"),
    ("zero-bytes.npy", b"", "zero-bytes.npy could not be read"),
    ("latin1.txt", "0,5 ".encode("latin-1") + b"\xe9", "latin1.txt is not UTF-8 text"),
    ("broken.json", b"[0.1, 0.2,", "broken.json is not valid JSON"),
    ("words.csv", b"one,two,three", "words.csv: 'one' is not a number"),
    ("nan.txt", b"nan " * D, r"nan.txt: .*NaN or inf in row\(s\) \[0\]"),
    ("zeros.csv", b",".join([b"0"] * D), r"zeros.csv: .*all-zero vector\(s\) in row\(s\) \[0\]"),
    ("vector.exe", b"MZ", r"Invalid file type|vector.exe: unsupported file type .exe"),
], ids=lambda v: v if isinstance(v, str) and "." in v and len(v) < 20 else "")
def test_bad_uploads_through_the_page_route_name_the_file_and_the_problem(app_server, ui, server_log, name, payload,
                                                                          message):
    status, body = upload(app_server["url"], name, payload)
    assert status == 200, body
    ok, out = ui("check_vector", ["", file_data(json.loads(body)[0], name), *SETTINGS])
    assert not ok and re.search(message, out), out
    log = server_log()
    gradio_own = "Invalid file type" in out  # gr.File checks the suffix (and logs a traceback) before our handler
    assert log.count("user error in vector: ") == 1 - gradio_own and log.count("Traceback") == gradio_own, log[-2000:]
    status, body = upload(app_server["url"], *GOOD_FILE)
    ok, out = ui("check_vector", ["", file_data(json.loads(body)[0], GOOD_FILE[0]), *SETTINGS])
    assert ok, out


def test_an_upload_over_the_limit_is_refused_and_a_path_not_uploaded_is_not_read(app_server, ui, server_log):
    status, body = upload(app_server["url"], "big.npy", b"\0" * (10 * 2**20 + 1))
    assert status == 413 and "maximum allowed size of 10485760 bytes" in body
    ok, out = ui("check_vector", ["", file_data("/etc/passwd", "passwd.txt"), *SETTINGS])
    assert not ok and "Cannot move /etc/passwd to the gradio cache dir because it was not uploaded by a user" in out
    assert server_log().count("Traceback") == 1  # gradio's own, for the path it refuses before the handler
    status, body = upload(app_server["url"], *GOOD_FILE)
    ok, out = ui("show_vector", ["", file_data(json.loads(body)[0], GOOD_FILE[0]), *SETTINGS])
    assert ok and out[0].count('class="out"') == 2, out  # both rows decoded


@pytest.mark.parametrize("handler, data, message", [
    ("check_compare", ["caf\ud800", *SETTINGS], r"text has an invalid character U\+D800"),
    ("check_compare", ["hi", FAST, 0, 0, 1, 32, 1, 1e30, 1500], r"seed must be a whole number in \[0, 4294967295\]"),
    ("check_vector", ["1, 2, 3", None, *SETTINGS], "the pasted vector has 3 numbers per row; expected 768"),
    ("check_vector", ["1" * 400_000, None, *SETTINGS], "the pasted vector has 400,000 characters; the limit is"),
    ("check_noise", ["hi", 5, 0, *SETTINGS], "Value 5 is greater than maximum value 2.0"),  # gr.Slider's own check
    ("check_noise", ["hi", 0.5, -2, *SETTINGS], r"noise seed must be a whole number in \[0, 4294967295\], got -2"),
    ("check_arithmetic", ["a king", "", "a woman", *SETTINGS], "B is empty"),
    ("check_sweep", ["a cat", "a dog", 12, *SETTINGS], "Value 12 is greater than maximum value 11"),  # gr.Slider's
    ("check_sweep", ["a cat", "a dog", 2.5, *SETTINGS], r"steps must be a whole number in \[2, 11\], got 2.5"),
    ("check_review_load", [" ", "test", 5, None, *SETTINGS], "the reviewer name is empty"),
    ("check_review_load", ["ann", "test", 501, None, *SETTINGS], r"inputs to review must be a whole number in \[1, 500\]"),
    ("check_review_load", ["ann", "train", 5, None, *SETTINGS],  # gr.Dropdown's own check
     r"Value: train is not in the list of choices: \['dev', 'test'"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("check_") else "")
def test_the_page_handlers_refuse_bad_values_by_name(app_server, ui, server_log, handler, data, message):
    ok, out = ui(handler, data)
    assert not ok and re.search(message, out), out
    log = server_log()
    gradio_own = out.startswith("Value")  # sliders and dropdowns are checked by gradio (with a traceback) first
    assert log.count("user error in ") == 1 - gradio_own and log.count("Traceback") == gradio_own, log[-2000:]
    ok, out = ui("check_compare", ["a cat", *SETTINGS])
    assert ok


def test_a_review_file_that_is_not_text_or_too_long_is_refused(app_server, ui, server_log):
    for name, payload, message in [("r.txt", b"\xff\xfe\x00bad", "r.txt is not UTF-8 text"),
                                   ("long.txt", b"a line\n" * 501, "long.txt has 501 lines; the limit is 500")]:
        status, body = upload(app_server["url"], name, payload)
        ok, out = ui("check_review_load", ["ann", "test", 5, file_data(json.loads(body)[0], name), *SETTINGS])
        assert not ok and message in out, out
    status, body = upload(app_server["url"], "ok.txt", b"a cat\na dog\n")
    ok, out = ui("check_review_load", ["ann", "test", 5, file_data(json.loads(body)[0], "ok.txt"), *SETTINGS])
    assert ok, out
    assert "Traceback" not in server_log()
