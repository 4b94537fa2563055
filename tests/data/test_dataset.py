import numpy as np
import pytest
import torch

from seqvpr.data.dataset import IMAGENET_MEAN, IMAGENET_STD, SequencePairDataset
from seqvpr.data.images import read_rgb
from seqvpr.data.pair_files import make_pairs


@pytest.fixture(scope="module")
def pairs_csv(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs")
    summary = make_pairs(tiny_world.prepared, out, train_fraction=0.5, seed=0)
    entry = next(iter(summary["splits"]["test"]["by_condition"].values()))
    return out / entry["file"]


def test_item_shapes_dtypes_and_values(pairs_csv, tiny_world):
    dataset = SequencePairDataset(pairs_csv, tiny_world.prepared, image_size=None)
    assert len(dataset) > 0
    item = dataset[0]
    pair = dataset.pairs[0]
    assert item["reference_images"].shape == (25, 3, 36, 48)
    assert item["query_images"].shape == (10, 3, 36, 48)
    assert item["reference_images"].dtype == torch.float32
    for key, shape in (("reference_times", (25,)), ("query_times", (10,)), ("true_warp", (10,)),
                       ("reference_positions", (25, 2)), ("query_positions", (10, 2)), ("true_positions", (10, 2))):
        assert item[key].shape == shape and item[key].dtype == torch.float64
    # Normalisation undone gives the stored pixels back.
    rgb = read_rgb(tiny_world.prepared / pair.query / pair.query_images[3])
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    restored = (item["query_images"][3] * std + mean) * 255.0
    np.testing.assert_allclose(restored.permute(1, 2, 0).numpy(), rgb, atol=1e-3)
    np.testing.assert_array_equal(item["true_warp"].numpy(), pair.true_warp_s)
    assert item["reference_positions"][0, 1] > 5.7e6  # northing kept exactly in float64


def test_resize_and_default_collate(pairs_csv, tiny_world):
    dataset = SequencePairDataset(pairs_csv, tiny_world.prepared, image_size=(32, 24))
    batch = torch.utils.data.default_collate([dataset[0], dataset[len(dataset) - 1]])
    assert batch["reference_images"].shape == (2, 25, 3, 24, 32)
    assert batch["index"].tolist() == [0, len(dataset) - 1]
