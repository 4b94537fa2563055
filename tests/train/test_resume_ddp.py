"""`seqvpr finetune` and `seqvpr train-base` in fresh processes: resume after a real SIGKILL
(one process, and a DDP group of two gloo CPU processes), and two processes against one."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

CONFIG = """\
trainable_from: netvlad
lr: 1.0e-2
val_max_pairs: 8
loop: {epochs: 1, batch_size: 8, validations_per_epoch: 5}
"""
DDP_STEPS = ["--max-steps", "5", "--lr", "1e-3"]  # validations (and checkpoints) after steps 3 and 5
# 66 training queries, 4 per step: 16 steps per epoch, validations (and checkpoints) every 2 steps.
TRAIN_BASE_CONFIG = """\
trainable_from: netvlad
lr: 1.0e-2
negative_pool: 50
query_stride: 3
loop: {{epochs: 1, batch_size: 4, validations_per_epoch: 8, max_steps: 6}}
cache_dir: {cache}
"""

# Runs the command line like `python -m seqvpr`, recording every file this process creates,
# writes, renames, removes or makes into WRITES/writes-rank<RANK>.txt (a Python audit hook
# sees them all, including torch.save's and atomic_path's).
AUDITED = """\
import os, sys
log = open(os.path.join(sys.argv[1], f"writes-rank{os.environ.get('RANK', '0')}.txt"), "a", buffering=1)
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
EVENTS = {"os.rename": 1, "os.mkdir": 0, "os.remove": 0, "os.rmdir": 0, "os.truncate": 0, "os.link": 1,
          "os.symlink": 1, "shutil.rmtree": 0}
def record(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) and args[2] & WRITE:
        log.write(f"{event}\\t{os.path.abspath(os.fsdecode(args[0]))}\\n")
    elif event in EVENTS:
        log.write(f"{event}\\t{os.path.abspath(os.fsdecode(args[EVENTS[event]]))}\\n")
sys.addaudithook(record)
from seqvpr.cli import main
sys.exit(main(sys.argv[2:]))
"""


def command(world, out, folder, *extra):
    """`seqvpr finetune` arguments; the config file and the frozen-feature cache live in ``folder``."""
    config = folder / "config.yaml"
    config.write_text(CONFIG)
    return ["finetune", "--train", str(world.train), "--val", str(world.val), "--traverses", str(world.prepared),
            "--model", str(world.base_model), "--out", str(out), "--config", str(config),
            "--cache-dir", str(folder / "cache"), "--no-progress", *extra]


def train_base_command(world, out, folder, *extra):
    config = folder / "train-base.yaml"
    config.write_text(TRAIN_BASE_CONFIG.format(cache=folder / "train-base-cache"))
    return ["train-base", "--traverses", str(world.prepared), "--model", str(world.base_model), "--out", str(out),
            "--config", str(config), "--no-progress", *extra]


def torchrun(folder, writes, *args):
    """Two gloo processes on this machine (the way `torchrun --nproc_per_node 2` starts them)."""
    script = folder / "audited.py"
    script.write_text(AUDITED)
    writes.mkdir(exist_ok=True)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            str(script), str(writes), *args]


def environment():
    # One thread per process: the same arithmetic in every run, and no oversubscription.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def metrics(run):
    return [{key: float(value) for key, value in row.items()} for row in csv.DictReader((run / "metrics.csv").open())]


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def children(pid):
    """Process ids of ``pid``'s descendants (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def alive(pid):
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_after_first_checkpoint(process, run):
    """SIGKILL ``process`` and every process it started once ``run/last.pt`` exists."""
    deadline = time.monotonic() + 300
    while not (run / "last.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before its first checkpoint"
    workers = children(process.pid)
    for pid in [process.pid, *workers]:
        os.kill(pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    while any(alive(pid) for pid in workers):
        time.sleep(0.02)
    return workers


def kill_and_resume(arguments, run, last_step):
    """Start ``seqvpr ARGUMENTS`` writing ``run``, SIGKILL it after its first checkpoint (before
    ``last_step``), then resume it with ``--resume`` to the end."""
    process = subprocess.Popen([sys.executable, "-m", "seqvpr", *arguments], env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_after_first_checkpoint(process, run)
    reached = torch.load(run / "last.pt", weights_only=True)["training"]["step"]
    assert reached < last_step, "the run finished before it could be killed"
    subprocess.run([sys.executable, "-m", "seqvpr", arguments[0], "--resume", str(run), "--no-progress"],
                   check=True, env=environment(), capture_output=True)


def written(writes, rank):
    """The files process ``rank`` wrote (its log exists from its start on)."""
    lines = (writes / f"writes-rank{rank}.txt").read_text().splitlines()
    return [Path(line.split("\t")[1]) for line in lines]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder for the module's runs; they share one frozen-feature cache."""
    return tmp_path_factory.mktemp("finetune_runs")


@pytest.fixture(scope="module")
def ddp_run(pairs_world, runs):
    """An uninterrupted run of two gloo processes (5 steps)."""
    arguments = command(pairs_world, runs / "ddp", runs, *DDP_STEPS)
    completed = subprocess.run(torchrun(runs, runs / "ddp-writes", *arguments), env=environment(),
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return runs / "ddp"


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_the_uninterrupted_metrics(pairs_world, tmp_path):
    steps = ["--max-steps", "9"]  # validations (and checkpoints) after steps 3, 6, 9
    subprocess.run([sys.executable, "-m", "seqvpr", *command(pairs_world, tmp_path / "straight", tmp_path, *steps)],
                   check=True, env=environment(), capture_output=True)
    killed = tmp_path / "killed"
    kill_and_resume(command(pairs_world, killed, tmp_path, *steps), killed, last_step=9)
    straight, resumed = metrics(tmp_path / "straight"), metrics(killed)
    assert [row["step"] for row in resumed] == [3, 6, 9]
    for expected, got in zip(straight, resumed):
        assert got == pytest.approx(expected, abs=1e-6, rel=0)
    for key, value in weights(tmp_path / "straight" / "last.pt").items():
        torch.testing.assert_close(weights(killed / "last.pt")[key], value, atol=1e-6, rtol=0)
    assert (killed / "command.txt").read_text().count("\n") == 2


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(pairs_world, ddp_run, runs):
    single = runs / "single"
    subprocess.run([sys.executable, "-m", "seqvpr", *command(pairs_world, single, runs, *DDP_STEPS)],
                   check=True, env=environment(), capture_output=True)
    one, two = weights(single / "last.pt"), weights(ddp_run / "last.pt")
    assert not torch.equal(one["netvlad.centroids"], weights(pairs_world.base_model)["netvlad.centroids"])
    for key, value in one.items():
        torch.testing.assert_close(two[key], value, atol=1e-5, rtol=0)
    assert [row["step"] for row in metrics(ddp_run)] == [3, 5]


@pytest.fixture(scope="module")
def ddp_killed(pairs_world, runs):
    """A two-process run killed with SIGKILL (torchrun and both workers) after its first
    checkpoint, and a copy of its folder as the kill left it."""
    killed, writes = runs / "ddp-killed", runs / "ddp-killed-writes"
    process = subprocess.Popen(torchrun(runs, writes, *command(pairs_world, killed, runs, *DDP_STEPS)),
                               env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = kill_after_first_checkpoint(process, killed)
    assert len(workers) == 2
    assert torch.load(killed / "last.pt", weights_only=True)["training"]["step"] == 3, \
        "the run finished before it could be killed"
    shutil.copytree(killed, runs / "ddp-killed-copy")
    return killed, runs / "ddp-killed-copy", writes


@pytest.mark.slow
def test_ddp_run_killed_with_sigkill_resumes_to_the_uninterrupted_ddp_run(ddp_run, ddp_killed, runs):
    killed, _, writes = ddp_killed
    completed = subprocess.run(torchrun(runs, writes, "finetune", "--resume", str(killed), "--no-progress"),
                               env=environment(), capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("5 steps; best val max error") == 1  # reported by rank 0 only
    expected, resumed = metrics(ddp_run), metrics(killed)
    assert [row["step"] for row in resumed] == [3, 5]
    for want, got in zip(expected, resumed):
        assert got == pytest.approx(want, abs=1e-6, rel=0)
    for key, value in weights(ddp_run / "last.pt").items():
        torch.testing.assert_close(weights(killed / "last.pt")[key], value, atol=1e-6, rtol=0)
    assert (killed / "command.txt").read_text().count("\n") == 2  # one line per start, not per process
    # Only rank 0 wrote: rank 1 touched nothing in the run folder or the cache, in either start.
    main_writes = written(writes, 0)
    assert killed / "last.pt" in main_writes and killed / "metrics.csv" in main_writes
    assert not [path for path in written(writes, 1) if path.is_relative_to(runs)]


@pytest.mark.slow
def test_ddp_run_resumes_in_one_process(ddp_run, ddp_killed):
    """Each step's global batch does not depend on the number of processes, so a run
    checkpointed by two processes continues in one (e.g. restarted on fewer GPUs)."""
    _, copy, _ = ddp_killed
    subprocess.run([sys.executable, "-m", "seqvpr", "finetune", "--resume", str(copy), "--no-progress"],
                   check=True, env=environment(), capture_output=True)
    expected, resumed = metrics(ddp_run), metrics(copy)
    assert [row["step"] for row in resumed] == [3, 5]
    for want, got in zip(expected, resumed):
        assert got == pytest.approx(want, rel=1e-6)
    for key, value in weights(ddp_run / "last.pt").items():
        torch.testing.assert_close(weights(copy / "last.pt")[key], value, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def train_base_run(pairs_world, runs):
    """An uninterrupted one-process `train-base` run (6 steps)."""
    subprocess.run([sys.executable, "-m", "seqvpr", *train_base_command(pairs_world, runs / "tb", runs)],
                   check=True, env=environment(), capture_output=True)
    return runs / "tb"


@pytest.mark.slow
def test_train_base_killed_with_sigkill_resumes_to_the_uninterrupted_run(pairs_world, train_base_run, runs):
    killed = runs / "tb-killed"
    kill_and_resume(train_base_command(pairs_world, killed, runs), killed, last_step=6)
    expected, resumed = metrics(train_base_run), metrics(killed)
    assert [row["step"] for row in resumed] == [2, 4, 6]
    for want, got in zip(expected, resumed):
        assert got == pytest.approx(want, abs=1e-6, rel=0)
    for key, value in weights(train_base_run / "last.pt").items():
        torch.testing.assert_close(weights(killed / "last.pt")[key], value, atol=1e-6, rtol=0)
    assert not torch.equal(weights(killed / "last.pt")["netvlad.centroids"],
                           weights(pairs_world.base_model)["netvlad.centroids"])


@pytest.mark.slow
def test_train_base_two_gloo_processes_match_one_process(pairs_world, train_base_run, runs):
    ddp, writes = runs / "tb-ddp", runs / "tb-ddp-writes"
    completed = subprocess.run(torchrun(runs, writes, *train_base_command(pairs_world, ddp, runs)),
                               env=environment(), capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("6 steps; best val recall") == 1  # reported by rank 0 only
    one, two = weights(train_base_run / "last.pt"), weights(ddp / "last.pt")
    for key, value in one.items():
        torch.testing.assert_close(two[key], value, atol=1e-5, rtol=0)
    assert [row["step"] for row in metrics(ddp)] == [2, 4, 6]
    assert ddp / "last.pt" in written(writes, 0)
    assert not [path for path in written(writes, 1) if path.is_relative_to(runs)]
