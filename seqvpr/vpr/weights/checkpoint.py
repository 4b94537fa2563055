"""Encoder checkpoints: the seqvpr format, and one loader for every weights file seqvpr reads.

seqvpr format (a ``torch.save`` file that loads with ``weights_only=True``)::

    {"format": "seqvpr.netvlad_encoder", "version": 1,
     "config": EncoderConfig.to_dict(),          # ints, floats, strings, lists
     "state_dict": {"backbone.N.weight": ..., "netvlad.conv.weight": (K, D, 1, 1),
                    "netvlad.centroids": (K, D), ["pca.weight": (P, K·D), "pca.bias": (P,)]}}

Each reader returns ``(EncoderConfig, state_dict)``: the seqvpr format
(:func:`read_seqvpr_checkpoint`), the published families
(:func:`~seqvpr.vpr.weights.published.read_published_checkpoint`) and the MATLAB release
(:func:`~seqvpr.vpr.weights.matlab.read_matlab_netvlad`, any ``.mat`` file);
:func:`load_encoder` picks the reader and builds the encoder.

Old checkpoints pickle numpy scalars (a recall, a best score); those load through an
explicit allow-list of numpy globals, never by unpickling arbitrary objects.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqvpr.config import config_from_dict
from seqvpr.errors import SeqvprError
from seqvpr.io import atomic_path
from seqvpr.vpr.encoder import EncoderConfig, NetVLADEncoder
from seqvpr.vpr.weights.matlab import read_matlab_netvlad
from seqvpr.vpr.weights.published import read_published_checkpoint

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "encoder_checkpoint",
    "save_encoder",
    "load_encoder",
    "encoder_from_weights",
    "read_seqvpr_checkpoint",
    "safe_torch_load",
    "check_finite_weights",
]

LOGGER = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "seqvpr.netvlad_encoder"
CHECKPOINT_VERSION = 1

# numpy globals that old checkpoints pickle for scalars and small arrays (recalls, best
# scores); the strings are the names numpy 1.x wrote (numpy 2 moved `numpy.core` to
# `numpy._core`). `_reconstruct` only builds an empty array of an allowed class.
_NUMPY_SAFE_GLOBALS: list[Any] = [
    np.dtype,
    np.ndarray,
    (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
    np._core.multiarray.scalar,
    (np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    np._core.multiarray._reconstruct,
    *(getattr(np.dtypes, name) for name in np.dtypes.__all__ if name.endswith("DType")),
]


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with numpy scalars and dtypes allowed, nothing else.

    Raises:
        SeqvprError: the file is missing, empty, truncated or not a ``torch.save`` file, or
            needs other globals (arbitrary pickled objects); names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise SeqvprError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise SeqvprError(f"{path}: not a readable PyTorch file (it is empty)")
    try:
        with torch.serialization.safe_globals(_NUMPY_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = next(
            (line.strip() for line in str(error).splitlines() if "Unsupported global" in line),
            None,
        )
        if refused is None:
            raise SeqvprError(f"{path}: not a readable PyTorch file ({str(error).splitlines()[0]})") from None
        raise SeqvprError(
            f"{path}: refusing to unpickle objects other than tensors, containers and numpy "
            f"scalars/arrays ({refused}). Re-save only the model's state_dict, e.g. "
            f"torch.save({{'state_dict': model.state_dict()}}, path)."
        ) from error
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise SeqvprError(f"{path}: not a readable PyTorch file, truncated or not made by torch.save? ({reason})") from None


def encoder_checkpoint(encoder: NetVLADEncoder) -> dict[str, Any]:
    """The encoder (config + weights, copied to the CPU) in the seqvpr checkpoint format:
    what :func:`save_encoder` writes; a training run adds its state to this dict."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": encoder.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()},
    }


def save_encoder(encoder: NetVLADEncoder, path: str | Path) -> Path:
    """Write the encoder (config + weights) in the seqvpr checkpoint format, atomically."""
    payload = encoder_checkpoint(encoder)
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return path


def read_seqvpr_checkpoint(
    checkpoint: Mapping[str, Any], *, source: str = "checkpoint", **size: int
) -> tuple[EncoderConfig, dict[str, torch.Tensor]]:
    """The config (``size`` overrides ``image_width``/``image_height``) and state dict of a seqvpr checkpoint.

    Raises:
        SeqvprError: an unsupported version or a malformed config (names the field).
    """
    if checkpoint.get("version") != CHECKPOINT_VERSION:
        raise SeqvprError(
            f"{source}: seqvpr checkpoint version {checkpoint.get('version')!r} is not "
            f"supported (this seqvpr reads version {CHECKPOINT_VERSION})"
        )
    config = config_from_dict(EncoderConfig, {**checkpoint["config"], **size}, f"{source}: config")
    return config, dict(checkpoint["state_dict"])


def encoder_from_weights(config: EncoderConfig, state: Mapping[str, torch.Tensor], source: str) -> NetVLADEncoder:
    """A :class:`NetVLADEncoder` of ``config`` holding ``state``, in eval mode.

    Raises:
        SeqvprError: keys or shapes that do not fit the config (names them and ``source``).
    """
    encoder = NetVLADEncoder(config)
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise SeqvprError(f"{source}: missing keys {missing}; unexpected keys {unexpected}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise SeqvprError(
                f"{source}: {key} has shape {tuple(value.shape)}, the config needs {tuple(own[key].shape)}"
            )
    check_finite_weights(state, source)
    encoder.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    return encoder.eval()


def check_finite_weights(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise naming the first tensor of ``state`` that holds NaN or infinite values.

    Broken weights would make every descriptor NaN and every localization meaningless.
    """
    for key, value in state.items():
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise SeqvprError(f"{source}: {key} holds {bad} of {value.numel()} values that are not finite (NaN or inf)")


def load_encoder(
    path: str | Path, *, image_width: int | None = None, image_height: int | None = None
) -> NetVLADEncoder:
    """Load a seqvpr checkpoint, or import a published or MATLAB one (detected from the file).

    Args:
        path: checkpoint file; a ``.mat`` file is read as the MATLAB NetVLAD release.
        image_width: input width to use for a published checkpoint (they do not record
            one; default 240). Ignored for seqvpr checkpoints unless given.
        image_height: likewise (default 180).

    Returns:
        The encoder in eval mode, on the CPU.

    Raises:
        SeqvprError: a missing, unsafe or unrecognised file (named).
    """
    size = {
        key: value
        for key, value in (("image_width", image_width), ("image_height", image_height))
        if value is not None
    }
    source = str(path)
    if Path(path).suffix.lower() == ".mat":
        config, state = read_matlab_netvlad(path, **size)
    else:
        checkpoint = safe_torch_load(path)
        if isinstance(checkpoint, Mapping) and checkpoint.get("format") == CHECKPOINT_FORMAT:
            config, state = read_seqvpr_checkpoint(checkpoint, source=source, **size)
        else:
            config, state, family = read_published_checkpoint(checkpoint, source=source, **size)
            LOGGER.info("imported %s as a %s checkpoint", path, family.name)
    return encoder_from_weights(config, state, source)
