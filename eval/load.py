"""Load test of the app on this machine: N clients, each sending M requests one after another to
/decode_text over loopback HTTP, all at once; then failures, queue rejections, latency and the
server's memory.

    python -m eval.load --clients 32 --requests 10                       # starts `python app.py` itself
    python -m eval.load --clients 32 --requests 10 --decoders phrase-bank,generative --out assets/results/load
    python -m eval.load --url http://127.0.0.1:7860/ --clients 4 --requests 2   # an app already running here

Bounded: clients x requests requests at most, each given --request-timeout seconds, the whole run
--max-seconds (requests not sent by then are counted, not sent). Only loopback addresses are
accepted. The client side is stdlib threads and urllib (no torch), so it takes little of the CPU
it shares with the server.

Each request is gradio's REST call (POST /gradio_api/call/decode_text, then its event stream);
latency runs from the POST to the last event, so it includes the wait in the app's queue. A
request is a failure unless it completes with one result per requested decoder and none of them
reports an error; a POST answered 503 ("The app is busy, try again in a minute (Queue is full ...)")
is a queue rejection (the app's queue holds QUEUE_SIZE waiting requests), counted apart, not retried.

Memory: the resident set size (RSS) of the server process (and its children), read with psutil
before any request, after the warm-up (--warmup requests, sent by up to --clients threads at
once, so the server's threads and buffers are warm too), every 0.5 s during the run (peak, and
the RSS once 10%, 25%, 50%, 75% and 100% of the requests were answered: a leak keeps climbing,
warm-up levels off) and at the end. Growth is end / after warm-up - 1.

Writes <out>/load.json (settings, numbers, environment) and <out>/requests.csv (one row per request).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TEXTS = ROOT / "assets" / "corpus" / "wordnet.tsv.gz"  # the request texts: WordNet dev sentences, in order


def sentences(n: int) -> list[str]:
    """The first n dev sentences of the WordNet corpus file (split, source, text per line)."""
    out = []
    with gzip.open(TEXTS, "rt", encoding="utf-8") as f:
        next(f)
        for line in f:
            split, _, text = line.rstrip("\n").split("\t", 2)
            if split == "dev":
                out.append(text)
                if len(out) == n:
                    break
    return out


def check_loopback(url: str) -> str:
    host = urllib.parse.urlparse(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"--url must point at this machine ({', '.join(sorted(LOOPBACK))}), got host {host!r}")
    return url if url.endswith("/") else url + "/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, queue_size: int | None, tmp: Path, timeout_s: float) -> tuple[subprocess.Popen, str, Path]:
    """`python app.py` on 127.0.0.1:port with its own review database and upload folder; returns once it serves."""
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "DECODER_LAB_REVIEW_DB": str(tmp / "reviews.sqlite"),
           "GRADIO_TEMP_DIR": str(tmp / "uploads")}
    if queue_size is not None:
        env["QUEUE_SIZE"] = str(queue_size)
    log = tmp / "app.log"
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + timeout_s
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url, log
        except OSError:
            if time.time() > deadline:
                proc.kill()
                raise SystemExit(f"the app did not serve within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


def server_process(url: str) -> psutil.Process:
    """The process listening on the URL's port (for an app this tool did not start)."""
    port = urllib.parse.urlparse(url).port or 80
    for c in psutil.net_connections(kind="tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid:
            return psutil.Process(c.pid)
    raise SystemExit(f"no process of this user listens on port {port}; is the app running at {url}?")


def rss_mb(proc: psutil.Process) -> float:
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def rss_kinds_mb(proc: psutil.Process) -> dict | None:
    """The server's resident memory split as Linux counts it: anonymous (heap: a leak shows here) and
    file-backed (mapped files: libraries, and weights left on a mapping grow as they are read); None off Linux."""
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in ("RssAnon", "RssFile")}
    except OSError:
        return None
    return {"anon_mb": round(kb["RssAnon"] / 1024, 1), "file_mb": round(kb["RssFile"] / 1024, 1)}


def call(url: str, text: str, decoders: list[str] | None, timeout_s: float, expect: list[str] | None = None) -> dict:
    """One /decode_text request over raw HTTP: {status, latency_s, error, decoders} (status: ok, failed,
    rejected). `decoders` None asks for the app's default set; `expect` is the list the answer must name."""
    body = json.dumps({"data": [text, decoders, 0, 0, 1, 32, 1, 0, None]}).encode()
    t0 = time.perf_counter()
    base = f"{url}gradio_api/call/decode_text"

    def result(status, error=None, got=None):
        return {"status": status, "latency_s": round(time.perf_counter() - t0, 4), "error": error, "decoders": got}

    try:
        req = urllib.request.Request(base, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            event = json.load(r)["event_id"]
        with urllib.request.urlopen(f"{base}/{event}", timeout=timeout_s) as r:
            stream = r.read().decode()
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:300]
        return result("rejected" if e.code == 503 and "Queue is full" in detail else "failed",
                      f"HTTP {e.code}: {detail}")
    except (OSError, ValueError) as e:  # connection refused or reset, timeout, a body that is not JSON
        return result("failed", f"{type(e).__name__}: {e}")
    if "event: complete" not in stream:
        return result("failed", stream[-300:])
    rows = json.loads(stream.split("event: complete", 1)[1].split("data: ", 1)[1].splitlines()[0])[0]
    errors = [f"{r['decoder']}: {r['error']}" for r in rows if r.get("error")]
    got = [r["decoder"] for r in rows]
    expect = expect or decoders
    if errors or not got or (expect is not None and got != expect):
        return result("failed", "; ".join(errors) or f"decoders {got}, expected {expect}", got)
    return result("ok", None, got)


def percentile(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=32, help="clients sending at once (1 to 256)")
    p.add_argument("--requests", type=int, default=10, help="requests per client, one after another (1 to 1000)")
    p.add_argument("--decoders", default="default",
                   help="comma-separated decoders per request, or 'default' (the app's default set)")
    p.add_argument("--url", default=None, help="an app already running on this machine (default: start one)")
    p.add_argument("--queue-size", type=int, default=None, help="the started app's queue size (QUEUE_SIZE; default 64)")
    p.add_argument("--warmup", type=int, default=32,
                   help="requests before the measured run, sent by up to --clients threads at once")
    p.add_argument("--request-timeout", type=float, default=300, help="seconds for one request")
    p.add_argument("--max-seconds", type=float, default=900, help="the whole run; later requests are not sent")
    p.add_argument("--start-timeout", type=float, default=300, help="seconds for a started app to serve")
    p.add_argument("--out", type=Path, default=None, help="write load.json and requests.csv here")
    a = p.parse_args(argv)
    if not (1 <= a.clients <= 256 and 1 <= a.requests <= 1000 and a.warmup >= 0 and a.max_seconds > 0):
        p.error("--clients must be 1 to 256, --requests 1 to 1000, --warmup >= 0, --max-seconds > 0")
    # None: the app's default set (sent as null), learned from the warm-up's answer; this client imports no torch
    decoders = None if a.decoders == "default" else [d.strip() for d in a.decoders.split(",") if d.strip()]
    if decoders is None and a.warmup < 1:
        p.error("--decoders default needs --warmup >= 1 (the warm-up's answer names the default decoders)")

    tmp = Path(tempfile.mkdtemp(prefix="decoder-lab-load-"))
    started = None
    if a.url:
        url = check_loopback(a.url)
        server = server_process(url)
    else:
        t = time.time()
        started, url, app_log = start_app(free_port(), a.queue_size, tmp, a.start_timeout)
        server = psutil.Process(started.pid)
        print(f"started python app.py at {url} in {time.time() - t:.1f} s", file=sys.stderr)
    code = 1
    try:
        code = run(a, url, server, decoders, argv if argv is not None else sys.argv[1:])
        return code
    finally:
        if started is not None:
            started.terminate()
            try:
                started.wait(timeout=30)
            except subprocess.TimeoutExpired:
                started.kill()
        if code == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        elif started is not None:
            print(f"the app's log is kept in {app_log}", file=sys.stderr)


def warm_up(url: str, texts: list[str], decoders, timeout_s: float, expect, threads: int) -> list[dict]:
    """Send `texts` with up to `threads` requests in flight; exits unless every one succeeds."""
    with ThreadPoolExecutor(max(1, min(threads, len(texts)))) as pool:
        out = list(pool.map(lambda t: call(url, t, decoders, timeout_s, expect), texts))
    bad = [r for r in out if r["status"] != "ok"]
    if bad:
        raise SystemExit(f"{len(bad)} of {len(out)} warm-up requests did not succeed, e.g. {bad[0]}")
    return out


def run(a, url: str, server: psutil.Process, decoders: list[str], argv: list[str]) -> int:
    texts = sentences(a.clients * a.requests + a.warmup)
    rss = {"start_mb": round(rss_mb(server), 1)}
    expect = decoders
    if a.warmup:  # one request first: it names the default decoders the others must answer with
        expect = warm_up(url, texts[:1], decoders, a.request_timeout, expect, 1)[0]["decoders"]
        warm_up(url, texts[1:a.warmup], decoders, a.request_timeout, expect, a.clients)
    rss["after_warmup_mb"] = round(rss_mb(server), 1)
    kinds = {"after_warmup": rss_kinds_mb(server)}

    results: list[dict] = []
    lock = threading.Lock()
    t_start = time.perf_counter()
    deadline = t_start + a.max_seconds
    done = threading.Event()
    timeline: list[tuple[float, int, float]] = []   # (seconds, requests answered, RSS MB)

    def sample_memory():
        while not done.wait(0.5):
            try:
                timeline.append((time.perf_counter() - t_start, len(results), rss_mb(server)))
            except psutil.NoSuchProcess:
                return

    def client(c: int):
        for k in range(a.requests):
            text = texts[a.warmup + c * a.requests + k]
            if time.perf_counter() > deadline:
                r = {"status": "not sent", "latency_s": None, "error": f"--max-seconds {a.max_seconds:g} reached"}
            else:
                r = call(url, text, decoders, min(a.request_timeout, max(1.0, deadline - time.perf_counter())), expect)
            with lock:
                results.append({"client": c, "request": k, **r, "text": text})

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(a.clients)]
    load_before = os.getloadavg()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t_start
    done.set()
    sampler.join()
    rss["end_mb"] = round(rss_mb(server), 1)
    kinds["end"] = rss_kinds_mb(server)
    if kinds["end"] is not None:
        rss["server_anon_file_mb"] = kinds
    rss["peak_mb"] = round(max([rss["after_warmup_mb"], rss["end_mb"]] + [m for _, _, m in timeline]), 1)
    # RSS once a quarter, half, ... of the requests were answered: a leak keeps climbing, warm-up levels off
    rss["by_requests_answered"] = {f"{q}%": next((round(m, 1) for _, n, m in timeline if n >= q / 100 * len(results)),
                                                 rss["end_mb"]) for q in (10, 25, 50, 75, 100)}
    rss["growth_after_warmup"] = round(rss["end_mb"] / rss["after_warmup_mb"] - 1, 4)

    count = {s: sum(r["status"] == s for r in results) for s in ("ok", "failed", "rejected", "not sent")}
    ok = [r["latency_s"] for r in results if r["status"] == "ok"]
    summary = {
        "command": "python -m eval.load " + shlex.join(argv),
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "url": url, "clients": a.clients, "requests_per_client": a.requests, "decoders": expect,
        "warmup_requests": a.warmup,
        "queue_size": a.queue_size or ("as running" if a.url else "app default (64)"),
        "requests": len(results), "ok": count["ok"], "failures": count["failed"], "queue_rejections": count["rejected"],
        "not_sent": count["not sent"], "wall_s": round(wall, 1),
        "throughput_per_s": round(count["ok"] / wall, 3),
        "latency_s": {"p50": percentile(ok, 50), "p95": percentile(ok, 95), "max": round(max(ok), 3) if ok else None,
                      "mean": round(float(np.mean(ok)), 3) if ok else None},
        "server_rss": rss,
        "first_errors": sorted({r["error"] for r in results if r["error"]})[:5],
        "environment": environment(load_before, os.getloadavg()),
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "environment"}, indent=1))
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "load.json").write_text(json.dumps(summary, indent=1) + "\n")
        with open(a.out / "requests.csv", "w", newline="") as f:
            w = csv.DictWriter(f, ["client", "request", "status", "latency_s", "error", "text"], extrasaction="ignore")
            w.writeheader()
            w.writerows(sorted(results, key=lambda r: (r["client"], r["request"])))
        print(f"wrote {a.out / 'load.json'} and {a.out / 'requests.csv'}", file=sys.stderr)
    return 0 if count["failed"] == 0 and count["not sent"] == 0 else 1


def environment(load_before, load_after) -> dict:
    def git(*cmd):
        r = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_model": cpu,
            "cpu_count": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain", "--", ".",
                                                                           ":!assets/results"))}


if __name__ == "__main__":
    sys.exit(main())
