"""Batched piecewise-linear signals.

A :class:`Signal` holds B sequences of samples ``values[b, :lengths[b]]`` taken at strictly
increasing times ``times[b, :lengths[b]]`` (seconds). Between samples the signal is the
linear interpolation of its neighbours, which is what GDTW assumes of both the reference
and the query. Sequences of different lengths are padded to the longest; the padding is
never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["Signal"]


def _as_tensor(name: str, value: object) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray | list | tuple):
        return torch.as_tensor(np.asarray(value))
    raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


@dataclass(frozen=True)
class Signal:
    """A batch of piecewise-linear signals.

    Args:
        times: sample times in seconds, shape (B, N); strictly increasing within each
            item's length; stored as float64. A 1-D tensor (N,) is taken as a batch of one.
        values: samples, shape (B, N, D); a 2-D tensor (N, D) is taken as a batch of one.
        lengths: valid samples per item, shape (B,), integer; defaults to N for all.
            Each length must be at least 2.

    Raises:
        ValueError: if shapes disagree, values or times are not finite, a sequence has
            fewer than two samples, or times are not strictly increasing.
    """

    times: Tensor
    values: Tensor
    lengths: Tensor | None = None

    def __post_init__(self) -> None:
        times = _as_tensor("times", self.times)
        values = _as_tensor("values", self.values)
        if times.dim() == 1 and values.dim() == 2:
            times, values = times[None], values[None]
        if times.dim() != 2:
            raise ValueError(f"times must have shape (B, N), got {tuple(times.shape)}")
        if values.dim() != 3:
            raise ValueError(f"values must have shape (B, N, D), got {tuple(values.shape)}")
        if values.shape[:2] != times.shape:
            raise ValueError(
                f"values shape {tuple(values.shape)} does not match times shape "
                f"{tuple(times.shape)}: expected (B, N, D) with (B, N) = {tuple(times.shape)}"
            )
        if not values.is_floating_point():
            values = values.to(torch.get_default_dtype())
        if times.dtype != torch.float64:
            # Times stay float64 whatever the values are: float32 cannot hold epoch
            # timestamps (~1.7e9 s) to better than ~100 s.
            times = times.to(torch.float64)
        if times.device != values.device:
            raise ValueError(f"times on {times.device} but values on {values.device}")
        batch, length = times.shape
        if batch == 0:
            raise ValueError("empty batch: times has shape (0, N)")
        if values.shape[2] == 0:
            raise ValueError("values have feature dimension D = 0")
        if self.lengths is None:
            lengths = torch.full((batch,), length, dtype=torch.long, device=times.device)
        else:
            lengths = _as_tensor("lengths", self.lengths).to(device=times.device)
            if lengths.shape != (batch,):
                raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
            if lengths.is_floating_point():
                raise ValueError(f"lengths must be integers, got dtype {lengths.dtype}")
            lengths = lengths.long()
        if bool((lengths > length).any()):
            raise ValueError(f"lengths {lengths.tolist()} exceed the padded length N = {length}")
        short = (lengths < 2).nonzero().flatten()
        if len(short):
            item = int(short[0])
            raise ValueError(
                f"sequence {item} has {int(lengths[item])} sample(s); alignment needs at least 2"
            )
        valid = torch.arange(length, device=times.device)[None] < lengths[:, None]
        # One reduction instead of a (B, N, D) mask: NaN and inf survive the sum.
        bad = ~torch.isfinite(values.detach().sum(dim=2)) & valid
        if bool(bad.any()):
            item, index = (int(i) for i in bad.nonzero()[0])
            raise ValueError(f"values[{item}, {index}] contains NaN or inf")
        bad = ~torch.isfinite(times) & valid
        if bool(bad.any()):
            item, index = (int(i) for i in bad.nonzero()[0])
            raise ValueError(f"times[{item}, {index}] is {float(times[item, index])}")
        step_valid = valid[:, 1:]
        bad = (times[:, 1:] <= times[:, :-1]) & step_valid
        if bool(bad.any()):
            item, index = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"times of sequence {item} are not strictly increasing: "
                f"times[{item}, {index + 1}] = {float(times[item, index + 1])} after "
                f"times[{item}, {index}] = {float(times[item, index])}"
            )
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "lengths", lengths)

    @classmethod
    def from_sequences(cls, sequences: list[tuple[object, object]]) -> Signal:
        """Pads a list of ``(times (N_b,), values (N_b, D))`` pairs into one batch."""
        if not sequences:
            raise ValueError("from_sequences needs at least one (times, values) pair")
        pairs = [(_as_tensor("times", t), _as_tensor("values", v)) for t, v in sequences]
        for index, (times, values) in enumerate(pairs):
            if times.dim() != 1 or values.dim() != 2 or values.shape[0] != times.shape[0]:
                raise ValueError(
                    f"sequence {index}: expected times (N,) and values (N, D), got "
                    f"{tuple(times.shape)} and {tuple(values.shape)}"
                )
        dims = {values.shape[1] for _, values in pairs}
        if len(dims) != 1:
            raise ValueError(f"sequences have different feature dimensions {sorted(dims)}")
        lengths = torch.tensor([times.shape[0] for times, _ in pairs])
        length = int(lengths.max())
        values0 = pairs[0][1]
        dtype = values0.dtype if values0.is_floating_point() else torch.get_default_dtype()
        times = torch.zeros(len(pairs), length, dtype=torch.float64, device=values0.device)
        values = torch.zeros(len(pairs), length, dims.pop(), dtype=dtype, device=values0.device)
        for index, (item_times, item_values) in enumerate(pairs):
            times[index, : len(item_times)] = item_times
            values[index, : len(item_times)] = item_values
        return cls(times, values, lengths)

    @property
    def batch_size(self) -> int:
        return self.times.shape[0]

    @property
    def max_length(self) -> int:
        return self.times.shape[1]

    @property
    def dim(self) -> int:
        return self.values.shape[2]

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def start(self) -> Tensor:
        """First sample time per item, shape (B,)."""
        return self.times[:, 0]

    @property
    def end(self) -> Tensor:
        """Last valid sample time per item, shape (B,)."""
        return self.times.gather(1, (self.lengths - 1)[:, None])[:, 0]

    @property
    def duration(self) -> Tensor:
        """``end - start`` per item, shape (B,)."""
        return self.end - self.start

    def valid_mask(self) -> Tensor:
        """True at valid (non-padding) samples, shape (B, N)."""
        return torch.arange(self.max_length, device=self.device)[None] < self.lengths[:, None]

    def padded_times(self) -> Tensor:
        """Times with padding replaced by ``end + 1, end + 2, ...`` (strictly increasing).

        Lets ``torch.searchsorted`` run on the whole batch; the padding is never selected
        because lookups are clamped to each item's last segment.
        """
        steps = (torch.arange(self.max_length, device=self.device)[None] - self.lengths[:, None] + 1)
        filler = self.end[:, None] + steps.clamp(min=0).to(self.times.dtype)
        return torch.where(self.valid_mask(), self.times, filler)

    def segments(self, at: Tensor) -> tuple[Tensor, Tensor]:
        """Locates times in the piecewise-linear segments of each item.

        Args:
            at: query times, shape (B, K); times outside an item's span are clamped to it.

        Returns:
            ``(index, fraction)``, each (B, K): the segment's first sample index k in
            ``[0, lengths - 2]`` and the position ``(at - t_k) / (t_{k+1} - t_k)`` in [0, 1].
        """
        times = self.padded_times()
        at = at.to(times.dtype)
        index = torch.searchsorted(times, at.contiguous(), right=True) - 1
        index = torch.minimum(index.clamp(min=0), (self.lengths - 2)[:, None])
        left = times.gather(1, index)
        right = times.gather(1, index + 1)
        fraction = ((at - left) / (right - left)).clamp(0.0, 1.0)
        return index, fraction

    def at(self, at: Tensor) -> Tensor:
        """Evaluates the signals at given times (linear interpolation, clamped at the ends).

        Args:
            at: query times, shape (B, K).

        Returns:
            values, shape (B, K, D); differentiable with respect to ``values`` and ``at``.
        """
        index, fraction = self.segments(at.detach())
        if at.requires_grad:
            times = self.times.to(at.dtype)
            left, right = times.gather(1, index), times.gather(1, index + 1)
            fraction = ((at - left) / (right - left)).clamp(0.0, 1.0)
        fraction = fraction.to(self.dtype)[..., None]
        expand = (-1, -1, self.dim)
        left = self.values.gather(1, index[..., None].expand(expand))
        right = self.values.gather(1, (index + 1)[..., None].expand(expand))
        return left + fraction * (right - left)

    def to(self, *args: object, **kwargs: object) -> Signal:
        """Moves or casts the values like ``Tensor.to``; times move but stay float64."""
        values = self.values.to(*args, **kwargs)
        return Signal(self.times.to(values.device), values, self.lengths)
