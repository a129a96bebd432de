"""python -m dlcc train / evaluate / doctor: in-process through main(), and once for real."""

import os
import subprocess
import sys

import pooch
import pytest
import torch

from dlcc.cli import build_parser, load_data, main
from dlcc.models import MODELS
from dlcc.train import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cli(*args) -> int:
    """main()'s exit code, whether it returns it or argparse raises SystemExit."""
    try:
        return main([str(a) for a in args])
    except SystemExit as done:
        return done.code


def train(out, *extra):
    return cli("train", "--data", "digits", "--model", "mlp", "--batch-size", 128,
               "--device", "cpu", "--out", out, *extra)


def test_train_writes_run_directory_and_evaluate_reads_it(tmp_path, capsys):
    assert train(tmp_path, "--epochs", 2) == 0
    out = capsys.readouterr().out
    assert "best epoch" in out and str(tmp_path) in out
    assert {"last.pt", "best.pt", "metrics.csv", "history.json"} <= {
        p.name for p in tmp_path.iterdir()}
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 1 + 2
    config = load_checkpoint(tmp_path / "last.pt")["config"]
    assert (config["model"], config["data"], config["task"]) == ("mlp", "digits",
                                                                 "classification")

    assert cli("evaluate", "--checkpoint", tmp_path / "best.pt", "--device", "cpu") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("data        digits, test split")
    accuracy = float(next(line for line in lines if line.startswith("accuracy")).split()[1])
    assert accuracy > 0.85
    assert cli("evaluate", "--checkpoint", tmp_path / "best.pt", "--device", "cpu",
               "--amp", "bf16") == 0
    lines = capsys.readouterr().out.splitlines()
    in_bf16 = float(next(line for line in lines if line.startswith("accuracy")).split()[1])
    assert abs(in_bf16 - accuracy) < 0.05  # bfloat16 rounds, but the model is the same


def test_resume_continues_the_run(tmp_path, capsys):
    assert train(tmp_path, "--epochs", 1) == 0
    assert train(tmp_path, "--epochs", 2, "--resume") == 0
    out = capsys.readouterr().out
    assert out.count("epoch 1/") == 1 and out.count("epoch 2/2") == 1
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


@pytest.mark.parametrize("optimizer,scheduler", [("sgd", "step"), ("momentum", "cosine"),
                                                 ("adam", "onecycle"), ("adamw", "none")])
def test_every_optimizer_and_scheduler(tmp_path, optimizer, scheduler):
    assert train(tmp_path, "--epochs", 2, "--optimizer", optimizer, "--scheduler", scheduler,
                 "--lr", 0.05 if optimizer in ("sgd", "momentum") else 3e-3,
                 "--weight-decay", 1e-4, "--amp", "off") == 0
    history = load_checkpoint(tmp_path / "last.pt")["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


BAD = {
    "unknown model": (["train", "--model", "transformer"],
                      "argument --model: invalid choice: 'transformer' (choose from 'mlp',"),
    "unknown amp": (["train", "--amp", "fp8"], "argument --amp: invalid choice: 'fp8'"),
    "negative epochs": (["train", "--epochs", "-3"], "--epochs: must be >= 1, got -3"),
    "zero lr": (["train", "--lr", "0"], "--lr: must be > 0"),
    "unknown data": (["train", "--data", "imagenet"], "invalid choice: 'imagenet'"),
    "missing checkpoint": (["evaluate", "--checkpoint", "no/such/best.pt"],
                           "checkpoint file not found: no/such/best.pt"),
    "model for the wrong task": (["train", "--data", "cells", "--model", "mlp"],
                                 "use --model unet"),
    "missing GPU": (["train", "--device", "cuda:7"], "cuda:7"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_arguments_give_one_line_and_exit_code_2(case, tmp_path, capsys):
    args, message = BAD[case]
    assert cli(*args, *(["--out", tmp_path] if args[0] == "train" else [])) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and message in err, err
    assert "Traceback" not in out + err


def test_data_set_needing_internet_fails_cleanly_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLCC_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("DLCC_DATA_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    # pooch announces each download on its own logger, whose handler may hold a stream that
    # an earlier test captured; only our error line is under test here.
    monkeypatch.setattr(pooch.get_logger(), "disabled", True)
    assert cli("train", "--data", "mnist", "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not download" in err


@pytest.mark.parametrize("command", ["train", "evaluate", "doctor"])
def test_help_lists_every_option(command, capsys):
    assert cli(command, "--help") == 0
    text = capsys.readouterr().out
    subparser = build_parser()._subparsers._group_actions[0].choices[command]
    for action in subparser._actions:
        for flag in action.option_strings:
            assert flag in text
    if command == "train":
        assert all(name in text for name in MODELS)


def test_doctor_is_ready_on_this_cpu_machine(capsys):
    assert cli("doctor", "--seconds", 0) == 0
    out = capsys.readouterr().out
    assert "device      cpu" in out and out.rstrip().endswith("OK: ready for the course.")


def test_doctor_gets_its_options_and_its_exit_code_is_passed_on(monkeypatch):
    from dlcc import doctor

    calls = []

    def not_ready(**kwargs):
        calls.append(kwargs)
        return 1

    monkeypatch.setattr(doctor, "main", not_ready)
    assert cli("doctor", "--seconds", 0.5, "--gpu", "--network") == 1
    assert calls == [{"seconds": 0.5, "expect_gpu": True, "network": True}]


def test_model_and_amp_choices_come_from_the_library():
    from dlcc.train.device import AMP_MODES

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    options = {action.dest: action for action in train._actions}
    assert list(options["model"].choices) == list(MODELS)
    assert list(options["amp"].choices) == list(AMP_MODES)


def test_cells_data_is_a_segmentation_task():
    train, val, test, spec = load_data("cells", seed=0)
    assert spec == {"task": "segmentation", "in_channels": 1, "num_classes": 1,
                    "image_size": 64}
    images, masks = train.tensors
    assert images.shape[1:] == masks.shape[1:] == (1, 64, 64)
    assert not torch.equal(train.tensors[0][:8], test.tensors[0][:8])  # different seeds


def test_python_dash_m_dlcc_train_in_a_subprocess(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DLCC_PROGRESS": "auto"}
    proc = subprocess.run([sys.executable, "-m", "dlcc", "train", "--data", "digits",
                           "--model", "smallcnn", "--epochs", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Not a terminal: "auto" progress prints clean lines, not a redrawn bar.
    assert proc.stdout.startswith("epoch 1/1") and "\r" not in proc.stdout + proc.stderr
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2


def torchrun(out, *extra, nproc=2):
    """``torchrun --nproc_per_node 2 -m dlcc train ...`` on the CPU (gloo)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DLCC_PROGRESS": "epoch"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={nproc}", "-m", "dlcc", "train", "--data", "digits", "--model",
         "mlp", "--batch-size", "64", "--out", str(out), *extra],
        capture_output=True, text=True, timeout=300, env=env)


def test_torchrun_trains_on_two_cpu_processes_and_resumes(tmp_path):
    first = torchrun(tmp_path, "--epochs", "1", "--device", "cpu")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("epoch 1/1") == 1  # only rank 0 prints
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["world_size"], state["config"]["processes"]) == (2, 2)
    assert state["config"]["device"] == "cpu" and len(state["rng"]) == 2
    again = torchrun(tmp_path, "--epochs", "2", "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "epoch 1/" not in again.stdout and again.stdout.count("epoch 2/2") == 1
    assert [r["epoch"] for r in load_checkpoint(tmp_path / "last.pt")["history"]] == [1, 2]


def test_torchrun_refuses_a_device_with_an_index(tmp_path):
    done = torchrun(tmp_path, "--epochs", "1", "--device", "cuda:1", nproc=1)  # any process
    assert done.returncode == 1  # torchrun's code when a process failed
    assert ("python -m dlcc train: error: device 'cuda:1' names one GPU, but under torchrun "
            "process k uses cuda:k") in done.stderr
    assert "exitcode  : 2" in done.stderr  # the process's own code: bad input


@pytest.mark.parametrize("rank", [0, 1])
def test_rank_0_loads_the_data_first_seeds_differ_and_the_group_is_left(monkeypatch, capsys,
                                                                         tmp_path, rank):
    """As under torchrun, with the process group mocked: rank 1 waits until rank 0 has the
    data (a download, for the real sets), each rank seeds its own dropout, and the process
    group is left even when the command fails."""
    from dlcc import cli as cli_module
    from dlcc.train import distributed

    events = []
    monkeypatch.setattr(distributed, "get_rank", lambda: rank)
    monkeypatch.setattr(distributed, "is_main_process", lambda: rank == 0)
    monkeypatch.setattr(distributed, "barrier", lambda: events.append("barrier"))
    monkeypatch.setattr(distributed, "cleanup", lambda: events.append("cleanup"))
    monkeypatch.setattr("dlcc.train.seed_everything", lambda seed: events.append(f"seed {seed}"))
    real_load = cli_module.load_data
    monkeypatch.setattr(cli_module, "load_data",
                        lambda *args: events.append("load") or real_load(*args))

    def wrong_model(name, spec):
        raise ValueError("stop here")

    monkeypatch.setattr(cli_module, "build", wrong_model)
    assert train(tmp_path, "--seed", 5) == 2
    assert "stop here" in capsys.readouterr().err
    order = ["load", "barrier"] if rank == 0 else ["barrier", "load"]
    assert events == [f"seed {5 + rank}", *order, "cleanup"]
