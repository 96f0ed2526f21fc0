import numpy as np
import pytest

from fieldnet.data.transforms import (
    FieldStats,
    Normalizer,
    RunningMoments,
    exp10,
    log10_floored,
)
from fieldnet.errors import FieldnetError


def test_log_roundtrip_and_floor():
    x = np.array([1e-3, 1.0, 1e5], np.float32)
    np.testing.assert_allclose(exp10(log10_floored(x)), x, rtol=1e-5)
    floored = log10_floored(np.array([0.0, -1.0, 1e-8, 10.0], np.float32), floor=1e-4)
    np.testing.assert_allclose(floored, [-4, -4, -4, 1], rtol=1e-6)


def test_non_positive_without_floor_names_the_data():
    with pytest.raises(FieldnetError, match=r"f\.h5:fields/T\[3\]: non-positive value 0"):
        log10_floored(np.array([1.0, 0.0], np.float32), where="f.h5:fields/T[3]")
    with pytest.raises(FieldnetError, match="floor must be positive"):
        log10_floored(np.ones(2, np.float32), floor=0.0)


def test_running_moments_match_numpy_across_chunks():
    values = np.random.default_rng(0).normal(3.0, 2.0, size=10_000)
    moments = RunningMoments()
    for chunk in np.array_split(values, 7):
        moments.update(chunk)
    mean, std = moments.mean_std()
    assert mean == pytest.approx(values.mean(), rel=1e-10)
    assert std == pytest.approx(values.std(), rel=1e-8)


def test_normalizer_fit_forward_inverse():
    rng = np.random.default_rng(1)
    rho = np.exp(rng.normal(1.0, 2.0, size=(4, 32, 32))).astype(np.float32)
    vel = rng.normal(5.0, 3.0, size=(4, 32, 32, 2)).astype(np.float32)
    norm = Normalizer.fit({"rho": ((r, "rho") for r in rho), "v": ((v, "v") for v in vel)},
                          floors={"rho": None}, vector_components={"v": 2})
    z = norm.forward("rho", rho)
    assert abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-4
    np.testing.assert_allclose(norm.inverse("rho", z), rho, rtol=1e-4)
    # Vectors are scaled, never shifted, so that reflections commute with normalization.
    assert norm["v"].mean == 0.0 and not norm["v"].log
    np.testing.assert_allclose(norm.forward("v", -vel), -norm.forward("v", vel))
    both = np.concatenate([rho[..., None], vel], axis=-1)
    back = norm.inverse_channels(["rho", "v"], norm.forward_channels(["rho", "v"], both))
    np.testing.assert_allclose(back, both, rtol=1e-4, atol=1e-5)


def test_normalizer_json_and_file_roundtrip(tmp_path):
    norm = Normalizer([FieldStats("density", 0.1, 0.5), FieldStats("T", 4.0, 0.3, floor=10.0)])
    assert Normalizer.from_json(norm.to_json()) == norm
    norm.save(tmp_path / "normalizer.json")
    assert Normalizer.load(tmp_path / "normalizer.json") == norm
    with pytest.raises(FieldnetError, match="no such normalizer file"):
        Normalizer.load(tmp_path / "missing.json")
    with pytest.raises(FieldnetError, match="no field 'velocity'"):
        norm["velocity"]


def test_channel_count_mismatch_is_an_error():
    norm = Normalizer([FieldStats("density", 0.0, 1.0)])
    with pytest.raises(FieldnetError, match="expected 1 channels"):
        norm.forward_channels(["density"], np.ones((4, 4, 2), np.float32))
