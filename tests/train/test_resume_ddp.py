"""`seqvpr finetune` in fresh processes: resume after a real SIGKILL, and DDP over two CPU
processes (gloo) against one process."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

CONFIG = """\
trainable_from: netvlad
lr: 1.0e-2
val_max_pairs: 8
loop: {epochs: 1, batch_size: 8, validations_per_epoch: 5}
"""


def command(world, out, tmp_path, *extra):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    return ["-m", "seqvpr", "finetune", "--train", str(world.train), "--val", str(world.val), "--traverses",
            str(world.prepared), "--model", str(world.base_model), "--out", str(out), "--config", str(config),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", *extra]


def environment():
    # One thread per process: the same arithmetic in every run, and no oversubscription.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def metrics(run):
    return [{key: float(value) for key, value in row.items()} for row in csv.DictReader((run / "metrics.csv").open())]


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_the_uninterrupted_metrics(pairs_world, tmp_path):
    steps = ["--max-steps", "9"]  # validations (and checkpoints) after steps 3, 6, 9
    subprocess.run([sys.executable, *command(pairs_world, tmp_path / "straight", tmp_path, *steps)],
                   check=True, env=environment(), capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, *command(pairs_world, killed, tmp_path, *steps)], env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "last.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    reached = torch.load(killed / "last.pt", weights_only=True)["training"]["step"]
    assert reached < 9, "the run finished before it could be killed"
    subprocess.run([sys.executable, "-m", "seqvpr", "finetune", "--resume", str(killed), "--no-progress"],
                   check=True, env=environment(), capture_output=True)
    straight, resumed = metrics(tmp_path / "straight"), metrics(killed)
    assert [row["step"] for row in resumed] == [3, 6, 9]
    for expected, got in zip(straight, resumed):
        assert got == pytest.approx(expected, abs=1e-6, rel=0)
    for key, value in weights(tmp_path / "straight" / "last.pt").items():
        torch.testing.assert_close(weights(killed / "last.pt")[key], value, atol=1e-6, rtol=0)
    assert (killed / "command.txt").read_text().count("\n") == 2


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(pairs_world, tmp_path):
    steps = ["--max-steps", "5", "--lr", "1e-3"]
    subprocess.run([sys.executable, *command(pairs_world, tmp_path / "single", tmp_path, *steps)],
                   check=True, env=environment(), capture_output=True)
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    completed = subprocess.run([sys.executable, *launcher, *command(pairs_world, tmp_path / "ddp", tmp_path, *steps)],
                               env=environment(), capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    single, ddp = weights(tmp_path / "single" / "last.pt"), weights(tmp_path / "ddp" / "last.pt")
    assert not torch.equal(single["netvlad.centroids"], weights(pairs_world.base_model)["netvlad.centroids"])
    for key, value in single.items():
        torch.testing.assert_close(ddp[key], value, atol=1e-5, rtol=0)
    assert [row["step"] for row in metrics(tmp_path / "ddp")] == [3, 5]
