"""The provided `accelerate launch` configs: parsed by accelerate, and run for real on two CPU processes.

There is no GPU here, so the multi-GPU config is launched with ``--num_processes 2 --mixed_precision no``:
accelerate starts two processes through torch's launcher and, on CPU, they train with DDP over gloo.
This exercises what multi-GPU training needs from us (one optimizer step across processes, saving from
the main process, dynamic sampling deciding in lockstep) with the same config file and the `srl` CLI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from srl_agent.train import ACCELERATE_CONFIGS

MULTI_GPU = ACCELERATE_CONFIGS / "multi_gpu.yaml"
MULTI_NODE = ACCELERATE_CONFIGS / "multi_node.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(
    config: Path, args: list[str], *, processes: int = 2, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file config -m srl_agent.cli ARGS` on CPU processes."""
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
        "--num_processes", str(processes), "--mixed_precision", "no",
        "--main_process_port", str(_free_port()),
        "-m", "srl_agent.cli", *args,
    ]  # fmt: skip
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _tiny_args(tiny: str, steps: Path, out: Path) -> list[str]:
    return [
        "--dataset", str(steps), "--output-dir", str(out), "--max-steps", "1",
        "--set", f"model={tiny}", "--set", "batch_size=2", "--set", "report_to=[]",
        "--set", "max_completion_length=8",
    ]  # fmt: skip


def test_provided_configs_parse_with_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    gpu = load_config_from_file(str(MULTI_GPU))
    assert gpu.distributed_type == DistributedType.MULTI_GPU and gpu.num_machines == 1
    node = load_config_from_file(str(MULTI_NODE))
    assert node.distributed_type == DistributedType.DEEPSPEED and node.num_machines > 1
    assert node.deepspeed_config["zero_stage"] == 3


@pytest.mark.slow
def test_sft_on_two_cpu_processes_saves_one_model(tiny, steps, tmp_path):
    out = tmp_path / "sft"
    res = _launch(MULTI_GPU, ["train", "sft", *_tiny_args(tiny, steps, out), "--set", "save_steps=1"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("train rows:") == 2  # two processes, each with the data
    assert (out / "checkpoint-1").is_dir() and (out / "config.json").is_file()
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 1


@pytest.mark.slow
def test_grpo_step_on_two_cpu_processes(tiny, steps, tmp_path):
    out = tmp_path / "srl"
    # a random model never writes a well-formed answer: without dynamic sampling the step runs (on nothing)
    args = [
        *_tiny_args(tiny, steps, out),
        "--set",
        "num_generations=2",
        "--set",
        "dynamic_sampling.enabled=false",
    ]
    res = _launch(MULTI_GPU, ["train", "srl", *args])
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "config.json").is_file()
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1


@pytest.mark.slow
def test_dynamic_sampling_stall_stops_every_process_with_the_cause(tiny, steps, tmp_path):
    out = tmp_path / "stall"
    args = [
        *_tiny_args(tiny, steps, out),
        "--set",
        "num_generations=2",
        "--set",
        "dynamic_sampling.max_refills=1",
    ]
    res = _launch(MULTI_GPU, ["train", "srl", *args])  # a hang here would hit the timeout
    assert res.returncode != 0
    assert res.stderr.count("every group scored -1") == 2, res.stderr[-3000:]
    assert "srl train sft" in res.stderr
    assert not (out / "config.json").exists()  # nothing was trained, nothing saved


@pytest.mark.gpu
@pytest.mark.slow
def test_sft_on_all_gpus_in_bf16(tiny, steps, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.device_count() < 2:
        pytest.skip("needs at least two CUDA GPUs")
    out = tmp_path / "sft-gpu"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(MULTI_GPU),
        "--num_processes", str(torch.cuda.device_count()), "--main_process_port", str(_free_port()),
        "-m", "srl_agent.cli", "train", "sft", *_tiny_args(tiny, steps, out),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "config.json").is_file()
