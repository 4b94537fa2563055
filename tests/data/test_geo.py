import numpy as np
import pytest

from seqvpr.data.geo import (
    UtmZone,
    heading_from_track,
    interpolate_poses,
    latlon_to_utm,
    path_length,
    utm_to_latlon,
    wrap_angle,
)


def test_zone_parse_and_format():
    assert UtmZone.parse("30U") == UtmZone(30, "U")
    assert str(UtmZone.parse(" 9s")) == "9S"
    for bad in ("", "61U", "30I", "U30", "30"):
        with pytest.raises(ValueError):
            UtmZone.parse(bad)


def test_latlon_round_trip_oxford():
    latitude = np.array([51.7520, 51.7530, 51.7600])
    longitude = np.array([-1.2577, -1.2500, -1.2400])
    positions, zone = latlon_to_utm(latitude, longitude)
    assert zone == UtmZone(30, "U")
    # Radcliffe Camera area: easting ~620 km, northing ~5735 km.
    assert positions[0] == pytest.approx([620265.36, 5734891.77], abs=0.05)
    back_lat, back_lon = utm_to_latlon(positions, zone)
    np.testing.assert_allclose(back_lat, latitude, atol=1e-9)
    np.testing.assert_allclose(back_lon, longitude, atol=1e-9)
    # One metre north is one metre of northing (to the scale factor ~0.9996).
    north, _ = latlon_to_utm(latitude[:1] + 1.0 / 111_250.0, longitude[:1], zone)
    assert north[0, 1] - positions[0, 1] == pytest.approx(1.0, abs=0.01)


def test_forced_zone_keeps_points_in_one_zone():
    # Longitude 0.01 E is in zone 31, but a traverse starting in zone 30 stays in 30.
    positions, zone = latlon_to_utm(np.array([51.5, 51.5]), np.array([-0.01, 0.01]))
    assert zone.number == 30
    assert positions[1, 0] - positions[0, 0] == pytest.approx(1385.0, abs=5.0)


def test_wrap_angle_range():
    wrapped = wrap_angle(np.array([np.pi, -np.pi, 3 * np.pi, 0.5, -7.0]))
    np.testing.assert_allclose(wrapped, [np.pi, np.pi, np.pi, 0.5, -7.0 + 2 * np.pi])


def test_interpolated_heading_crosses_pi_the_short_way():
    times = np.array([0.0, 1.0])
    positions = np.array([[0.0, 0.0], [2.0, 4.0]])
    headings = np.array([np.pi - 0.1, -np.pi + 0.1])
    pos, heading = interpolate_poses(times, positions, headings, np.array([0.25, 0.5]))
    np.testing.assert_allclose(pos, [[0.5, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(np.abs(heading[1]), np.pi, atol=1e-12)
    np.testing.assert_allclose(heading[0], np.pi - 0.05)


def test_path_length_and_heading_from_track():
    track = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [3.0, 10.0]])
    np.testing.assert_allclose(path_length(track), [0.0, 5.0, 5.0, 11.0])
    heading = heading_from_track(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0]]))
    # East, east (held while stationary), then turning north.
    np.testing.assert_allclose(heading[:3], [0.0, 0.0, np.pi / 4], atol=1e-12)
    np.testing.assert_allclose(heading[3], np.pi / 2)
