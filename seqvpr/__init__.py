"""seqvpr: sequence-based visual place recognition with differentiable DTW.

Subpackages (dependencies point one way, top to bottom):

- :mod:`seqvpr.align`: the generic alignment core (GDTW, DTW); torch + numpy only.
- :mod:`seqvpr.cli`: the ``seqvpr`` command.

Importing :mod:`seqvpr` imports nothing heavy; optional dependencies (faiss, OpenCV,
ROS, librosa, torchvision) are imported where they are used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
