"""The shared writers: atomic files with ordinary permissions, and the output-folder rule."""

import os
import stat

import pytest

from seqvpr.errors import OutputConflictError, SeqvprError
from seqvpr.io import OPTIONS_FILE, atomic_path, claim_output_dir, read_npz


def test_atomic_path_uses_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.txt") as temporary:
            temporary.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("new")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_claim_output_dir_resumes_and_refuses_other_options(tmp_path):
    out = tmp_path / "run"
    assert claim_output_dir(out, {"seed": 0, "size": [48, 36], "root": tmp_path}) is False
    (out / "result.txt").write_text("kept")
    assert claim_output_dir(out, {"seed": 0, "size": (48, 36), "root": tmp_path}) is True
    with pytest.raises(OutputConflictError, match=r"seed \(was 0, now 1\).*--overwrite"):
        claim_output_dir(out, {"seed": 1, "size": [48, 36], "root": tmp_path})
    assert (out / "result.txt").read_text() == "kept"
    assert claim_output_dir(out, {"seed": 1, "size": [48, 36], "root": tmp_path}, overwrite=True) is False
    assert sorted(p.name for p in out.iterdir()) == [OPTIONS_FILE]


def test_claim_output_dir_never_deletes_foreign_folders(tmp_path):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(SeqvprError, match="not written by seqvpr"):
        claim_output_dir(foreign, {"seed": 0}, overwrite=True)
    assert (foreign / "thesis.tex").read_text() == "precious"
    file_out = tmp_path / "file"
    file_out.write_text("x")
    with pytest.raises(SeqvprError, match="is not a folder"):
        claim_output_dir(file_out, {"seed": 0})


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[: len(data) // 2], "not a readable .npz file"),
    (lambda data: data[:100], "not a readable .npz file"),
    (lambda data: b"", "empty file"),
    (lambda data: b"times,values\n1,2\n", "not a readable .npz file"),
])
def test_read_npz_names_a_damaged_file(tmp_path, damage, message):
    import numpy as np

    path = tmp_path / "signal.npz"
    np.savez(path, times=np.arange(50.0), values=np.ones((50, 4)))
    whole = read_npz(path)
    assert sorted(whole) == ["times", "values"] and whole["values"].shape == (50, 4)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(SeqvprError, match=rf"signal.npz: {message}.*expected a signal"):
        read_npz(path, "a signal")


def test_claim_output_dir_names_nested_options_by_dotted_path(tmp_path):
    out = tmp_path / "run"
    claim_output_dir(out, {"seed": 0, "config": {"gdtw": {"lam": 0.1, "grid_size": 50}}})
    with pytest.raises(OutputConflictError, match=r"config.gdtw.lam \(was 0.1, now 0.5\)\. Pass --overwrite") as error:
        claim_output_dir(out, {"seed": 0, "config": {"gdtw": {"lam": 0.5, "grid_size": 50}}})
    assert "grid_size" not in str(error.value) and "seed" not in str(error.value)
