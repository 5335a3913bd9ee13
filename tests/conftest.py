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
