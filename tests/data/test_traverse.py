import shutil
from pathlib import Path

import numpy as np
import pytest

from seqvpr.data.geo import UtmZone, utm_to_latlon
from seqvpr.data.images import write_png
from seqvpr.data.tables import read_table
from seqvpr.data.traverse import Traverse, find_traverses, read_traverse, write_traverse


def make_traverse(root: Path, count: int = 4, name: str = "drive") -> Traverse:
    directory = root / name
    image_paths = np.array([f"images/{i:03d}.png" for i in range(count)], dtype=object)
    for image in image_paths:
        write_png(directory / image, np.full((6, 8, 3), 100, np.uint8))
    positions = np.stack([620000.0 + 2.0 * np.arange(count), np.full(count, 5734000.0)], axis=-1)
    return Traverse(
        name, directory, image_paths, 1.5e9 + 0.5 * np.arange(count), positions, UtmZone(30, "U"),
        np.zeros(count), "snow",
    )


def write_csv(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_write_read_round_trip(tmp_path):
    traverse = make_traverse(tmp_path)
    write_traverse(traverse)
    back = read_traverse(tmp_path / "drive")
    assert back.name == "drive" and back.condition == "snow" and back.zone == UtmZone(30, "U")
    np.testing.assert_array_equal(back.image_paths, traverse.image_paths)
    np.testing.assert_allclose(back.times_s, traverse.times_s, atol=1e-6)
    np.testing.assert_allclose(back.positions, traverse.positions, atol=1e-4)
    np.testing.assert_allclose(back.path_length_m, [0.0, 2.0, 4.0, 6.0], atol=1e-3)
    assert back.image_path(2) == tmp_path / "drive" / "images" / "002.png"
    assert find_traverses(tmp_path)[0].name == "drive"


def test_latlon_columns_and_missing_heading(tmp_path):
    traverse = make_traverse(tmp_path)
    latitude, longitude = utm_to_latlon(traverse.positions, traverse.zone)
    rows = "".join(
        f"{traverse.image_paths[i]},{traverse.times_s[i]},{latitude[i]:.9f},{longitude[i]:.9f}\n"
        for i in range(len(traverse))
    )
    write_csv(tmp_path / "drive" / "traverse.csv", "image,time_s,latitude_deg,longitude_deg\n" + rows)
    back = read_traverse(tmp_path / "drive")
    assert back.zone == UtmZone(30, "U") and back.condition == "unknown"
    np.testing.assert_allclose(back.positions, traverse.positions, atol=1e-3)
    np.testing.assert_allclose(back.headings_rad, 0.0, atol=1e-4)  # driving east


@pytest.mark.parametrize(
    "text, message",
    [
        ("image,time_s,easting_m,northing_m\na.png,1,2,3\n", "missing column(s) utm_zone"),
        ("image,time_s\na.png,1\n", "no position columns"),
        ("image,time_s,easting_m,northing_m,utm_zone\n", "empty traverse"),
        ("image,time_s,easting_m,northing_m,utm_zone\na.png,2,1,1,30U\nb.png,1,1,1,30U\n",
         "line 3: non-monotonic time_s"),
        ("image,time_s,easting_m,northing_m,utm_zone\na.png,2,1,1,30U\nb.png,2,1,1,30U\n",
         "line 3: duplicate time_s"),
        ("image,time_s,easting_m,northing_m,utm_zone\na.png,1,x,1,30U\n", "line 2: column 'easting_m'"),
        ("image,time_s,easting_m,northing_m,utm_zone\na.png,1,1,1,30U\nb.png,2,1,1,31U\n",
         "line 3: utm_zone '31U' differs"),
        ("image,time_s,easting_m,northing_m,utm_zone\na.png,1,1,1\n", "line 2: 4 cells"),
        ("image,time_s,latitude_deg,longitude_deg\na.png,1,91,1\n", "line 2: latitude_deg"),
        ("image,time_s,easting_m,northing_m,utm_zone\nmissing.png,1,1,1,30U\n",
         "line 2: image 'missing.png' not found"),
    ],
)
def test_bad_traverse_csv_names_file_and_line(tmp_path, text, message):
    write_csv(tmp_path / "t" / "traverse.csv", text)
    with pytest.raises(ValueError) as error:
        read_traverse(tmp_path / "t")
    assert str(tmp_path / "t" / "traverse.csv") in str(error.value)
    assert message in str(error.value)


def test_extra_and_reordered_columns_are_tolerated(tmp_path):
    write_csv(tmp_path / "t" / "traverse.csv",
              "note,utm_zone,northing_m,easting_m,time_s,image\nx,30U,5,4,1.0,a.png\ny,30U,5,6,2.0,b.png\n")
    traverse = read_traverse(tmp_path / "t", check_images=False)
    np.testing.assert_allclose(traverse.positions, [[4, 5], [6, 5]])


def test_no_traverses_found(tmp_path):
    with pytest.raises(ValueError, match="no traverses found"):
        find_traverses(tmp_path)


def test_table_integers_error(tmp_path):
    write_csv(tmp_path / "x.txt", "10 1\n1.5 1\n")
    table = read_table(tmp_path / "x.txt", delimiter=" ", columns=("timestamp", "chunk"))
    with pytest.raises(ValueError, match=r"x.txt, line 2: column 'timestamp' should be an integer"):
        table.integers("timestamp")


def test_data_modules_import_no_optional_dependency():
    import json
    import subprocess
    import sys

    modules = ["seqvpr.data", "seqvpr.data.traverse", "seqvpr.data.robotcar", "seqvpr.data.prepare",
               "seqvpr.data.pairs", "seqvpr.data.pair_files", "seqvpr.data.synth.drive"]
    code = (
        f"import json, sys; import {', '.join(modules)}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cv2', 'faiss', 'torchvision', 'rospy', 'rclpy', 'librosa'))))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(completed.stdout) == []


def test_traverse_csv_with_byte_order_mark_reads_the_same(tiny_world, tmp_path):
    name = tiny_world.truths[0].name
    copy = shutil.copytree(tiny_world.prepared / name, tmp_path / name)
    csv = copy / "traverse.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())
    plain, marked = read_traverse(tiny_world.prepared / name), read_traverse(copy)
    np.testing.assert_array_equal(marked.times_s, plain.times_s)
    np.testing.assert_array_equal(marked.positions, plain.positions)
    assert marked.condition == plain.condition == "overcast"
