"""Timing, memory and machine facts for ``neuralinv bench``."""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def machine_info(device: str) -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": device,
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _RssPeak:
    """Peak resident-set growth during a call, sampled from /proc/self/statm every 0.2 ms.

    Indicative only: memory the allocator reuses from earlier frees does not show up, and a
    spike shorter than the sampling interval can be missed.
    """

    def __init__(self):
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._peak = 0
        self._stop = threading.Event()

    @staticmethod
    def available() -> bool:
        return os.path.exists("/proc/self/statm")

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def measure(self, fn: Callable[[], Any]) -> int:
        base = self._rss()
        self._peak = base

        def sample():
            while not self._stop.is_set():
                self._peak = max(self._peak, self._rss())
                time.sleep(0.0002)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            fn()
        finally:
            self._stop.set()
            t.join()
            self._stop.clear()
        return max(0, max(self._peak, self._rss()) - base)


def _peak_memory(fn: Callable[[], Any], device: torch.device) -> int | None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    if not _RssPeak.available():
        return None
    return _RssPeak().measure(fn)
