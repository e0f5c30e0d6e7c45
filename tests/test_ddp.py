"""The training command under torchrun: 2 CPU processes (gloo), only rank 0 writes."""

import json
import os
import subprocess
import sys

from helpers import ROOT
from lab.runs import list_checkpoints, read_metrics


def test_two_cpu_processes_train_one_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lab", "train", "ddp", "--runs-dir", str(tmp_path), "--device", "cpu", "--unary-n", "30",
           "--vocab-size", "300", "--n-layer", "1", "--d-model", "32", "--n-head", "2", "--d-mlp", "64",
           "--context", "128", "--steps", "4", "--batch-size", "4", "--eval-every", "2", "--checkpoint-every", "2"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "ddp"
    assert [p.name for p in list_checkpoints(run)] == ["step-000002", "step-000004"]
    metrics = read_metrics(run)
    assert metrics["step"].tolist() == [0, 1, 2, 3, 4]  # one writer: each step logged once
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # no stray temp folders from rank 1
