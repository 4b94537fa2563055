"""The VGG16 layer layout that the encoder and every weights reader share.

torchvision's ``vgg16().features`` is built from configuration ``D``: per block, a few
3×3 convolutions (each followed by a ReLU) and a max-pool. :data:`VGG16_CONFIG` is that
one table; the layer indices below are derived from it, so that building the backbone
and reading weights files (torchvision, published NetVLAD checkpoints, MATLAB) agree.
"""

from __future__ import annotations

from torch import nn

__all__ = ["VGG16_CONFIG", "BLOCKS", "LAST_CONV_OF_BLOCK", "CHANNELS_OF_BLOCK", "conv_indices",
           "build_vgg16_backbone"]

# Output channels of each convolution, "M" for a max-pool (torchvision's cfgs["D"]).
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


def _layout() -> tuple[dict[int, int], dict[int, int], tuple[int, ...]]:
    last_conv, channels, convs = {}, {}, []
    index, block = 0, 1
    for entry in VGG16_CONFIG:
        if entry == "M":
            block += 1
            index += 1
            continue
        convs.append(index)
        last_conv[block], channels[block] = index, int(entry)
        index += 2  # the convolution and its ReLU
    return last_conv, channels, tuple(convs)


# Index in `features` of the last convolution of each block (1..5), and its channels.
LAST_CONV_OF_BLOCK, CHANNELS_OF_BLOCK, _CONV_INDICES = _layout()
BLOCKS = tuple(LAST_CONV_OF_BLOCK)


def conv_indices(blocks: int) -> tuple[int, ...]:
    """Indices in ``features`` of the convolutions of the first ``blocks`` blocks."""
    return tuple(index for index in _CONV_INDICES if index <= LAST_CONV_OF_BLOCK[blocks])


def build_vgg16_backbone(blocks: int) -> nn.Sequential:
    """``vgg16().features`` cut after the last convolution of ``blocks`` (no ReLU, no pool), random weights."""
    from seqvpr.vpr._torchvision import import_torchvision

    vgg = import_torchvision().models.vgg
    features = vgg.make_layers(list(VGG16_CONFIG), batch_norm=False)
    return nn.Sequential(*list(features.children())[: LAST_CONV_OF_BLOCK[blocks] + 1])
