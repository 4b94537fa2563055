import json
import urllib.error

import cv2
import numpy as np
import pytest
import torch

import seqvpr.cli.extract as extract_command
import seqvpr.extraction as extraction
from seqvpr.cli import main
from seqvpr.errors import SeqvprError
from seqvpr.vpr import images_to_tensor, load_encoder
from seqvpr.extraction import DescriptorFile, read_descriptor_file, write_descriptor_file

SMALL = ["--preset", "small", "--backbone-weights", "random", "--image-size", "48x32", "--kmeans-images", "6"]


@pytest.fixture
def folder(tmp_path):
    """Seven synthetic street-ish images named RobotCar-style by microsecond timestamps."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    base = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    for i in range(7):
        image = np.roll(base, 6 * i, axis=1)
        cv2.imwrite(str(folder / f"{1418381798000000 + i * 250000}.png"), image)
    return folder


def _run(folder, out, *extra):
    return main(["extract", str(folder), "--out", str(out), *SMALL, *extra])


def test_descriptors_times_and_values(tmp_path, folder, capsys):
    out = tmp_path / "descriptors.npz"
    assert _run(folder, out, "--save-model", str(tmp_path / "encoder.pt"), "--batch-size", "3") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["descriptors"] == 7 and summary["dim"] == 4096
    result = read_descriptor_file(out)
    np.testing.assert_allclose(result.times, 1418381798.0 + 0.25 * np.arange(7))
    assert result.values.shape == (7, 4096) and result.values.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.values, axis=1), 1.0, atol=1e-5)
    assert result.metadata["encoder"]["num_clusters"] == 16 and result.skipped == ()
    assert not (tmp_path / "descriptors.npz.partial").exists()
    # the same encoder applied by hand gives the same descriptors
    encoder = load_encoder(tmp_path / "encoder.pt")
    images = [cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB) for name in result.image_names]
    with torch.no_grad():
        expected = encoder(images_to_tensor(images, encoder.config)).numpy()
    np.testing.assert_allclose(result.values, expected, atol=1e-5)
    # --model with the saved checkpoint, float16 storage
    again = tmp_path / "again.npz"
    assert main(["extract", str(folder), "--out", str(again), "--model", str(tmp_path / "encoder.pt"), "--float16"]) == 0
    half = read_descriptor_file(again)
    assert half.values.dtype == np.float16
    np.testing.assert_allclose(half.values.astype(np.float32), result.values, atol=1e-3)


def test_interrupted_run_resumes_and_matches_uninterrupted(tmp_path, folder, chunk_writes):
    reference = tmp_path / "reference.npz"
    assert _run(folder, reference, "--chunk-size", "2") == 0

    out = tmp_path / "resumed.npz"
    chunk_writes(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        _run(folder, out, "--chunk-size", "2")
    assert not out.exists() and sorted(p.name for p in (tmp_path / "resumed.npz.partial").glob("chunk_*")) == [
        "chunk_000000000.npz", "chunk_000000002.npz"]

    resumed = chunk_writes()
    assert _run(folder, out, "--chunk-size", "2") == 0
    assert resumed == [4, 6]
    np.testing.assert_array_equal(read_descriptor_file(out).values, read_descriptor_file(reference).values)


def test_changed_options_refuse_to_resume_unless_restart(tmp_path, folder, monkeypatch):
    out = tmp_path / "d.npz"
    monkeypatch.setattr(extraction, "_write_chunk", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        _run(folder, out, "--chunk-size", "2")
    monkeypatch.undo()
    with pytest.raises(SeqvprError, match="differs in float16.*--restart"):
        extract_command.run(extract_args(folder, out, "--chunk-size", "2", "--float16"))
    assert _run(folder, out, "--chunk-size", "2", "--float16", "--restart") == 0


def extract_args(folder, out, *extra):
    import argparse

    parser = argparse.ArgumentParser()
    extract_command.add_arguments(parser)
    return parser.parse_args([str(folder), "--out", str(out), *SMALL, *extra])


def test_unreadable_images_are_named_or_skipped(tmp_path, folder, capsys):
    (folder / "1418381802000000.png").write_bytes(b"not a png")
    (folder / "1418381801500000.jpg").write_bytes(b"")
    out = tmp_path / "d.npz"
    assert _run(folder, out) == 2
    error = capsys.readouterr().err
    assert "1418381802000000.png" in error and "--skip-bad" in error
    assert _run(folder, out, "--skip-bad") == 0
    result = read_descriptor_file(out)
    assert result.skipped == ("1418381801500000.jpg", "1418381802000000.png")
    assert len(result.values) == 7 and "1418381802000000.png" not in result.image_names


def test_offline_imagenet_tells_how_to_provide_weights(tmp_path, folder, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    code = main(["extract", str(folder), "--out", str(tmp_path / "d.npz"), "--preset", "small"])
    assert code == 2 and "--backbone-weights PATH" in capsys.readouterr().err


def test_list_images_time_modes(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    for name in ("10.5.png", "2.25.png", "3.png", "notes.txt"):
        (folder / name).write_bytes(b"")
    names, times = extraction.list_images(folder)
    assert names == ["2.25.png", "3.png", "10.5.png"] and times.tolist() == [2.25, 3.0, 10.5]
    names, times = extraction.list_images(folder, "index")
    assert names == ["10.5.png", "2.25.png", "3.png"] and times.tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(SeqvprError, match="not times: 10.5.png"):
        extraction.list_images(folder, "us")
    (folder / "3.0.jpg").write_bytes(b"")
    with pytest.raises(SeqvprError, match="3.0.jpg and 3.png have the same time"):
        extraction.list_images(folder)
    with pytest.raises(SeqvprError, match="not a folder"):
        extraction.list_images(tmp_path / "missing")


def test_descriptors_file_aligns_with_seqvpr_align(tmp_path, folder):
    reference = tmp_path / "reference.npz"
    assert _run(folder, reference, "--save-model", str(tmp_path / "encoder.pt")) == 0
    query_folder = tmp_path / "query"
    query_folder.mkdir()
    for name in sorted(p.name for p in folder.iterdir())[2:5]:
        (query_folder / name).write_bytes((folder / name).read_bytes())
    query = tmp_path / "query.npz"
    assert main(["extract", str(query_folder), "--out", str(query), "--model", str(tmp_path / "encoder.pt")]) == 0
    assert main(["align", str(reference), str(query), "--out", str(tmp_path / "warp.npz"), "--method", "dtw",
                 "--subsequence"]) == 0
    with np.load(tmp_path / "warp.npz") as warp:
        np.testing.assert_allclose(warp["warp"], read_descriptor_file(query).times, atol=1e-6)


def test_traverse_input_writes_positions(tmp_path, folder):
    from seqvpr.data.geo import UtmZone
    from seqvpr.data.traverse import Traverse, write_traverse

    names = sorted(p.name for p in folder.iterdir())
    image_paths = np.array([f"images/{name}" for name in names], dtype=object)
    times = 100.0 + np.arange(len(names)) * 0.5
    positions = np.stack([620000.0 + 3.0 * np.arange(len(names)), 5735000.0 + np.arange(len(names))], axis=1)
    traverse = Traverse("drive", tmp_path, image_paths, times, positions, UtmZone.parse("30U"),
                        np.zeros(len(names)))
    write_traverse(traverse)
    out = tmp_path / "drive.npz"
    assert _run(tmp_path, out) == 0
    result = read_descriptor_file(out)
    assert result.image_names.tolist() == list(image_paths) and result.utm_zone == "30U"
    np.testing.assert_array_equal(result.times, times)
    np.testing.assert_array_equal(result.positions, positions)
    assert len(result.metadata["encoder_fingerprint"]) == 16


def test_config_file_gives_the_options_and_flags_win(tmp_path, folder, capsys):
    config = tmp_path / "extract.yaml"
    config.write_text("preset: small\nbackbone_weights: random\nimage_size: 48x32\nkmeans_images: 6\nfloat16: true\n")
    from_file = tmp_path / "file.npz"
    assert main(["extract", str(folder), "--out", str(from_file), "--config", str(config)]) == 0
    assert read_descriptor_file(from_file).values.dtype == np.float16
    by_flags = tmp_path / "flags.npz"
    assert _run(folder, by_flags, "--float16") == 0
    np.testing.assert_array_equal(read_descriptor_file(from_file).values, read_descriptor_file(by_flags).values)
    overridden = tmp_path / "overridden.npz"
    assert main(["extract", str(folder), "--out", str(overridden), "--config", str(config), "--image-size", "40x30"]) == 0
    assert read_descriptor_file(overridden).metadata["encoder"]["image_width"] == 40
    capsys.readouterr()
    config.write_text("preset: small\nbatch_size: '8'\n")
    assert main(["extract", str(folder), "--out", str(tmp_path / "x.npz"), "--config", str(config)]) == 2
    assert "extract.yaml: batch_size: expected int, got '8' (str)" in capsys.readouterr().err


def test_round_trip_with_positions(tmp_path):
    data = DescriptorFile(
        times=np.array([0.0, 0.5, 1.25]),
        values=np.eye(3, 4, dtype=np.float16),
        image_names=np.array(["a.png", "b.png", "c.png"]),
        positions=np.array([[620000.0, 5735000.0], [620001.0, 5735000.5], [620002.0, 5735001.0]]),
        utm_zone="30U",
        skipped=("bad.png",),
        metadata={"encoder": {"num_clusters": 4}},
    )
    loaded = read_descriptor_file(write_descriptor_file(tmp_path / "d.npz", data))
    np.testing.assert_array_equal(loaded.values, data.values)
    assert loaded.values.dtype == np.float16
    np.testing.assert_array_equal(loaded.times, data.times)
    np.testing.assert_array_equal(loaded.positions, data.positions)
    assert loaded.image_names.tolist() == ["a.png", "b.png", "c.png"]
    assert (loaded.utm_zone, loaded.skipped, loaded.metadata) == ("30U", ("bad.png",), data.metadata)


def test_shapes_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"times \(N,\) and values \(N, D\)"):
        DescriptorFile(times=np.zeros(3), values=np.zeros((2, 4)), image_names=np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="positions and utm_zone go together"):
        DescriptorFile(times=np.zeros(1), values=np.zeros((1, 4)), image_names=np.array(["a"]),
                       positions=np.zeros((1, 2)))
    np.savez(tmp_path / "other.npz", times=np.zeros(2))
    with pytest.raises(ValueError, match=r"missing \['image_names', 'values'\]"):
        read_descriptor_file(tmp_path / "other.npz")
