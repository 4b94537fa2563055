"""Importing the core must not pull in heavy or optional dependencies."""

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("rospy", "rclpy", "faiss", "cv2", "librosa", "torchvision", "rosbags", "matplotlib")


@pytest.mark.parametrize(
    "module", ["seqvpr", "seqvpr.align", "seqvpr.cli", "seqvpr.vpr", "seqvpr.data", "seqvpr.evaluation",
               "seqvpr.localization", "seqvpr.audio"]
)
def test_import_loads_no_optional_dependency(module):
    code = (
        f"import json, sys; import {module}; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(completed.stdout) == []
