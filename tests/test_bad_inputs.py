"""The bad-input probe: commands run as a new user would run them, with wrong options,
broken files and reruns into folders of other runs.

Every case must end with exit status 2 and one message line naming the culprit (the
option, file, field or value), and must leave every file as it was: nothing written,
nothing changed, no folder created. All cases share one tiny synthetic world (two
traverses of a 420 m route, 48x36 images), made once for the module with the commands
themselves.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from seqvpr.cli import main


@dataclass(frozen=True)
class World:
    root: Path
    raw: Path
    prepared: Path
    pairs: Path
    descriptors: Path  # <traverse>.npz from `seqvpr extract`, one encoder
    model: Path  # that encoder's checkpoint
    evaluation: Path  # `seqvpr evaluate` output with model=descriptors

    def traverse(self, index: int) -> str:
        return sorted(path.name for path in self.prepared.iterdir() if path.is_dir())[index]


EXTRACT = ["--preset", "small", "--backbone-weights", "random", "--image-size", "48x36", "--kmeans-images", "20"]
SYNTH = ["--seed", "0", "--length-m", "420", "--width", "48", "--height", "36", "--conditions", "overcast,sunny",
         "--workers", "1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("probe_world")
    world = World(root, root / "raw", root / "prepared", root / "pairs", root / "descriptors", root / "model.pt",
                  root / "evaluation")
    assert main(["synth", "--out", str(world.raw), *SYNTH]) == 0
    assert main(["prepare-robotcar", str(world.raw), "--out", str(world.prepared), "--long-side", "48"]) == 0
    assert main(["pairs", str(world.prepared), "--out", str(world.pairs), "--train-fraction", "0.5"]) == 0
    return world


@pytest.fixture(scope="module")
def encoded(world) -> World:
    """The world with descriptors, their encoder and an evaluation (for the extract/evaluate cases)."""
    first, second = world.traverse(0), world.traverse(1)
    assert main(["extract", str(world.prepared / first), "--out", str(world.descriptors / f"{first}.npz"), *EXTRACT,
                 "--save-model", str(world.model)]) == 0
    assert main(["extract", str(world.prepared / second), "--out", str(world.descriptors / f"{second}.npz"),
                 "--model", str(world.model)]) == 0
    assert main(["evaluate", *map(str, sorted(world.pairs.glob("test_*.csv"))), "--traverses", str(world.prepared),
                 "--model", f"base={world.descriptors}", "--out", str(world.evaluation), "--methods", "gdtw",
                 "--no-progress"]) == 0
    return world


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every file and folder under ``roots``: content hash, size, mtime and mode."""
    state = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            stat = path.stat()
            digest = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else "folder"
            state[str(path)] = (digest, stat.st_size, stat.st_mtime_ns, stat.st_mode)
    return state


def run(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``seqvpr argv`` (argparse errors exit through SystemExit)."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


# --- case setups: they write their broken inputs under tmp (never into the world) ---------


def raw_copy(world: World, tmp: Path) -> Path:
    """A copy of the first raw traverse under tmp/raw; returns its folder."""
    name = sorted(path.name for path in world.raw.iterdir() if path.is_dir())[0]
    return Path(shutil.copytree(world.raw / name, tmp / "raw" / name))


def prepared_copy(world: World, tmp: Path) -> Path:
    """The prepared traverses under tmp/prepared, without images (pairs reads only the CSVs)."""
    return Path(shutil.copytree(world.prepared, tmp / "prepared", ignore=shutil.ignore_patterns("*.png")))


def missing_images(world: World, tmp: Path) -> None:
    for image in sorted((raw_copy(world, tmp) / "stereo" / "centre").glob("*.png"))[5:7]:
        image.unlink()


def garbage_ins(world: World, tmp: Path) -> None:
    (raw_copy(world, tmp) / "gps" / "ins.csv").write_bytes(b"\x00\x01\x02garbage\xff\xfe")


def huge_timestamp(world: World, tmp: Path) -> None:
    path = raw_copy(world, tmp) / "stereo.timestamps"
    lines = path.read_text().splitlines()
    lines[3] = "9" * 25 + " 1"
    path.write_text("\n".join(lines) + "\n")


def split_file(text: str) -> Callable[[World, Path], None]:
    def write(world: World, tmp: Path) -> None:
        (tmp / "splits.yaml").write_text(text.format(reference=world.traverse(0)))

    return write


def traverse_csv(edit: Callable[[bytes], bytes]) -> Callable[[World, Path], None]:
    def write(world: World, tmp: Path) -> None:
        csv = prepared_copy(world, tmp) / world.traverse(1) / "traverse.csv"
        csv.write_bytes(edit(csv.read_bytes()))

    return write


def a_file(world: World, tmp: Path) -> None:
    (tmp / "taken").write_text("a file, not a folder\n")


def repeated_time(data: bytes) -> bytes:
    lines = data.decode().splitlines()
    cells, previous = lines[4].split(","), lines[3].split(",")
    cells[1] = previous[1]
    lines[4] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def nan_time(data: bytes) -> bytes:
    lines = data.decode().splitlines()
    cells = lines[4].split(",")
    cells[1] = "nan"
    lines[4] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def signals(damage: Callable[[bytes], bytes]) -> Callable[[World, Path], None]:
    """tmp/reference.npz, a good signal, and tmp/query.npz, a damaged one."""

    def write(world: World, tmp: Path) -> None:
        times = np.arange(30.0)
        np.savez(tmp / "reference.npz", times=times, values=np.stack([np.sin(times), np.cos(times)], axis=1))
        np.savez(tmp / "query.npz", times=times[5:15], values=np.stack([np.sin(times), np.cos(times)], axis=1)[5:15])
        (tmp / "query.npz").write_bytes(damage((tmp / "query.npz").read_bytes()))

    return write


def align(world: World, tmp: Path) -> list[str]:
    return ["align", str(tmp / "reference.npz"), str(tmp / "query.npz"), "--out", str(tmp / "warp.npz")]


def damaged_model(damage: Callable[[bytes], bytes]) -> Callable[[World, Path], None]:
    def write(world: World, tmp: Path) -> None:
        (tmp / "model.pt").write_bytes(damage(world.model.read_bytes()))

    return write


def nan_model(world: World, tmp: Path) -> None:
    import torch

    checkpoint = torch.load(world.model, weights_only=True)
    checkpoint["state_dict"]["netvlad.centroids"][0, 0] = float("nan")
    torch.save(checkpoint, tmp / "model.pt")


def random_mat(world: World, tmp: Path) -> None:
    (tmp / "net.mat").write_bytes(np.random.default_rng(0).bytes(5000))


def timestamp_images(*names: str) -> Callable[[World, Path], None]:
    def write(world: World, tmp: Path) -> None:
        images = sorted((world.prepared / world.traverse(0) / "images").iterdir())
        (tmp / "images").mkdir()
        for name, image in zip(names, images):
            shutil.copy(image, tmp / "images" / name)

    return write


def descriptors_copy(edit: Callable[[World, Path], None] | None = None) -> Callable[[World, Path], None]:
    """tmp/descriptors: a copy of the world's descriptors folder, then ``edit``."""

    def write(world: World, tmp: Path) -> None:
        shutil.copytree(world.descriptors, tmp / "descriptors")
        if edit is not None:
            edit(world, tmp)

    return write


def truncate_second(world: World, tmp: Path) -> None:
    path = tmp / "descriptors" / f"{world.traverse(1)}.npz"
    path.write_bytes(path.read_bytes()[:2000])


def rewrite_second(values: Callable[[np.ndarray], np.ndarray] = lambda v: v,
                   metadata: Callable[[dict], dict] = lambda m: m) -> Callable[[World, Path], None]:
    """Rewrites tmp/descriptors/<second traverse>.npz with changed values or metadata."""

    def edit(world: World, tmp: Path) -> None:
        from seqvpr.extraction import DescriptorFile, read_descriptor_file, write_descriptor_file

        path = tmp / "descriptors" / f"{world.traverse(1)}.npz"
        data = read_descriptor_file(path)
        write_descriptor_file(path, DescriptorFile(data.times, values(data.values.copy()), data.image_names,
                                                   data.positions, data.utm_zone, metadata=metadata(data.metadata)))

    return edit


def with_nan(values: np.ndarray) -> np.ndarray:
    values[::3, 0] = np.nan  # every third image, so some the pairs use
    return values


def pairs_with_repeated_time(world: World, tmp: Path) -> None:
    path = sorted(world.pairs.glob("test_*.csv"))[0]
    lines = path.read_text().splitlines()
    columns = lines[0].split(",")
    cells = lines[1].split(",")
    cells[columns.index("query_time_s_5")] = cells[columns.index("query_time_s_4")]
    lines[1] = ",".join(cells)
    (tmp / path.name).write_text("\n".join(lines) + "\n")


def evaluate_with(*extra: str, pairs: Callable[[World, Path], list[Path]] | None = None,
                  model: Callable[[World, Path], str] | None = None,
                  out: Callable[[World, Path], Path] | None = None) -> Callable[[World, Path], list[str]]:
    def argv(world: World, tmp: Path) -> list[str]:
        files = pairs(world, tmp) if pairs else sorted(world.pairs.glob("test_*.csv"))
        return ["evaluate", *map(str, files), "--traverses", str(world.prepared),
                "--model", model(world, tmp) if model else f"base={world.descriptors}",
                "--out", str(out(world, tmp) if out else tmp / "new"), "--no-progress", *extra]

    return argv


def extract_with(*extra: str, images: Callable[[World, Path], Path] | None = None) -> Callable[[World, Path], list[str]]:
    def argv(world: World, tmp: Path) -> list[str]:
        folder = images(world, tmp) if images else world.prepared / world.traverse(0)
        return ["extract", str(folder), "--out", str(tmp / "out.npz"), *extra]

    return argv


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[World, Path], list[str]]
    culprit: str  # text the message must contain
    setup: Callable[[World, Path], None] | None = None
    encoded: bool = False  # needs the world's descriptors, encoder and evaluation


def Encoded(*args, **kwargs) -> Case:  # noqa: N802 - reads as a kind of Case
    return Case(*args, **kwargs, encoded=True)


def synth_into(out: Callable[[World, Path], Path], *changes: str) -> Callable[[World, Path], list[str]]:
    def argv(world: World, tmp: Path) -> list[str]:
        options = list(SYNTH)
        for option, value in zip(changes[::2], changes[1::2]):
            if option in options:
                options[options.index(option) + 1] = value
            else:
                options += [option, value]
        return ["synth", "--out", str(out(world, tmp)), *options]

    return argv


def new_folder(world: World, tmp: Path) -> Path:
    return tmp / "new"


CASES = [
    Case("synth-length-negative", synth_into(new_folder, "--length-m", "-5"), "--length-m"),
    Case("synth-length-zero", synth_into(new_folder, "--length-m", "0"), "--length-m"),
    Case("synth-length-nan", synth_into(new_folder, "--length-m", "nan"), "--length-m"),
    Case("synth-odd-width", synth_into(new_folder, "--width", "47"), "47x36"),
    Case("synth-unknown-condition", synth_into(new_folder, "--conditions", "overcast,foggy"), "foggy"),
    Case("synth-workers-zero", synth_into(new_folder, "--workers", "0"), "--workers"),
    Case("synth-other-size-over-world", synth_into(lambda w, t: w.raw, "--width", "64"), "camera.width (was 48, now 64)"),
    Case("synth-other-conditions-over-world", synth_into(lambda w, t: w.raw, "--conditions", "overcast,snow"),
         "conditions (was ['overcast', 'sunny'], now ['overcast', 'snow'])"),
    Case("synth-other-seed-over-world", synth_into(lambda w, t: w.raw, "--seed", "1"), "seed (was 0, now 1)"),
    Case("synth-out-is-a-file", synth_into(lambda w, t: t / "taken"), "taken exists and is not a folder", a_file),
    Case("prepare-other-long-side-over-world",
         lambda w, t: ["prepare-robotcar", str(w.raw), "--out", str(w.prepared), "--long-side", "24"],
         "long_side (was 48, now 24)"),
    Case("prepare-long-side-zero",
         lambda w, t: ["prepare-robotcar", str(w.raw), "--out", str(t / "new"), "--long-side", "0"], "--long-side"),
    Case("prepare-out-is-a-file",
         lambda w, t: ["prepare-robotcar", str(w.raw), "--out", str(t / "taken")], "taken exists and is not a folder",
         a_file),
    Case("prepare-missing-images",
         lambda w, t: ["prepare-robotcar", str(t / "raw"), "--out", str(t / "new")], "pass --skip-missing-images",
         missing_images),
    Case("prepare-garbage-ins-csv",
         lambda w, t: ["prepare-robotcar", str(t / "raw"), "--out", str(t / "new")], "ins.csv", garbage_ins),
    Case("prepare-huge-timestamp",
         lambda w, t: ["prepare-robotcar", str(t / "raw"), "--out", str(t / "new")],
         "stereo.timestamps, line 4: column 'timestamp' should be an integer", huge_timestamp),
    Case("prepare-unknown-traverse",
         lambda w, t: ["prepare-robotcar", str(w.raw), "--out", str(t / "new"), "--traverses", "2001-01-01"],
         "2001-01-01"),
    Case("prepare-lut-missing",
         lambda w, t: ["prepare-robotcar", str(w.raw), "--out", str(t / "new"), "--undistortion-lut",
                       str(t / "nowhere_lut.bin")], "nowhere_lut.bin: no such file"),
    Case("prepare-lut-wrong-size",
         lambda w, t: ["prepare-robotcar", str(w.raw), "--out", str(t / "new"), "--undistortion-lut",
                       str(t / "taken")], "taken: 2 values, expected 2 x 36 x 48", a_file),
    Case("prepare-conditions-file-missing",
         lambda w, t: ["prepare-robotcar", str(w.raw), "--out", str(t / "new"), "--conditions",
                       str(t / "nowhere.csv")], "nowhere.csv: no such file"),
    Case("pairs-split-file-string-int",
         lambda w, t: ["pairs", str(w.prepared), "--out", str(t / "new"), "--split-file", str(t / "splits.yaml")],
         "splits.yaml: splits.test: reference_length",
         split_file('splits:\n  test:\n    references: [{reference}]\n    reference_length: "25"\n')),
    Case("pairs-split-file-duplicate-key",
         lambda w, t: ["pairs", str(w.prepared), "--out", str(t / "new"), "--split-file", str(t / "splits.yaml")],
         "duplicate key 'test'",
         split_file("splits:\n  test:\n    references: [{reference}]\n  test:\n    references: [{reference}]\n")),
    Case("pairs-split-file-missing",
         lambda w, t: ["pairs", str(w.prepared), "--out", str(t / "new"), "--split-file", str(t / "nowhere.yaml")],
         "nowhere.yaml"),
    Case("pairs-split-file-not-yaml",
         lambda w, t: ["pairs", str(w.prepared), "--out", str(t / "new"), "--split-file", str(t / "splits.yaml")],
         "splits.yaml: not valid YAML", split_file("splits: [unclosed\n")),
    Case("pairs-other-seed-over-world",
         lambda w, t: ["pairs", str(w.prepared), "--out", str(w.pairs), "--train-fraction", "0.5", "--seed", "3"],
         "seed (was 0, now 3)"),
    Case("pairs-train-fraction-above-one",
         lambda w, t: ["pairs", str(w.prepared), "--out", str(t / "new"), "--train-fraction", "1.5"],
         "--train-fraction"),
    Case("pairs-out-is-a-file",
         lambda w, t: ["pairs", str(w.prepared), "--out", str(t / "taken"), "--train-fraction", "0.5"],
         "taken exists and is not a folder", a_file),
    Case("pairs-traverse-csv-not-text",
         lambda w, t: ["pairs", str(t / "prepared"), "--out", str(t / "new")], "traverse.csv: not a UTF-8 text table",
         traverse_csv(lambda data: data[:40] + b"\xff\xfe\x00" + data[40:])),
    Case("pairs-traverse-csv-nan-time",
         lambda w, t: ["pairs", str(t / "prepared"), "--out", str(t / "new")],
         "traverse.csv, line 5: column 'time_s' is not finite", traverse_csv(nan_time)),
    Case("align-truncated-npz", align, "query.npz: not a readable .npz file", signals(lambda data: data[:300])),
    Case("align-empty-npz", align, "query.npz: empty file", signals(lambda data: b"")),
    Case("align-text-npz", align, "query.npz: not a readable .npz file", signals(lambda data: b"times,values\n")),
    Case("align-grid-size-huge", lambda w, t: [*align(w, t), "--grid-size", "3000000000"],
         "--grid-size: 3000000000 candidates need 11,444 MiB per knot", signals(lambda data: data)),
    Case("align-out-is-a-folder", lambda w, t: [*align(w, t)[:-1], str(t)], "is a folder", signals(lambda data: data)),
    Case("pairs-traverse-csv-repeated-time",
         lambda w, t: ["pairs", str(t / "prepared"), "--out", str(t / "new")],
         "traverse.csv, line 5: duplicate time_s", traverse_csv(repeated_time)),
    Case("pairs-traverse-csv-no-image-column",
         lambda w, t: ["pairs", str(t / "prepared"), "--out", str(t / "new")],
         "traverse.csv: missing column(s) image", traverse_csv(lambda data: data.replace(b"image,", b"picture,", 1))),
    Case("pairs-unknown-reference",
         lambda w, t: ["pairs", str(w.prepared), "--out", str(t / "new"), "--reference", "1999-01-01"],
         "reference traverse '1999-01-01' not found"),
    Case("synth-fps-above-ins-rate", synth_into(new_folder, "--fps", "80"), "frame_rate_hz must be in (0, ins_rate_hz]"),
    Case("extract-image-size-zero", extract_with(*EXTRACT[:-4], "--image-size", "0x0"), "image_size 0x0"),
    Case("extract-batch-size-zero", extract_with(*EXTRACT, "--batch-size", "0"), "--batch-size"),
    Case("extract-chunk-size-negative", extract_with(*EXTRACT, "--chunk-size", "-3"), "--chunk-size"),
    Encoded("extract-model-truncated", extract_with("--model", "MODEL"), "model.pt: not a readable PyTorch file",
         damaged_model(lambda data: data[: len(data) // 3])),
    Encoded("extract-model-empty", extract_with("--model", "MODEL"), "model.pt: not a readable PyTorch file",
         damaged_model(lambda data: b"")),
    Encoded("extract-model-text", extract_with("--model", "MODEL"), "model.pt: not a readable PyTorch file",
         damaged_model(lambda data: b"weights: 1 2 3\n")),
    Encoded("extract-model-nan-weights", extract_with("--model", "MODEL"),
         "model.pt: netvlad.centroids holds 1 of", nan_model),
    Encoded("extract-backbone-weights-truncated",
         extract_with(*EXTRACT[:2], "--backbone-weights", "MODEL", *EXTRACT[4:]),
         "model.pt: not a readable PyTorch file", damaged_model(lambda data: data[:5000])),
    Case("extract-model-random-mat", extract_with("--model", "MAT"), "net.mat: not a MATLAB NetVLAD", random_mat),
    Case("extract-image-named-1e400", extract_with(*EXTRACT, images=lambda w, t: t / "images"),
         "not times: 1e400.png", timestamp_images("1000000.png", "2000000.png", "1e400.png")),
    Case("extract-out-is-a-folder", lambda w, t: [*extract_with(*EXTRACT)(w, t)[:3], str(t), *EXTRACT],
         "is a folder"),
    Encoded("evaluate-device-bogus", evaluate_with("--device", "bogus"), "device 'bogus'"),
    Encoded("evaluate-batch-images-zero", evaluate_with("--batch-images", "0"), "--batch-images"),
    Encoded("evaluate-batch-images-negative", evaluate_with("--batch-images", "-4"), "--batch-images"),
    Encoded("evaluate-grid-size-huge", evaluate_with("--grid-size", "3000000000"), "--grid-size"),
    Encoded("evaluate-out-is-a-file", evaluate_with(out=lambda w, t: t / "taken"), "taken exists and is not a folder",
         a_file),
    Encoded("evaluate-other-methods-over-previous", evaluate_with("--methods", "dtw", out=lambda w, t: w.evaluation),
         "config.methods (was ['gdtw'], now ['dtw'])"),
    Encoded("evaluate-truncated-descriptors", evaluate_with(model=lambda w, t: f"base={t / 'descriptors'}"),
         ".npz: not a readable .npz file", descriptors_copy(truncate_second)),
    Encoded("evaluate-descriptors-of-two-encoders", evaluate_with(model=lambda w, t: f"base={t / 'descriptors'}"),
         "mixes descriptors of different encoders",
         descriptors_copy(rewrite_second(metadata=lambda m: {**m, "encoder_fingerprint": "0123456789abcdef"}))),
    Encoded("evaluate-nan-descriptors", evaluate_with(model=lambda w, t: f"base={t / 'descriptors'}"),
         "descriptors are not finite", descriptors_copy(rewrite_second(values=with_nan))),
    Encoded("evaluate-pairs-repeated-time",
         evaluate_with(pairs=lambda w, t: sorted(t.glob("test_*.csv"))), "query_time_s_5", pairs_with_repeated_time),
    Encoded("evaluate-model-truncated", evaluate_with(model=lambda w, t: f"base={t / 'model.pt'}"),
         "model.pt: not a readable PyTorch file", damaged_model(lambda data: data[:3000])),
    Case("demo-length-negative", lambda w, t: ["demo", "--out", str(t / "demo"), "--length-m", "-5"], "--length-m"),
    Case("demo-length-nan", lambda w, t: ["demo", "--out", str(t / "demo"), "--length-m", "nan"], "--length-m"),
    Case("pairs-no-traverses", lambda w, t: ["pairs", str(t), "--out", str(t / "new")], "no traverses found"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_naming_the_culprit_and_writes_nothing(case, world, tmp_path, capsys, request):
    if case.encoded:
        request.getfixturevalue("encoded")
    if case.setup is not None:
        case.setup(world, tmp_path)
    before = snapshot(world.root, tmp_path)
    argv = [{"MODEL": str(tmp_path / "model.pt"), "MAT": str(tmp_path / "net.mat")}.get(arg, arg)
            for arg in case.argv(world, tmp_path)]
    status, error = run(argv, capsys)
    assert status == 2, error
    assert case.culprit in error
    assert "Traceback" not in error
    message = [line for line in error.splitlines() if "error:" in line]
    assert len(message) == 1, error
    assert snapshot(world.root, tmp_path) == before


def test_same_options_resume_every_step_without_change(world, capsys):
    """The reruns the cases above refuse work when the options are the same."""
    before = snapshot(world.root)
    assert main(["synth", "--out", str(world.raw), *SYNTH]) == 0
    assert main(["prepare-robotcar", str(world.raw), "--out", str(world.prepared), "--long-side", "48"]) == 0
    after = snapshot(world.root)
    # prepare rewrites traverse.csv (same bytes), synth rewrites its tables (same bytes).
    assert {path: entry[0] for path, entry in after.items()} == {path: entry[0] for path, entry in before.items()}


def test_traverse_csv_with_utf8_byte_order_mark_is_accepted(world, tmp_path, capsys):
    traverse_csv(lambda data: b"\xef\xbb\xbf" + data)(world, tmp_path)
    assert main(["pairs", str(tmp_path / "prepared"), "--out", str(tmp_path / "pairs"), "--train-fraction", "0.5"]) == 0
    for csv in world.pairs.glob("*.csv"):
        assert (tmp_path / "pairs" / csv.name).read_bytes() == csv.read_bytes()
