"""Offline, CPU-only test settings and shared fixtures."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")   # tests never reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# OpenMP threads sleep when idle instead of spinning: the tests, the app server and the browser
# share two cores, and spinning threads measured ~25 s of the suite's CPU time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

# CI machine: 2 cores, shared; one thread per pytest-xdist worker
torch.set_num_threads(int(os.environ.get("TEST_THREADS", "1" if "PYTEST_XDIST_WORKER" in os.environ else "2")))


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
_COMPILE = []  # the background process compiling the CPU decode step, when one runs
APP_KEYS = ("url", "log", "db", "uploads")  # what the tests get (paths as Path objects)


def _mentions_app_server(config) -> bool:
    """Whether any test file this run names (or finds under the folders it names) uses the app
    server; decided before collection from the files' text, so the server can start right away."""
    from pathlib import Path

    for arg in config.args or [str(config.rootpath)]:
        path = Path(arg.split("::")[0])
        files = path.rglob("test_*.py") if path.is_dir() else [path] if path.suffix == ".py" else []
        if any("app_server" in f.read_text(errors="replace") for f in files):
            return True
    return False


def pytest_configure(config):
    """Start `python app.py` before collection when this run may need it, so that its start-up
    (imports, models, warm-up: about 25 s of CPU) overlaps collection and the tests that run first.
    Under pytest-xdist the controller starts it and hands it to the workers (below)."""
    if not hasattr(config, "workerinput"):
        _compile_cpu_step()
        if _mentions_app_server(config):
            _start_app(config)


def _compile_cpu_step() -> None:
    """In a fresh clone numba has no cache yet for the CPU decode step (decoders/transformer.py):
    compile it once, for both decoder kinds, in a background process started now, so that the app
    server and the test workers, which need it some 15 s later, load it from decoders/__pycache__
    instead of each compiling it (about 10 s of CPU per kind and process)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if list((root / "decoders" / "__pycache__").glob("transformer._cpu_step-*.nbi")):
        return
    code = ("import torch; from decoders import Sampling, get_decoder; "
            "x = torch.nn.functional.normalize(torch.ones(1, 768), dim=1); "
            "[get_decoder(n).decode(x, Sampling(max_new_tokens=2)) for n in ('generative', 'ret')]")
    _COMPILE.append(subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist: every worker gets the controller's server."""
    if _APP:
        node.workerinput["app_server"] = {k: str(_APP[k]) for k in APP_KEYS}


def pytest_itemcollected(item):
    """Under `--dist loadgroup` the tests that need the app server all go to one worker, since
    some of them read the server's log. Marked here, as each test is collected, not in
    pytest_collection_modifyitems: pytest-xdist reads the mark in its own modifyitems hook, and
    the order of two such hooks is not fixed (pytest 9.2 with pluggy 1.7 ran xdist's first, and
    the group never formed)."""
    if "app_server" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.xdist_group("app_server"))


def pytest_collection_modifyitems(config, items):
    """Tests that need the app server run last (stable order otherwise), so that its start-up
    overlaps the rest."""
    items.sort(key=lambda item: "app_server" in getattr(item, "fixturenames", ()))


def pytest_collection_finish(session):
    """Stop a server started for nothing (a -k or -m that selected no test needing it)."""
    if _APP and not any("app_server" in getattr(item, "fixturenames", ()) for item in session.items):
        _stop_app()


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
    _stop_app()
    for proc in _COMPILE:
        proc.wait()


def _stop_app() -> None:
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
        _APP.clear()


def _check_the_group_formed(session) -> None:
    """Fail, naming the cause, when `--dist loadgroup` did not put the app server's tests in one
    worker: pytest-xdist 3.8 groups by appending "@group" to `item._nodeid`, which pytest 9.2 no
    longer reads (requirements.txt pins pytest below 9.2). Without the group those tests run in
    both workers at once and fail in ways that hide the cause (log counts, a browser wait)."""
    lost = [item.nodeid for item in session.items
            if "app_server" in getattr(item, "fixturenames", ()) and not item.nodeid.endswith("@app_server")]
    if session.config.getvalue("loadgroup") and lost:
        import xdist

        pytest.fail(f"pytest {pytest.__version__} with pytest-xdist {xdist.__version__}: --dist loadgroup did not "
                    f"group the {len(lost)} tests that share the app server ({lost[0]} has no '@app_server'); "
                    f"install requirements.txt's pytest, or run them with -n 0", pytrace=False)


@pytest.fixture(scope="session")
def app_server(pytestconfig, request):
    """`python app.py` on a free local port (started before collection, see above; under xdist by the
    controller), with its own review database and upload folder. Returns a dict: url, log (path),
    db (path), uploads (path), once the server answers."""
    import time
    import urllib.request
    from pathlib import Path

    if hasattr(pytestconfig, "workerinput"):
        _check_the_group_formed(request.session)
        given = pytestconfig.workerinput.get("app_server")
        if given is None:
            raise RuntimeError("the xdist controller did not start the app server")
        app, proc = {k: Path(v) if k != "url" else v for k, v in given.items()}, None
    else:
        proc = _start_app(pytestconfig)["proc"]
        app = {k: _APP[k] for k in APP_KEYS}
    deadline = time.time() + 240
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}: {app['log'].read_text()[-3000:]}")
        try:
            urllib.request.urlopen(app["url"], timeout=2)
            break
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"app did not start within 240 s: {app['log'].read_text()[-3000:]}")
            time.sleep(0.5)
    return app
