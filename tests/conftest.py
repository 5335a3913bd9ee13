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


_APP = {}  # the app server process shared by the API and browser tests


def pytest_collection_modifyitems(items):
    """Tests that need the app server run last (stable order otherwise), so that its start-up overlaps the rest."""
    items.sort(key=lambda item: "app_server" in getattr(item, "fixturenames", ()))


def pytest_collection_finish(session):
    """Start `python app.py` as soon as the selected tests are known, when any of them needs it, so
    that its start-up (about 25 s, mostly loading and warming models) overlaps the other tests."""
    if any("app_server" in getattr(item, "fixturenames", ()) for item in session.items):
        _compile_cpu_step()
        _start_app(session.config)


def _compile_cpu_step() -> None:
    """Compile the numba CPU step here first (about 10 s in a fresh clone), so that the app server
    loads it from the on-disk cache instead of compiling it a second time at start-up."""
    import torch

    from decoders import Sampling, get_decoder

    x = torch.nn.functional.normalize(torch.ones(1, 768), dim=1)
    get_decoder("generative").decode(x, Sampling(max_new_tokens=2))


def _start_app(config) -> dict:
    import socket
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    if _APP:
        return _APP
    tmp = Path(tempfile.mkdtemp(prefix="app-server-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _APP.update(url=f"http://127.0.0.1:{port}/", log=tmp / "app.log", db=tmp / "reviews.sqlite",
                uploads=tmp / "uploads", tmp=tmp)
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "DECODER_LAB_REVIEW_DB": str(_APP["db"]),
           "GRADIO_TEMP_DIR": str(_APP["uploads"])}
    _APP["log_file"] = open(_APP["log"], "wb")  # a file, not a pipe: a chatty app must never block on a full pipe
    _APP["proc"] = subprocess.Popen([sys.executable, "app.py"], cwd=Path(__file__).resolve().parent.parent, env=env,
                                    stdout=_APP["log_file"], stderr=subprocess.STDOUT)
    return _APP


def pytest_sessionfinish(session, exitstatus):
    import shutil
    import subprocess

    if _APP:
        _APP["proc"].terminate()
        try:
            _APP["proc"].wait(timeout=30)
        except subprocess.TimeoutExpired:
            _APP["proc"].kill()
        _APP["log_file"].close()
        shutil.rmtree(_APP["tmp"], ignore_errors=True)


@pytest.fixture(scope="session")
def app_server(pytestconfig):
    """`python app.py` on a free local port (started at collection time, see above), with its own
    review database and upload folder. Yields a dict: url, log (path), db (path), uploads (path)."""
    import time
    import urllib.request

    app = _start_app(pytestconfig)
    deadline = time.time() + 240
    while True:
        if app["proc"].poll() is not None:
            raise RuntimeError(f"app exited with {app['proc'].returncode}: {app['log'].read_text()[-3000:]}")
        try:
            urllib.request.urlopen(app["url"], timeout=2)
            break
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"app did not start within 240 s: {app['log'].read_text()[-3000:]}")
            time.sleep(0.5)
    return app
