"""The learned audio features of the paper (appendix A.4): a bidirectional GRU.

One single-layer bidirectional GRU maps base features (N, d) to (N, 128) (64 per
direction), and every output frame is scaled to unit L2 norm. The same network embeds the
score and the performance. A checkpoint (``best.pt`` of ``seqvpr audio-train``) holds the
weights with the base feature kind and the GDTW lambda the model was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqvpr.align import Signal
from seqvpr.audio.features import FEATURE_DIMS
from seqvpr.errors import SeqvprError

__all__ = ["AUDIO_MODEL_FORMAT", "AudioEncoder", "LoadedAudioModel", "load_audio_model", "model_payload"]

AUDIO_MODEL_FORMAT = "seqvpr-audio-gru"


class AudioEncoder(nn.Module):
    """Bidirectional GRU feature extractor with L2-normalised outputs.

    Args:
        input_dim: base feature dimension d.
        output_dim: output dimension (even; half per direction), 128 in the paper.
    """

    def __init__(self, input_dim: int, output_dim: int = 128) -> None:
        super().__init__()
        if output_dim % 2:
            raise ValueError(f"output_dim must be even (two directions), got {output_dim}")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.gru = nn.GRU(input_dim, output_dim // 2, batch_first=True, bidirectional=True)

    def forward(self, values: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Embeds frame sequences.

        Args:
            values: base features, shape (B, N, d).
            lengths: valid frames per item, shape (B,); padding is not read and its output
                is zero. Default N for all.

        Returns:
            Unit-norm frames, shape (B, N, output_dim).
        """
        if lengths is None or bool((lengths == values.shape[1]).all()):
            output, _ = self.gru(values)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(values, lengths.cpu(), batch_first=True, enforce_sorted=False)
            output, _ = self.gru(packed)
            output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=values.shape[1])
        return F.normalize(output, dim=-1)

    def embed(self, signal: Signal) -> Signal:
        """The signal with its values embedded (times and lengths kept)."""
        values = self(signal.values.to(next(self.parameters()).dtype), signal.lengths)
        return Signal(signal.times, values, signal.lengths)


@dataclass(frozen=True)
class LoadedAudioModel:
    """A trained audio model and what it was trained with.

    Attributes:
        encoder: the GRU, in eval mode.
        features: base feature kind it reads (``cqt``, ``chroma`` or ``melspec``).
        lam: the GDTW lambda it was trained and validated with.
        loss: the training loss (``decdtw``, ``soft-dtw``, ``along-gt``, ``dilate``).
    """

    encoder: AudioEncoder
    features: str
    lam: float
    loss: str


def model_payload(encoder: AudioEncoder, features: str, lam: float, loss: str) -> dict:
    """The checkpoint contents of a trained model (tensors and plain values only)."""
    return {"format": AUDIO_MODEL_FORMAT, "features": features, "lam": float(lam), "loss": loss,
            "input_dim": encoder.input_dim, "output_dim": encoder.output_dim,
            "state_dict": {key: value.detach().cpu().clone() for key, value in encoder.state_dict().items()}}


def load_audio_model(path: str | Path) -> LoadedAudioModel:
    """Reads a checkpoint written by ``seqvpr audio-train`` (``best.pt`` or ``last.pt``).

    Raises:
        SeqvprError: the file is missing or is not an audio model checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise SeqvprError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types on foreign files
        raise SeqvprError(f"{path}: not a readable torch checkpoint ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != AUDIO_MODEL_FORMAT:
        raise SeqvprError(f"{path}: not an audio model written by `seqvpr audio-train`")
    if payload["features"] not in FEATURE_DIMS or payload["input_dim"] != FEATURE_DIMS[payload["features"]]:
        raise SeqvprError(f"{path}: inconsistent features {payload['features']!r} / input_dim {payload['input_dim']}")
    encoder = AudioEncoder(payload["input_dim"], payload["output_dim"])
    encoder.load_state_dict(payload["state_dict"])
    encoder.eval()
    return LoadedAudioModel(encoder, payload["features"], payload["lam"], payload["loss"])
