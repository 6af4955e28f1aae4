"""What a batch worker process sets up before its models load: memory, cores, and dying with its parent."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

from fusion.config import Config


def tune_malloc(arenas: int, mmap_threshold: int) -> None:
    """Keep a long batch's RSS near what it uses, set before the models start their threads.

    glibc gives each thread an arena that keeps freed buffers (``arenas`` caps them), and after the
    first large free it raises its mmap threshold to 32 MB, so later audio-sized arrays come from the
    heap and stay there; a fixed ``mmap_threshold`` returns them to the system when freed (0 leaves
    either default).
    """
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    if arenas > 0:
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    if mmap_threshold > 0:
        libc.mallopt(-3, mmap_threshold)  # M_MMAP_THRESHOLD


def share_cores(config: Config, threads: int | None) -> Config:
    """Give one of several workers on a machine ``threads`` cores: CTranslate2 (unless the config sets
    ``[stt] cpu_threads``) and torch; without this each worker starts threads for every core."""
    if not threads:
        return config
    import torch

    torch.set_num_threads(threads)
    if config.stt.cpu_threads:
        return config
    return config.model_copy(update={"stt": config.stt.model_copy(update={"cpu_threads": threads})})


def die_with_parent(parent: int) -> None:
    """End this worker process when the batch that started it dies, even by kill -9 (no orphan holding its models).

    Linux: the kernel sends SIGKILL on the parent's death (``PR_SET_PDEATHSIG``); elsewhere a thread
    watches the parent's pid. A parent already gone before this ran is caught by the pid check.
    """
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="fusion-parent-watch").start()
    if os.getppid() != parent:
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
