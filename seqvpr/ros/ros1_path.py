"""Import ROS 1 (rospy and its message packages) into a Python that also has the ROS 2 wheels.

The ROS 2 wheels and ROS 1 both install top-level packages named ``std_msgs``,
``sensor_msgs``, ``geometry_msgs``, ``nav_msgs``, ``diagnostic_msgs``, ``rosgraph_msgs``.
With both on the path, whichever comes first wins, and ``import rospy`` fails when the
ROS 2 copies win (``cannot import name 'Log' from 'rosgraph_msgs.msg'``). ROS 1 itself
cannot simply go first: Debian's ``/usr/lib/python3/dist-packages`` would then also shadow
the environment's numpy and torch.

:func:`enable_ros1_imports` does what a ROS 1 ``setup.bash`` does, for the message
packages only: it finds rospy (on the path, e.g. from a sourced ROS 1 setup, or else in
Debian's dist-packages, appended at the *end* of ``sys.path``) and routes every message
package of that folder (a package with a ``msg`` or ``srv`` subpackage) to it, ahead of
any other copy. Everything else keeps its usual precedence. A ROS 1 process calls it
before importing rospy; a ROS 2 process never does.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from pathlib import Path

from seqvpr.errors import SeqvprError

__all__ = ["DEBIAN_DIST_PACKAGES", "enable_ros1_imports"]

DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")


class _Ros1MessageFinder(importlib.abc.MetaPathFinder):
    """Finds the named top-level packages in one folder only."""

    def __init__(self, folder: Path, names: frozenset[str]) -> None:
        self.folder = folder
        self.names = names

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 - the importlib protocol
        if fullname in self.names:
            return importlib.machinery.PathFinder.find_spec(fullname, [str(self.folder)])
        return None


def _message_packages(folder: Path) -> frozenset[str]:
    return frozenset(
        entry.name
        for entry in folder.iterdir()
        if (entry / "msg" / "__init__.py").is_file() or (entry / "srv" / "__init__.py").is_file()
    )


def enable_ros1_imports(dist_packages: Path = DEBIAN_DIST_PACKAGES) -> Path:
    """Makes ``import rospy`` and ROS 1 messages work in this interpreter; idempotent.

    Args:
        dist_packages: where to look for rospy when it is not importable already
            (Debian's ``python3-rospy`` installs there); appended to ``sys.path``.

    Returns:
        The folder the ROS 1 packages are imported from.

    Raises:
        SeqvprError: rospy is not installed, or a ROS 2 copy of a message package was
            imported before this call (a process cannot hold both).
    """
    for finder in sys.meta_path:
        if isinstance(finder, _Ros1MessageFinder):
            return finder.folder
    spec = importlib.machinery.PathFinder.find_spec("rospy")
    if spec is None and dist_packages.is_dir():
        if str(dist_packages) not in sys.path:
            sys.path.append(str(dist_packages))
        spec = importlib.machinery.PathFinder.find_spec("rospy")
    if spec is None or spec.origin is None:
        raise SeqvprError(
            "ROS 1 is not installed: rospy was found neither on the Python path nor in "
            f"{dist_packages} (Debian: apt-get install ros-core python3-rospy python3-sensor-msgs "
            "python3-geometry-msgs python3-diagnostic-msgs; or source your ROS 1 setup.bash)"
        )
    folder = Path(spec.origin).parent.parent
    names = _message_packages(folder)
    clashing = sorted(name for name in names if name in sys.modules and not _is_in(sys.modules[name], folder))
    if clashing:
        raise SeqvprError(
            f"ROS 2 message packages {clashing} were imported before ROS 1's; a process can use only one "
            "ROS version's messages"
        )
    sys.meta_path.insert(0, _Ros1MessageFinder(folder, names))
    return folder


def _is_in(module, folder: Path) -> bool:  # noqa: ANN001 - any module
    origin = getattr(module, "__file__", None)
    return origin is not None and Path(origin).is_relative_to(folder)
