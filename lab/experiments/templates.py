"""Built-in experiments: the seed's questions as editable specs (`lab.experiments.spec.ExperimentSpec`).

Sizes are for a shared 2-core CPU: the micro preset and a few hundred steps, so each template finishes in well
under an hour; raise ``steps``, the presets and the seeds on a bigger machine (or a Ray cluster).
"""

from __future__ import annotations

from ..real_sample import HELD_OUT, SHARED_SAMPLE
from .spec import PRETRAIN, ExperimentSpec


def counting(name: str = "counting") -> ExperimentSpec:
    # One tokenizer for both arms, trained on the stories and the unary training text, so the arms differ only in
    # their first weights. 4,096 tokens leave room for a token per number up to 100 beside the stories' words (at
    # 2,048, numbers from 57 up were split in two), so i = 120 fits the micro context (174 tokens). Numbers above
    # 100 are two tokens the training never showed together: extrapolation asks for new token pairs.
    unary = [{"name": "train", "kind": "unary", "split": "train"},
             {"name": "test", "kind": "unary", "split": "test"},
             {"name": "extrapolation", "kind": "unary", "range": [101, 120]}]
    variants = [{"name": v, "kind": "unary", "variant": v, "split": "test"}
                for v in ("paraphrase", "typos", "reversed", "start")]
    return ExperimentSpec(
        name=name, template="counting",
        question="Counting or memorising? Trained on the unary task (standard wording), does the model count to "
        "held-out lengths (i % 10 in 1, 3, 7), to longer ones (101-120), and follow reworded, misspelt, reversed "
        "or shifted instructions? Does starting from a story model change that?",
        factors={"init": [{"label": "scratch", "init_from": None}, {"label": "fine-tuned", "init_from": PRETRAIN}]},
        seeds=[0, 1, 2, 3, 4],
        tokenizer={"kind": "bpe", "vocab_size": 4096, "texts": ["pretrain", "train"]},
        pretrain={"data": "stories", "stories_n": 2000, "preset": "micro", "seq_len": 128, "steps": 400,
                  "batch_size": 16, "lr": 3e-3, "warmup": 20, "eval_every": 100, "checkpoint_every": 400, "seed": 0},
        train={"data": "unary", "unary_n": 100, "test_residues": [1, 3, 7], "variant": "standard", "preset": "micro",
               "steps": 300, "batch_size": 16, "lr": 3e-3, "warmup": 20, "eval_every": 50, "checkpoint_every": 300},
        evaluate=unary + variants,
        primary="test exact match",
    )


def data_size_quality(name: str = "data") -> ExperimentSpec:
    real = {"file": str(SHARED_SAMPLE)}  # any story file works (the page takes an upload)
    return ExperimentSpec(
        name=name, template="data",
        question="Does data size or quality matter? The same model and budget trained on 500 / 2,000 / 10,000 "
        "generated stories or on 500 / 1,000 real ones, scored on held-out real stories in bits per character.",
        factors={"data": [
            {"label": "generated 500", "data": "stories", "stories_n": 500},
            {"label": "generated 2,000", "data": "stories", "stories_n": 2000},
            {"label": "generated 10,000", "data": "stories", "stories_n": 10000},
            {"label": "real 500", "data": "@real-500"},
            {"label": "real 1,000", "data": "@real-1000"},
        ]},
        seeds=[0, 1, 2],
        # The file's stories as `lab.story_files` reads them (a cut file's fragments dropped); the last HELD_OUT
        # are held out of every training, as `lab.real_sample.held_out_split` keeps them (the sample has 1,206).
        datasets={"real-500": {**real, "stories": [0, 500]}, "real-1000": {**real, "stories": [0, 1000]},
                  "real-heldout": {**real, "stories": [-HELD_OUT, None]}},
        train={"preset": "micro", "tokenizer": "bpe", "vocab_size": 1024, "seq_len": 128, "steps": 200,
               "batch_size": 16, "lr": 3e-3, "warmup": 20, "eval_every": 50, "checkpoint_every": 200},
        evaluate=[{"name": "real", "kind": "text", "dataset": "@real-heldout"}],
        primary="real bits per char",
    )


def emergence(name: str = "emergence") -> ExperimentSpec:
    return ExperimentSpec(
        name=name, template="emergence",
        question="Emergence with size (the paper's 1M -> 3M observation): presets of increasing size, the same "
        "stories and budget; loss, probe pass rate and grammar-style scores against parameters.",
        factors={"preset": ["micro", "tinystories-1m", "tinystories-3m"]},
        seeds=[0, 1, 2],
        train={"data": "stories", "stories_n": 2000, "tokenizer": "bpe", "vocab_size": 1024, "seq_len": 128,
               "steps": 300, "batch_size": 16, "lr": 3e-3, "warmup": 20, "eval_every": 50, "checkpoint_every": 300},
        evaluate=[{"name": "probes", "kind": "probes"},
                  {"name": "stories", "kind": "continuations", "generated": {"n": 40, "seed": 12345}, "limit": 30}],
        primary="val loss",
    )


TEMPLATES = {
    "counting": ("1. Counting or memorising?", counting),
    "data": ("2. Does data size or quality matter?", data_size_quality),
    "emergence": ("3. Emergence with size", emergence),
}


def template(key: str, name: str | None = None) -> ExperimentSpec:
    if key not in TEMPLATES:
        raise ValueError(f"Unknown template {key!r}; choose one of {', '.join(TEMPLATES)}.")
    builder = TEMPLATES[key][1]
    return builder(name) if name else builder()
