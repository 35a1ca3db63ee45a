"""Resumable checkpoints: trainable weights (safetensors), optimizer, LR scheduler, RNG states
and step (torch.save, read back with weights_only=True), in `runs/<id>/checkpoints/step_N/`.

A checkpoint is written to a scratch folder and renamed into place, so an interrupted write
never leaves a half checkpoint that `latest_checkpoint` would pick. `StopOnSigint` turns the
first Ctrl-C into a stop after the running step, so the checkpoint it leaves is consistent.
"""

import os
import re
import shutil
import signal
import threading
from pathlib import Path
from typing import NamedTuple

import safetensors.torch
import torch
from tqdm import tqdm

CHECKPOINTS_DIR = "checkpoints"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class Checkpoint(NamedTuple):
    path: Path
    step: int
    trainable: dict  # parameter name -> tensor
    state: dict  # optimizer, lr_scheduler, rng, step, and whatever the job adds


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    """A fresh seeded shuffle per epoch that depends on nothing else, so a resumed run visits
    the same examples in the same order as an uninterrupted one."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


def capture_rng(generator: torch.Generator) -> dict:
    """The training generator (noise, timesteps, posterior samples) and torch's global RNG
    (LoRA dropout); CUDA's too when present."""
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, generator: torch.Generator) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, trainable: dict, state: dict, keep: int = 2) -> Path:
    root = Path(run_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"step_{step:07d}"
    scratch = root / f".partial-step_{step:07d}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    tensors = {name: t.detach().cpu().contiguous() for name, t in trainable.items()}
    safetensors.torch.save_file(tensors, str(scratch / "trainable.safetensors"))
    torch.save({**state, "step": step}, scratch / "state.pt")
    if target.exists():
        shutil.rmtree(target)
    os.replace(scratch, target)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old)
    return target


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [(int(m[1]), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def load_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    trainable = safetensors.torch.load_file(str(path / "trainable.safetensors"))
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    return Checkpoint(path, int(state["step"]), trainable, state)


class StopOnSigint:
    """The first Ctrl-C lets the running optimizer step finish (the loop checks `requested`
    after each step), then stops at a consistent checkpoint; a second one interrupts at once
    (the last periodic checkpoint stays). Outside the main thread it changes nothing."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("stopping after this step (Ctrl-C again to stop now)")

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
