import numpy as np
import pytest

from seqvpr.extraction import DescriptorFile, read_descriptor_file, write_descriptor_file


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
