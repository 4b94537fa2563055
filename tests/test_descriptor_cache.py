"""Descriptors are only reused when what they were made from is unchanged, and a
non-finite descriptor is never written: the evaluation cache, extract's partial chunks,
precomputed descriptor folders and checkpoints."""

import logging
import shutil

import cv2
import numpy as np
import pytest
import torch

from seqvpr.cli import main
from seqvpr.errors import SeqvprError
from seqvpr.extraction import (
    DescriptorFile,
    cached_descriptors,
    encode_images,
    precomputed_descriptors,
    read_descriptor_file,
    write_descriptor_file,
)
from seqvpr.vpr import PRESETS, NetVLADEncoder, load_encoder, save_encoder

SMALL = ["--preset", "small", "--backbone-weights", "random", "--image-size", "48x32", "--kmeans-images", "6"]


def small_encoder(seed: int = 0) -> NetVLADEncoder:
    torch.manual_seed(seed)
    config = PRESETS["small"].__class__(**{**PRESETS["small"].to_dict(), "image_width": 48, "image_height": 32})
    return NetVLADEncoder(config).eval()


@pytest.fixture
def root(tmp_path):
    """Two traverse folders of eight distinct images each."""
    rng = np.random.default_rng(0)
    for traverse in ("a", "b"):
        for i in range(8):
            (tmp_path / "traverses" / traverse / "images").mkdir(parents=True, exist_ok=True)
            blocks = rng.integers(0, 255, (4, 6, 3), dtype=np.uint8)  # coarse, so encoders tell them apart
            cv2.imwrite(str(tmp_path / "traverses" / traverse / "images" / f"{i}.png"),
                        cv2.resize(blocks, (48, 32), interpolation=cv2.INTER_NEAREST))
    return tmp_path / "traverses"


def wanted(count: int = 6) -> dict[str, dict[str, float]]:
    return {traverse: {f"images/{i}.png": float(i) for i in range(count)} for traverse in ("a", "b")}


def encode(encoder, path):
    values, _, _ = encode_images(encoder, [path])
    return values[0]


def test_cache_recomputes_a_replaced_image_and_another_root(root, tmp_path, caplog):
    encoder = small_encoder()
    cache = tmp_path / "cache"
    first = cached_descriptors(encoder, cache, root, wanted(), progress=False)
    stamp = (cache / "a.npz").stat().st_mtime_ns
    again = cached_descriptors(encoder, cache, root, wanted(), progress=False)
    assert (cache / "a.npz").stat().st_mtime_ns == stamp  # nothing changed: nothing re-encoded
    np.testing.assert_array_equal(again["a"]["images/2.png"], first["a"]["images/2.png"])
    # Replace one image by another's content, keeping its modification time.
    target = root / "a" / "images" / "2.png"
    mtime = target.stat().st_mtime_ns
    shutil.copyfile(root / "a" / "images" / "7.png", target)
    import os

    os.utime(target, ns=(mtime, mtime))
    with caplog.at_level(logging.WARNING, logger="seqvpr.extraction"):
        second = cached_descriptors(encoder, cache, root, wanted(), progress=False)
    assert "1 image(s) changed" in caplog.text and "images/2.png" in caplog.text
    np.testing.assert_allclose(second["a"]["images/2.png"], encode(encoder, root / "a" / "images" / "7.png"), atol=1e-6)
    assert np.linalg.norm(second["a"]["images/2.png"] - first["a"]["images/2.png"]) > 1e-3  # float noise is ~1e-7
    np.testing.assert_array_equal(second["b"]["images/2.png"], first["b"]["images/2.png"])
    stored = read_descriptor_file(cache / "a.npz")
    row = stored.image_names.tolist().index("images/2.png")
    np.testing.assert_array_equal(stored.values[row], second["a"]["images/2.png"])
    # The same names under another root with other images: all recomputed.
    other = tmp_path / "other"
    shutil.copytree(root, other)
    for i in range(8):
        shutil.copyfile(root / "b" / "images" / f"{i}.png", other / "a" / "images" / f"{i}.png")
    moved = cached_descriptors(encoder, cache, other, wanted(), progress=False)
    for i in range(6):
        np.testing.assert_array_equal(moved["a"][f"images/{i}.png"], first["b"][f"images/{i}.png"])
    assert read_descriptor_file(cache / "a.npz").metadata["traverse_folder"] == str((other / "a").resolve())


def test_non_finite_descriptors_are_refused_and_never_cached(root, tmp_path):
    encoder = small_encoder()
    with torch.no_grad():
        encoder.netvlad.centroids[3, 5] = float("nan")  # the Python API takes any encoder object
    with pytest.raises(SeqvprError, match=r"encoding a: 6 of 6 descriptors are not finite .*images/0.png"):
        cached_descriptors(encoder, tmp_path / "cache", root, wanted(), progress=False)
    assert not list(tmp_path.glob("cache/*.npz"))


def test_precomputed_folder_mixing_encoders_is_an_error(root, tmp_path):
    cache_a, cache_b = tmp_path / "one", tmp_path / "two"
    cached_descriptors(small_encoder(0), cache_a, root, wanted(), progress=False)
    cached_descriptors(small_encoder(1), cache_b, root, wanted(), progress=False)
    assert precomputed_descriptors(cache_a, wanted())["a"]["images/0.png"].shape == (4096,)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(cache_a / "a.npz", mixed / "a.npz")
    shutil.copy(cache_b / "b.npz", mixed / "b.npz")
    with pytest.raises(SeqvprError, match=r"mixes descriptors of different encoders: a.npz has encoder fingerprint "
                                          r"[0-9a-f]{16}, b.npz has [0-9a-f]{16}"):
        precomputed_descriptors(mixed, wanted())
    data = read_descriptor_file(cache_a / "b.npz")
    values = data.values.copy()
    values[3] = np.nan
    write_descriptor_file(mixed / "b.npz", DescriptorFile(data.times, values, data.image_names, metadata=data.metadata))
    shutil.copy(cache_a / "a.npz", mixed / "a.npz")
    with pytest.raises(SeqvprError, match=r"b.npz: 1 of 6 descriptors are not finite .*images/3.png"):
        precomputed_descriptors(mixed, wanted())


@pytest.fixture
def folder(root):
    return root / "a" / "images"


def run_extract(folder, out, *extra):
    return main(["extract", str(folder), "--out", str(out), *SMALL, "--timestamps", "index", *extra])


def test_failed_start_leaves_nothing_and_the_fixed_command_runs(folder, tmp_path, capsys):
    out = tmp_path / "d.npz"
    assert run_extract(folder, out, "--image-size", "0x0") == 2
    assert "image_size 0x0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "traverses"]
    assert run_extract(folder, out) == 0 and read_descriptor_file(out).values.shape == (8, 4096)


def test_damaged_chunks_are_recomputed_with_a_warning(folder, tmp_path, chunk_writes, caplog):
    reference = tmp_path / "reference.npz"
    assert run_extract(folder, reference, "--chunk-size", "2") == 0
    out = tmp_path / "resumed.npz"
    chunk_writes(stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_extract(folder, out, "--chunk-size", "2")
    partial = tmp_path / "resumed.npz.partial"
    (partial / "chunk_000000000.npz").write_bytes(b"")
    chunk = partial / "chunk_000000002.npz"
    chunk.write_bytes(chunk.read_bytes()[:300])
    recomputed = chunk_writes()
    with caplog.at_level(logging.WARNING, logger="seqvpr.extraction"):
        assert run_extract(folder, out, "--chunk-size", "2") == 0
    assert recomputed == [0, 2, 6]
    assert "chunk_000000000.npz: damaged chunk" in caplog.text and "chunk_000000002.npz: damaged chunk" in caplog.text
    np.testing.assert_array_equal(read_descriptor_file(out).values, read_descriptor_file(reference).values)


def test_an_extract_file_serves_as_the_cache_of_its_traverse(root, tmp_path):
    import csv

    traverse = root / "a"
    with open(traverse / "traverse.csv", "w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["image", "time_s", "easting_m", "northing_m", "utm_zone"])
        for i in range(8):
            rows.writerow([f"images/{i}.png", float(i), 620000.0 + 5 * i, 5734000.0, "30U"])
    assert main(["extract", str(traverse), "--out", str(tmp_path / "cache" / "a.npz"), *SMALL,
                 "--save-model", str(tmp_path / "encoder.pt")]) == 0
    stamp = (tmp_path / "cache" / "a.npz").stat().st_mtime_ns
    encoder = load_encoder(tmp_path / "encoder.pt")
    descriptors = cached_descriptors(encoder, tmp_path / "cache", root, {"a": wanted()["a"]}, progress=False)
    assert (tmp_path / "cache" / "a.npz").stat().st_mtime_ns == stamp  # reused, not re-encoded
    extracted = read_descriptor_file(tmp_path / "cache" / "a.npz")
    np.testing.assert_array_equal(descriptors["a"]["images/3.png"], extracted.values[3])
