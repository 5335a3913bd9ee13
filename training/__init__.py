"""Training for the token decoders (generative, RET): `python -m training --help`.

    config.py    TrainConfig: the settings of a run, its command line, train_args.json
    data.py      train/dev texts and embeddings, packed token sequences, length-bucketed batches
    trainer.py   the training loop, dev evaluation (through eval.metrics), checkpoints, `score`
    corrector_pairs.py  training pairs for the corrector: `python -m training.corrector_pairs --help`
    corrector.py the corrector's training loop: `python -m training.corrector --help`
"""
