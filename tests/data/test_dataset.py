import numpy as np
import pytest
import torch

from seqvpr.cli import main
from seqvpr.data.dataset import SequencePairDataset
from seqvpr.data.images import read_rgb
from seqvpr.data.pair_files import make_pairs
from seqvpr.extraction import read_descriptor_file
from seqvpr.vpr import PRESETS, EncoderConfig, NetVLADEncoder, save_encoder


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
    # RGB in [0, 1], not normalised (the encoder normalises): the stored pixels / 255.
    rgb = read_rgb(tiny_world.prepared / pair.query / pair.query_images[3])
    np.testing.assert_array_equal(item["query_images"][3].permute(1, 2, 0).numpy(), rgb / np.float32(255.0))
    np.testing.assert_array_equal(item["true_warp"].numpy(), pair.true_warp_s)
    assert item["reference_positions"][0, 1] > 5.7e6  # northing kept exactly in float64


def test_resize_and_default_collate(pairs_csv, tiny_world):
    dataset = SequencePairDataset(pairs_csv, tiny_world.prepared, image_size=(32, 24))
    batch = torch.utils.data.default_collate([dataset[0], dataset[len(dataset) - 1]])
    assert batch["reference_images"].shape == (2, 25, 3, 24, 32)
    assert batch["index"].tolist() == [0, len(dataset) - 1]


def test_dataset_images_through_the_encoder_match_seqvpr_extract(pairs_csv, tiny_world, tmp_path):
    torch.manual_seed(0)
    config = EncoderConfig(**{**PRESETS["small"].to_dict(), "image_width": 40, "image_height": 30})
    encoder = NetVLADEncoder(config).eval()
    checkpoint = save_encoder(encoder, tmp_path / "encoder.pt")
    dataset = SequencePairDataset(pairs_csv, tiny_world.prepared, image_size=(40, 30))
    item, pair = dataset[0], dataset.pairs[0]
    out = tmp_path / "query.npz"
    assert main(["extract", str(tiny_world.prepared / pair.query), "--out", str(out), "--model", str(checkpoint),
                 "--device", "cpu"]) == 0
    extracted = read_descriptor_file(out)
    rows = [extracted.image_names.tolist().index(str(name)) for name in pair.query_images]
    with torch.no_grad():
        descriptors = encoder(item["query_images"]).numpy()
    np.testing.assert_allclose(descriptors, extracted.values[rows], rtol=0, atol=1e-6)
