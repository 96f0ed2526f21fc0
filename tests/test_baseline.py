import json

import numpy as np
import pytest

from fieldnet.eval.baseline import LocalBaseline


def curve(x):
    return np.tanh(2 * x) + 0.3 * x


def test_recovers_a_monotone_relation_down_to_the_noise():
    rng = np.random.default_rng(0)
    noise = 0.1
    baseline = LocalBaseline(n_bins=200)
    for _ in range(10):    # streamed, one 2D "sample" at a time
        x = rng.uniform(-2, 2, size=(300, 300))
        baseline.partial_fit(x, curve(x) + rng.normal(0, noise, x.shape))
    baseline.finalize()
    x_test = rng.uniform(-2, 2, size=(20, 50, 50))   # any shape, here a 3D stack
    y_test = curve(x_test) + rng.normal(0, noise, x_test.shape)
    prediction = baseline.predict(x_test)
    assert prediction.shape == x_test.shape
    mse = np.mean((prediction - y_test) ** 2)
    # The MSE of a perfect predictor is noise^2 +- noise^2 sqrt(2 / N).
    assert abs(mse - noise**2) < 4 * noise**2 * np.sqrt(2 / x_test.size)
    np.testing.assert_allclose(baseline.means, curve(baseline.centres), atol=0.01)


def test_is_the_exact_conditional_mean_for_discrete_x():
    rng = np.random.default_rng(1)
    values = np.array([-1.0, 0.0, 0.5, 2.0])
    x = rng.choice(values, size=(5, 40, 40), p=[0.3, 0.05, 0.15, 0.5])
    y = rng.normal(size=x.shape) + x**2
    baseline = LocalBaseline(min_count=1).fit(zip(x, y, strict=True))
    assert len(baseline.means) == len(values)
    expected = [y[x == v].mean() for v in values]
    np.testing.assert_allclose(baseline.predict(values), expected, rtol=1e-12)
    # Linear between the values, constant beyond the ends.
    np.testing.assert_allclose(baseline.predict([-5.0, 0.25, 9.0]),
                               [expected[0], 0.5 * (expected[1] + expected[2]), expected[3]])


def test_streaming_order_and_range_growth_do_not_matter():
    rng = np.random.default_rng(2)
    x = rng.normal(size=20_000)
    y = x**3 + rng.normal(size=x.size)
    whole = LocalBaseline(n_bins=30).fit([(x, y)])
    order = np.argsort(x)[::-1]   # positive chunks first, so the grid grows downwards later
    chunked = LocalBaseline(n_bins=30).fit(
        (x[i], y[i]) for i in np.array_split(order, 7))
    np.testing.assert_allclose(chunked.centres, whole.centres, rtol=1e-12)
    np.testing.assert_allclose(chunked.means, whole.means, rtol=1e-12)


def test_min_count_merges_small_bins():
    x = np.random.default_rng(3).normal(size=1000)
    baseline = LocalBaseline(n_bins=50, min_count=100).fit([(x, x)])
    assert baseline.counts.min() >= 100 and baseline.counts.sum() == 1000
    assert np.all(np.diff(baseline.centres) > 0)


def test_json_roundtrip_and_errors():
    x = np.linspace(0, 1, 1000)
    baseline = LocalBaseline(n_bins=10, min_count=10).fit([(x, 2 * x)])
    restored = LocalBaseline.from_json(json.loads(json.dumps(baseline.to_json())))
    np.testing.assert_array_equal(restored.predict(x), baseline.predict(x))
    with pytest.raises(ValueError, match="finalize"):
        LocalBaseline().predict(x)
    with pytest.raises(ValueError, match="no data"):
        LocalBaseline().finalize()
    with pytest.raises(ValueError, match="non-finite"):
        LocalBaseline().partial_fit([np.nan], [1.0])
    with pytest.raises(ValueError, match="not a LocalBaseline"):
        LocalBaseline.from_json({"means": []})
