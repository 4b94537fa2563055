"""The soak script: 10 simulated minutes at 30 Hz with bursts, stalls, bad stamps, NaNs and corrupt images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ten_simulated_minutes_without_exception_leak_or_stall():
    completed = subprocess.run([sys.executable, str(ROOT / "tools" / "soak_localizer.py"), "--minutes", "10",
                                "--map-frames", "3000"], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    counters, injected = result["counters"], result["injected"]
    assert result["frames"] == 18000
    assert counters["dropped_duplicate"] >= injected["duplicates"] > 0
    assert counters["dropped_out_of_order"] >= injected["out_of_order"] > 0
    assert counters["non_finite"] == injected["nan"] > 0
    assert counters["corrupt_images"] == injected["corrupt"] > 0
    assert result["rss_mb"]["growth"] <= 50
    assert result["fixes"] > 100 and result["wrong_fix_rate"] <= 0.01
