"""Training on several processes with torch.distributed, as started by ``torchrun``.

    torchrun --standalone --nproc_per_node 2 -m deep_pixel train ...            # one machine
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 \\
        --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m deep_pixel train ...   # each machine

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; when they are present the
run joins the process group (backend nccl on CUDA, each process on the GPU of its LOCAL_RANK; gloo on
CPU) and trains one model with DistributedDataParallel. Every rank reads the same chips index
(rank 0 builds it and shares it), trains on its own shard of the training chips, evaluates its
shard of the validation chips, and the validation sums (loss, confusion matrix) are added up across
ranks, so every rank takes the same decisions (best epoch, early stop). Rank 0 alone logs, writes
checkpoints, the report and the model package; the others run with a silent Progress and wait at a
barrier. Without those variables nothing here is used: one process, as always.

``DEEP_PIXEL_RANK_LOG=<folder>`` makes each rank append what it read (its pid, then the chip indices
of each epoch) to ``<folder>/rank<N>.jsonl``: the tests check that ranks see disjoint chips.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
RANK_LOG = "DEEP_PIXEL_RANK_LOG"


@dataclass
class Dist:
    """Where this process stands: rank, number of processes, local rank, backend (None: one process)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.backend is not None

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun(environ=None) -> bool:
    environ = os.environ if environ is None else environ
    return all(environ.get(k) for k in TORCHRUN_VARIABLES)


def launched_rank() -> int:
    """This process's rank under torchrun (0 otherwise), known before the process group is joined."""
    return int(os.environ["RANK"]) if launched_by_torchrun() else 0


def start(device, reason: str) -> tuple:
    """Join torchrun's process group when launched by it -> (Dist, device, reason)."""
    if not launched_by_torchrun():
        return Dist(), device, reason
    import torch
    import torch.distributed as dist
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device.type == "cuda":
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
        reason = f"{reason}; this process (local rank {local}) on {device}"
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, store=_store(), rank=rank, world_size=world, **kwargs)
    return Dist(rank, world, local, backend), device, reason


def _store():
    """torchrun's store, its keys prefixed with the restart count: after torchrun restarts the ranks, the
    new process group must not read the addresses the previous ranks left there."""
    import torch.distributed as dist
    store, _, _ = next(dist.rendezvous("env://"))
    return dist.PrefixStore(f"deep_pixel/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def finish(d: Dist, stepper=None, model=None) -> None:
    """Leave the process group. The DistributedDataParallel wrapper (tied into a reference cycle by the stepper's
    ``agree`` closure over the run) is dropped and collected first, while the interpreter is alive: left to the
    garbage collector at exit, its gloo work could be torn down during interpreter finalisation, a SIGABRT
    ("terminate called without an active exception") after a complete run, seen once in a members=2 test."""
    if d.active:
        import gc

        import torch.distributed as dist
        if stepper is not None:
            stepper.model, stepper.agree = model if model is not None else stepper.model, None
            gc.collect()
        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.active:
        import torch.distributed as dist
        dist.barrier()


def share(d: Dist, obj):
    """Rank 0's ``obj`` on every rank (pickled)."""
    if not d.active:
        return obj
    import torch.distributed as dist
    box = [obj if d.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_all(d: Dist, values, device=None) -> np.ndarray:
    """Element-wise sum over ranks of a float64 array (every rank gets the same result)."""
    values = np.asarray(values, dtype=np.float64)
    if not d.active:
        return values
    import torch
    import torch.distributed as dist
    t = torch.from_numpy(values.copy())
    if d.backend == "nccl":
        t = t.to(device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().numpy()


def all_agree(d: Dist, flag: bool, device=None) -> bool:
    """True when ``flag`` is true on every rank."""
    if not d.active:
        return flag
    return bool(sum_all(d, [0.0 if flag else 1.0], device)[0] == 0)


def peer_lost(d: Dist, error: BaseException):
    """The DeepPixelError for a collective that failed because another rank died, or None."""
    text = str(error)
    if not (d.active and isinstance(error, RuntimeError)
            and any(w in text for w in ("by peer", "Connection", "NCCL", "gloo", "Gloo"))):
        return None
    from ..core.errors import DeepPixelError
    return DeepPixelError(f"Another process of this torchrun job stopped ({text.splitlines()[0][:200]}), so rank "
                          f"{d.rank} stops too. torchrun starts them all again when --max-restarts allows, and "
                          "training resumes from the checkpoint; otherwise run the same command again.")


def shard(indices, d: Dist) -> list:
    """This rank's share of ``indices`` (every world-th one, starting at its rank): disjoint, sizes within 1."""
    return list(indices)[d.rank::d.world] if d.active else list(indices)


def wrap(model, d: Dist, device):
    """DistributedDataParallel around ``model`` (whose parameters rank 0 broadcasts), or the model itself.

    static_graph: the same parameters take part in every step (the light decoder leaves the encoder's
    last stage unused, which DDP otherwise refuses); unfreezing the backbone wraps the model again."""
    if not d.active:
        return model
    from torch.nn.parallel import DistributedDataParallel
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, static_graph=True)


def scaled_rate(rate: float, rule: str, world: int) -> float:
    """The learning rate for ``world`` processes by ``rule``: none, linear (x world) or sqrt (x sqrt(world))."""
    return rate * {"none": 1.0, "linear": float(world), "sqrt": world ** 0.5}[rule]


def describe(d: Dist, batch: int, rule: str, rate: float, base: float) -> str:
    """The log line on the process group, the global batch and the learning-rate rule."""
    scaling = (f"learning rate {rate:.3g} used as is (lr_scaling=none: not scaled with the number of processes)"
               if rule == "none" else f"learning rate {base:.3g} x {rate / base:.3g} ({rule} scaling) = {rate:.3g}")
    return (f"Distributed training: {d.world} process(es), backend {d.backend}; batch {batch} per process, global "
            f"batch {batch * d.world}; {scaling}.")


def log_ranks(d: Dist, record: dict) -> None:
    """Append ``record`` to ``$DEEP_PIXEL_RANK_LOG/rank<N>.jsonl`` when that variable is set."""
    folder = os.environ.get(RANK_LOG)
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"rank{d.rank}.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps({"rank": d.rank, "world": d.world, "pid": os.getpid(), **record}) + "\n")
