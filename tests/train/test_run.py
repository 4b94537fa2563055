"""The generic training loop on a toy regression: files, resume, non-finite losses."""

import csv
import subprocess
import sys

import pytest
import torch
from torch import nn

from seqvpr.errors import OutputConflictError, SeqvprError
from seqvpr.train.run import LoopConfig, NonFiniteLossError, TrainingTask, load_checkpoint, open_run, train

INPUTS = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
TARGETS = INPUTS @ torch.tensor([1.0, -2.0, 0.5]) + 0.3


class Interrupt(Exception):
    pass


def toy_task(fail_at_call: int | None = None, nan_at_call: int | None = None) -> TrainingTask:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.5)
    calls = {"n": 0}

    def load_batch(indices):
        calls["n"] += 1
        if calls["n"] == fail_at_call:
            raise Interrupt
        return torch.tensor(indices)

    def loss(module, batch):
        value = (module(INPUTS[batch])[:, 0] - TARGETS[batch]).square().mean()
        return value * float("nan") if calls["n"] == nan_at_call else value

    def validate():
        error = (model(INPUTS[30:])[:, 0] - TARGETS[30:]).abs()
        return {"val_max": float(error.max()), "val_mean": float(error.mean())}

    def export():
        return {"format": "toy", "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}

    return TrainingTask(model, optimizer, scheduler, 30, load_batch, loss, validate, "val_max", export)


CONFIG = LoopConfig(epochs=3, batch_size=4, validations_per_epoch=2, seed=1)


def start(path, task, config=CONFIG):
    run = open_run(path, {"toy": 1}, config, command="toy", command_line="toy --out x")
    return train(run, task, config, progress=False)


def test_run_writes_checkpoints_metrics_curves_and_learns(tmp_path):
    result = start(tmp_path / "run", toy_task())
    # 30 items, batch 4 -> 7 steps per epoch, validated after steps 4 and 7 of each epoch.
    assert result.steps == 21
    assert [row["step"] for row in result.metrics] == [4, 7, 11, 14, 18, 21]
    assert result.metrics[-1]["val_max"] < 0.5 * result.metrics[0]["val_max"]
    assert result.metrics[-1]["lr"] == pytest.approx(0.3 * 0.5**3)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [float(row["val_max"]) for row in rows] == [row["val_max"] for row in result.metrics]
    assert (tmp_path / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["format"] == "toy" and best["training"]["step"] == result.best_step
    assert best["training"]["metric"] == min(row["val_max"] for row in result.metrics)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["training"]["step"] == 21 and set(last["training"]["optimizer"]) == {"state", "param_groups"}
    assert (tmp_path / "run" / "command.txt").read_text() == "toy --out x\n"
    assert "batch_size: 4" in (tmp_path / "run" / "config.yaml").read_text()


def test_interrupted_run_resumes_to_the_same_metrics(tmp_path):
    reference = start(tmp_path / "straight", toy_task())
    with pytest.raises(Interrupt):
        start(tmp_path / "broken", toy_task(fail_at_call=13))  # after the checkpoint at step 11
    assert load_checkpoint(tmp_path / "broken" / "last.pt")["training"]["step"] == 11
    resumed = start(tmp_path / "broken", toy_task())
    assert resumed.metrics == reference.metrics
    assert torch.equal(load_checkpoint(tmp_path / "broken" / "last.pt")["state_dict"]["weight"],
                       load_checkpoint(tmp_path / "straight" / "last.pt")["state_dict"]["weight"])


def test_resume_rewrites_metrics_a_kill_left_behind_the_last_checkpoint(tmp_path):
    finished = start(tmp_path / "run", toy_task())
    # What a kill between writing the final last.pt and metrics.csv/curves.png leaves.
    metrics = tmp_path / "run" / "metrics.csv"
    complete = metrics.read_text()
    metrics.write_text("".join(complete.splitlines(keepends=True)[:-1]))
    (tmp_path / "run" / "curves.png").unlink()
    resumed = start(tmp_path / "run", toy_task())
    assert resumed.steps == finished.steps and resumed.metrics == finished.metrics
    assert metrics.read_text() == complete
    assert (tmp_path / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_reopening_a_run_deletes_what_writes_cut_short_by_a_kill_left(tmp_path):
    start(tmp_path / "run", toy_task(), LoopConfig(epochs=1, batch_size=4, max_steps=3))
    # A process that dies inside atomic_path (os._exit skips every cleanup, like SIGKILL).
    dying = "import os, sys\nfrom seqvpr.io import atomic_path\nwith atomic_path(sys.argv[1]) as temporary:\n" \
            "    temporary.write_bytes(b'half a checkpoint')\n    os._exit(9)\n"
    for name in ("last.pt", "metrics.csv", "notes.txt"):
        assert subprocess.run([sys.executable, "-c", dying, str(tmp_path / "run" / name)]).returncode == 9
    leftovers = {path.name for path in (tmp_path / "run").glob(".*.tmp")}
    assert sorted(name.split(".tmp")[0].rsplit(".", 1)[0] for name in leftovers) == [".last.pt", ".metrics.csv",
                                                                                     ".notes.txt"]
    before = load_checkpoint(tmp_path / "run" / "last.pt")["training"]["step"]
    open_run(tmp_path / "run", {"toy": 1}, LoopConfig(epochs=1, batch_size=4, max_steps=3), command="toy",
             command_line="toy --out x")
    assert [path.name for path in (tmp_path / "run").glob(".*.tmp")] == [n for n in leftovers if ".notes.txt." in n]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["training"]["step"] == before == 3


def test_other_options_are_refused_and_budget_stops_early(tmp_path):
    start(tmp_path / "run", toy_task(), LoopConfig(epochs=1, batch_size=4, max_steps=3))
    with pytest.raises(OutputConflictError, match="batch_size"):
        start(tmp_path / "run", toy_task(), LoopConfig(epochs=1, batch_size=8, max_steps=3))
    assert load_checkpoint(tmp_path / "run" / "last.pt")["training"]["step"] == 3
    with pytest.raises(SeqvprError, match="fewer than one batch of 64"):
        start(tmp_path / "big", toy_task(), LoopConfig(batch_size=64))


def test_nonfinite_loss_dumps_the_batch_and_keeps_best(tmp_path):
    with pytest.raises(NonFiniteLossError, match="step 6"):
        start(tmp_path / "run", toy_task(nan_at_call=6))
    dump = (tmp_path / "run" / "nonfinite-step6.json").read_text()
    assert '"batch_indices"' in dump and '"loss": "nan"' in dump
    assert load_checkpoint(tmp_path / "run" / "best.pt")["training"]["step"] == 4
