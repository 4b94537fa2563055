"""`seqvpr align` on .npz signals."""

import pytest

from seqvpr.cli import main


def _write_signal(path, times, values):
    import numpy as np

    np.savez(path, times=np.asarray(times, dtype=float), values=np.asarray(values, dtype=float))


def test_align_command_recovers_a_shift(tmp_path, capsys):
    import json

    import numpy as np

    reference_times = np.arange(30.0)
    reference_values = np.stack([np.sin(0.4 * reference_times), np.cos(0.25 * reference_times)], axis=1)
    _write_signal(tmp_path / "ref.npz", reference_times, reference_values)
    _write_signal(tmp_path / "query.npz", reference_times[10:20] + 500.0, reference_values[10:20])
    out = tmp_path / "warp.npz"
    assert main(["align", str(tmp_path / "ref.npz"), str(tmp_path / "query.npz"),
                 "--subsequence", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    with np.load(out) as result:
        np.testing.assert_allclose(result["warp"], reference_times[10:20], atol=0.01)
        np.testing.assert_allclose(result["knots"], reference_times[10:20] + 500.0)
    assert summary["warp_start_s"] == pytest.approx(10.0, abs=0.01)
    assert main(["align", str(tmp_path / "ref.npz"), str(tmp_path / "query.npz"),
                 "--subsequence", "--method", "dtw", "--out", str(out)]) == 0
    with np.load(out) as result:
        np.testing.assert_array_equal(result["warp"], reference_times[10:20])


def test_align_command_names_bad_files(tmp_path, capsys):
    import numpy as np

    np.savez(tmp_path / "bad.npz", times=np.array([0.0, 2.0, 1.0]), values=np.zeros((3, 2)))
    np.savez(tmp_path / "nofield.npz", stamps=np.arange(3.0))
    _write_signal(tmp_path / "ok.npz", np.arange(5.0), np.zeros((5, 2)))
    out = tmp_path / "out.npz"
    assert main(["align", str(tmp_path / "ok.npz"), str(tmp_path / "bad.npz"), "--out", str(out)]) == 2
    assert "bad.npz: times of sequence 0 are not strictly increasing" in capsys.readouterr().err
    assert main(["align", str(tmp_path / "ok.npz"), str(tmp_path / "nofield.npz"), "--out", str(out)]) == 2
    assert "nofield.npz: missing array(s) ['times', 'values']" in capsys.readouterr().err
    assert main(["align", str(tmp_path / "missing.npz"), str(tmp_path / "ok.npz"), "--out", str(out)]) == 2
    assert "missing.npz: no such file" in capsys.readouterr().err
    assert not out.exists()


def test_align_command_reads_config_and_flags_override(tmp_path, capsys):
    import json

    import numpy as np

    times = np.arange(20.0)
    values = np.stack([np.sin(0.5 * times), np.cos(0.3 * times)], axis=1)
    _write_signal(tmp_path / "ref.npz", times, values)
    _write_signal(tmp_path / "query.npz", times[4:12] + 7.0, values[4:12])
    config = tmp_path / "gdtw.yaml"
    config.write_text("subsequence: true\nlam: 0.5\n")
    out = tmp_path / "out.npz"
    assert main(["align", str(tmp_path / "ref.npz"), str(tmp_path / "query.npz"), "--config", str(config),
                 "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["subsequence"] is True
    assert main(["align", str(tmp_path / "ref.npz"), str(tmp_path / "query.npz"), "--config", str(config),
                 "--no-subsequence", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["subsequence"] is False
    assert summary["warp_start_s"] == 0.0 and summary["warp_end_s"] == 19.0
    config.write_text("subsequence: true\nlambda: 0.5\n")
    assert main(["align", str(tmp_path / "ref.npz"), str(tmp_path / "query.npz"), "--config", str(config),
                 "--out", str(out)]) == 2
    assert "unknown key(s) ['lambda']" in capsys.readouterr().err
