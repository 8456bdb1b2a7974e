"""The process group and DeepSpeed's configuration for one run (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from embodiment.training.config import AUTOCAST, TrainConfig


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a rendezvous or a test server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _skip_cpu_shm_comm_build() -> None:
    """Keep DeepSpeed from JIT-compiling its CPU shared-memory all-reduce op.

    On the CPU accelerator every ``deepspeed.initialize`` compiles that op (tens of seconds on
    a fresh machine) behind a lock file in ~/.cache/torch_extensions; a process killed mid-compile
    (a fault test, a pre-empted worker) leaves the lock behind and every later run waits on
    it forever. The op only speeds up inference all-reduce, which training never calls, so
    torch.distributed (gloo) does the work instead.
    """
    import deepspeed.ops

    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() == "cpu":
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def ensure_distributed(backend: str | None = None) -> tuple[int, int]:
    """Initialise torch.distributed for DeepSpeed if no launcher did (rank 0 of 1).

    Inside Ray Train the process group already exists and is reused.
    """
    import deepspeed

    _skip_cpu_shm_comm_build()
    if not torch.distributed.is_initialized():
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
        os.environ.setdefault("LOCAL_RANK", "0")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
        deepspeed.init_distributed(
            dist_backend=backend or ("nccl" if torch.cuda.is_available() else "gloo"), verbose=False
        )
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def deepspeed_config(cfg: TrainConfig) -> dict:
    """The DeepSpeed config of a run: micro-batch, accumulation, clipping, ZeRO stage, precision.

    The optimizer is a torch one passed to ``deepspeed.initialize`` (FusedAdam would
    JIT-compile on every fresh worker), hence ``zero_allow_untested_optimizer``; offloaded,
    it steps on the CPU copies of the weights (DeepSpeedCPUAdam would compile too), hence
    ``zero_force_ds_cpu_optimizer`` off.
    """
    zero: dict = {"stage": cfg.zero_stage}
    if cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "gradient_clipping": cfg.max_grad_norm,
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "bf16": {"enabled": cfg.precision == "bf16"},
        "fp16": {"enabled": cfg.precision == "fp16"},
        "torch_autocast": {
            "enabled": cfg.precision in AUTOCAST,
            "dtype": str(AUTOCAST.get(cfg.precision, torch.bfloat16)),
        },
        "steps_per_print": 10**9,
    }


@contextmanager
def partitioned_loading(cfg: TrainConfig) -> Iterator[None]:
    """Under ZeRO-3, models loaded inside this block (``from_pretrained``) are partitioned
    across the ranks as their weights load (DeepSpeed's ``zero.Init`` through transformers'
    DeepSpeed integration): no rank ever holds the whole model. Keep training inside the
    block too: transformers and PEFT ask whether ZeRO-3 is on while they wrap the model.
    Other stages and engines: nothing changes."""
    if cfg.engine != "deepspeed" or cfg.zero_stage != 3:
        yield
        return
    from transformers.integrations import HfDeepSpeedConfig, unset_hf_deepspeed_config

    _, world = ensure_distributed()
    config = deepspeed_config(cfg)
    config["train_batch_size"] = cfg.batch_size * cfg.grad_accum * world
    keep = HfDeepSpeedConfig(config)  # transformers holds it by weak reference: alive for the block
    try:
        yield
    finally:
        del keep
        unset_hf_deepspeed_config()
