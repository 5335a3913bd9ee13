"""Offline, CPU-only test settings and shared fixtures."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")   # tests never reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("TEST_THREADS", "2")))  # CI machine: 2 cores, shared


@pytest.fixture(scope="session")
def encoder():
    """The real all-mpnet-base-v2 SentenceTransformer, loaded once from the installed packages."""
    from decoders.encoder import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def embed(encoder):
    """texts -> unit float32 [N, 768] with the session's encoder."""
    from decoders.encoder import encode

    return lambda texts: encode(list(texts))


@pytest.fixture(scope="session")
def bank():
    """The committed phrase bank (assets/phrase_bank), loaded once."""
    from decoders import get_decoder

    return get_decoder("phrase-bank")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """`python app.py` on a free local port, started once for the API and browser tests, with its own
    review database and upload folder. Yields a dict: url, log (path), db (path), uploads (path)."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    tmp = tmp_path_factory.mktemp("app")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    info = {"url": f"http://127.0.0.1:{port}/", "log": tmp / "app.log", "db": tmp / "reviews.sqlite",
            "uploads": tmp / "uploads"}
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "DECODER_LAB_REVIEW_DB": str(info["db"]),
           "GRADIO_TEMP_DIR": str(info["uploads"])}
    log = open(info["log"], "wb")  # a file, not a pipe: a chatty app must never block on a full pipe
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited with {proc.returncode}: {info['log'].read_text()[-3000:]}")
            try:
                urllib.request.urlopen(info["url"], timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"app did not start within 240 s: {info['log'].read_text()[-3000:]}")
                time.sleep(0.5)
        yield info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
