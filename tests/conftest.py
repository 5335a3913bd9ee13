import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")   # tests never reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(2)
