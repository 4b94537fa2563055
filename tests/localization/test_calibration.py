"""Calibration: isotonic fit against oracles, the streak gate, the publishing threshold by brute force,
confidence and 95 % ellipse coverage on fresh samples."""

from __future__ import annotations

import numpy as np
import pytest

from seqvpr.errors import SeqvprError
from seqvpr.localization.calibration import (
    CHI2_95,
    Calibration,
    fit_calibration,
    isotonic_fit,
    load_calibration,
    publish_threshold,
    save_calibration,
)


def test_isotonic_fit_pools_adjacent_violators():
    knots, values = isotonic_fit(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([1.0, 0.0, 1.0, 0.0, 1.0]))
    # (1, 0) pool to 0.5 at x 1.5; (1, 0) pool to 0.5 at x 3.5, which merges with the first
    # block (0.5 >= 0.5): one block of four at 0.5, then 1.
    np.testing.assert_allclose(values, [0.5, 1.0])
    np.testing.assert_allclose(knots, [2.5, 5.0])
    knots, values = isotonic_fit(np.array([3.0, 1.0, 2.0]), np.array([3.0, 1.0, 2.0]))
    np.testing.assert_allclose(values, [1.0, 2.0, 3.0])


def test_isotonic_fit_matches_the_min_max_formula():
    # Oracle: the isotonic least-squares fit at sorted point i is max_{a<=i} min_{b>=i} mean(y[a..b]).
    rng = np.random.default_rng(0)
    x = rng.uniform(size=40)
    y = (rng.uniform(size=40) < x).astype(float)
    ys = y[np.argsort(x)]
    oracle = np.array([max(min(ys[a:b + 1].mean() for b in range(i, 40)) for a in range(i + 1)) for i in range(40)])
    knots, values = isotonic_fit(x, y)
    np.testing.assert_allclose(values, np.unique(oracle.round(12)))
    assert np.all(np.diff(knots) > 0)


def _errors(rng, count, along=6.0, cross=1.5):
    return rng.normal(scale=along, size=count), rng.normal(scale=cross, size=count)


def test_covariance_ellipse_holds_95_percent_of_fresh_fixes(tmp_path):
    rng = np.random.default_rng(1)
    margins = rng.uniform(0.2, 0.6, size=3000)
    along, cross = _errors(rng, 3000)
    calibration = fit_calibration(margins, along, cross, threshold=0.0, correct_m=1e6)  # every fix correct
    fresh_along, fresh_cross = _errors(rng, 20000)
    headings = rng.uniform(-np.pi, np.pi, size=20000)
    inside = 0
    for a, c, heading in zip(fresh_along[:4000], fresh_cross[:4000], headings[:4000]):
        covariance = calibration.covariance(1.0, heading)
        offset = np.array([a * np.cos(heading) - c * np.sin(heading), a * np.sin(heading) + c * np.cos(heading)])
        inside += offset @ np.linalg.solve(covariance, offset) <= CHI2_95
    assert inside / 4000 == pytest.approx(0.95, abs=0.015)
    assert calibration.sigma_along_m[0] == pytest.approx(6.0, rel=0.1)
    save_calibration(calibration, tmp_path)
    assert load_calibration(tmp_path) == calibration


def test_confidence_follows_the_share_of_correct_fixes():
    rng = np.random.default_rng(2)
    margins = rng.uniform(0, 0.4, size=4000)
    wrong = rng.uniform(size=4000) > margins / 0.4  # P(correct) = margin / 0.4
    along = np.where(wrong, 50.0, rng.normal(scale=2.0, size=4000))
    calibration = fit_calibration(margins, along, np.zeros(4000), threshold=0.5)
    for margin in (0.05, 0.2, 0.35):
        assert calibration.confidence(margin) == pytest.approx(margin / 0.4, abs=0.08)
    confidences = [calibration.confidence(m) for m in np.linspace(0, 0.5, 50)]
    assert np.all(np.diff(confidences) >= 0)


def test_too_little_data_and_bad_files_are_errors(tmp_path):
    with pytest.raises(SeqvprError, match="at least 30"):
        fit_calibration(np.zeros(3), np.zeros(3), np.zeros(3), threshold=0.5)
    with pytest.raises(SeqvprError, match="equal length"):
        Calibration(margin_knots=(0.0,), confidence_knots=(0.0, 1.0))
    (tmp_path / "calibration.yaml").write_text("margin_knots: [0, 1]\nbogus: 1\n")
    with pytest.raises(SeqvprError, match="bogus"):
        load_calibration(tmp_path)


def test_publish_threshold_matches_its_definition():
    rng = np.random.default_rng(4)
    for _ in range(50):
        confidence = rng.choice(np.linspace(0, 1, 12), size=60)
        correct = rng.uniform(size=60) < confidence ** 0.3
        rate, fewest = rng.choice([0.0, 0.01, 0.1]), int(rng.integers(1, 15))
        # Brute force: every distinct confidence level, lowest first.
        expected = 1.0
        for level in np.unique(confidence):
            chosen = confidence >= level
            if chosen.sum() >= fewest and (~correct[chosen]).sum() <= rate * chosen.sum():
                expected = level
                break
        assert publish_threshold(confidence, correct, rate, fewest) == expected


def test_the_streak_gate_is_found_and_the_confidence_stays_calibrated():
    # Fixes are right with probability 0.9 once 5 consecutive keyframes agreed, 0.2 before,
    # whatever the margin; the fit must pick gate 5 among the candidates, and fresh samples
    # from the same law must find the confidence within a few points of the observed share.
    rng = np.random.default_rng(5)

    def sample(count):
        margins = rng.uniform(0, 0.2, size=count)
        streaks = rng.integers(0, 12, size=count)
        correct = rng.uniform(size=count) < np.where(streaks >= 5, 0.9, 0.2)
        along = np.where(correct, rng.normal(scale=3.0, size=count), 80.0)
        return margins, streaks, correct, along

    margins, streaks, _, along = sample(6000)
    calibration = fit_calibration(margins, along, np.zeros(6000), streaks=streaks, prior_strength=0.0)
    assert calibration.streak_gate == 5
    assert calibration.confidence(0.1, 5) == pytest.approx(0.9, abs=0.05)
    assert calibration.confidence(0.1, 4) == pytest.approx(0.2, abs=0.05)
    fresh_margins, fresh_streaks, fresh_correct, _ = sample(20000)
    confidence = np.array([calibration.confidence(m, n) for m, n in zip(fresh_margins, fresh_streaks)])
    for inside in (confidence < 0.5, confidence >= 0.5):
        assert inside.sum() > 5000
        assert fresh_correct[inside].mean() == pytest.approx(confidence[inside].mean(), abs=0.03)
    # No level is 99 % right here: nothing qualifies for publishing at a 1 % wrong-fix rate.
    assert calibration.publish_threshold == 1.0
    # At 15 % the gated fixes (10 % wrong) qualify, and fresh published fixes are about that good.
    lenient = fit_calibration(margins, along, np.zeros(6000), streaks=streaks, max_wrong_rate=0.15, prior_strength=0.0)
    published = np.array([lenient.confidence(m, n) for m, n in zip(fresh_margins, fresh_streaks)]) >= (
        lenient.publish_threshold)
    assert published.mean() > 0.5
    assert (~fresh_correct[published]).mean() == pytest.approx(0.15, abs=0.02)
    assert fit_calibration(margins, along, np.zeros(6000), prior_strength=0.0).streak_gate == 0  # no streaks given


def test_with_few_published_fixes_the_covariance_comes_from_the_most_confident_correct_ones():
    """Fewer than 30 correct fixes reach the threshold: the ellipse is fitted on the 30
    most confident correct attempts, whose spread (sigma 1 m along) is what a published fix
    shows, not on every correct attempt (most of them sigma 4 m)."""
    rng = np.random.default_rng(5)
    margins = np.concatenate([rng.uniform(0.0, 0.1, 900), rng.uniform(0.3, 0.4, 100)])
    sigma = np.where(margins > 0.2, 1.0, 4.0)
    along, cross = sigma * rng.normal(size=1000), 0.5 * sigma * rng.normal(size=1000)
    # Shrunk towards the overall share correct, no confidence reaches 1.0: nothing is published.
    calibration = fit_calibration(margins, along, cross, threshold=1.0)
    assert max(calibration.confidence_knots) < 1.0
    assert len(calibration.sigma_along_m) == 1
    assert 0.7 < calibration.sigma_along_m[0] < 1.6 and 0.35 < calibration.sigma_cross_m[0] < 0.8
