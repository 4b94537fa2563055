import json

import numpy as np
import pytest

from seqvpr.evaluation import SequenceResult, accuracy_rows, markdown_table, method_label, write_results


def result(method, condition, max_error, mean_error, model="base", index=0):
    return SequenceResult(model=model, method=method, condition=condition, pair_file="test_x.csv",
                          pair_index=index, max_error_m=max_error, mean_error_m=mean_error,
                          predicted=np.zeros((10, 2)))


RESULTS = [
    result("gdtw", "sunny", 1.5, 1.0, index=0),
    result("gdtw", "sunny", 4.0, 2.0, index=1),
    result("gdtw", "snow", 12.0, 3.0, index=2),
    result("dtw", "sunny", 2.5, 1.0, index=0),
    result("dtw", "sunny", 9.0, 2.5, index=1),
    result("dtw", "snow", 30.0, 8.0, index=2),
    result("gdtw", "sunny", 0.5, 0.2, model="DecDTW", index=0),
]


def test_method_labels_follow_the_paper():
    assert method_label("base", "gdtw", "base") == "Base (G)"
    assert method_label("base", "dtw", "base") == "Base (D)"
    assert method_label("base", "independent", "base") == "Indep"
    assert method_label("DecDTW", "gdtw", "base") == "DecDTW (G)"


def test_accuracy_rows_hand_computed():
    rows = {(r["method"], r["condition"]): r for r in accuracy_rows(RESULTS, "max", (2.0, 3.0, 5.0, 10.0))}
    assert rows[("Base (G)", "sunny")]["acc@2m"] == 50.0
    assert rows[("Base (G)", "sunny")]["acc@5m"] == 100.0
    assert rows[("Base (G)", "all")]["acc@10m"] == pytest.approx(200 / 3)
    assert rows[("Base (D)", "sunny")]["acc@3m"] == 50.0
    assert rows[("Base (D)", "snow")]["acc@10m"] == 0.0
    assert rows[("DecDTW (G)", "sunny")]["sequences"] == 1
    mean_rows = {(r["method"], r["condition"]): r for r in accuracy_rows(RESULTS, "mean", (2.0, 3.0))}
    assert mean_rows[("Base (D)", "all")]["acc@3m"] == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="metric must be"):
        accuracy_rows(RESULTS, "median")


def test_markdown_table_layout():
    table = markdown_table(accuracy_rows(RESULTS, "max"))
    lines = table.splitlines()
    assert lines[0] == ("| Method | snow @2 m | snow @3 m | snow @5 m | snow @10 m | sunny @2 m | sunny @3 m | "
                        "sunny @5 m | sunny @10 m | all @2 m | all @3 m | all @5 m | all @10 m |")
    assert lines[2].startswith("| Base (G) | 0.0 | 0.0 | 0.0 | 0.0 | 50.0 | 50.0 | 100.0 | 100.0 |")
    assert "| DecDTW (G) | - | - | - | - | 100.0 |" in table
    assert "Sequences per condition: snow: 1, sunny: 2, all: 3." in table


def test_write_results_files(tmp_path):
    written = write_results(tmp_path, RESULTS, {"command": "test"})
    assert written["max_markdown"].read_text().startswith("Accuracy (%) of max-error localization")
    payload = json.loads(written["json"].read_text())
    assert payload["metadata"] == {"command": "test"}
    assert {row["condition"] for row in payload["max_error"]} == {"sunny", "snow", "all"}
    lines = written["per_sequence"].read_text().splitlines()
    assert lines[0] == "pair_file,pair_index,condition,model,alignment,max_error_m,mean_error_m"
    assert len(lines) == 1 + len(RESULTS)
    assert "acc@20m" in written["csv"].read_text().splitlines()[0]
    assert not list(tmp_path.glob(".*.tmp"))
