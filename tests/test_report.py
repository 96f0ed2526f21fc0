import functools
import json

import numpy as np
import pytest

from fieldnet import rundir
from fieldnet.eval import metrics, statistics
from fieldnet.figures import report
from fieldnet.grid import Grid

BOX = 25.0
PNG_MAGIC = b"\x89PNG"


def is_png(path):
    with open(path, "rb") as f:
        return f.read(4) == PNG_MAGIC


def fake_test_set(shape):
    """log10 rho, true / predicted / baseline log10 T with a T-rho relation plus scatter."""
    rng = np.random.default_rng(0)
    log_rho = rng.normal(size=shape)
    true_t = 4.0 + 0.6 * log_rho + 0.2 * rng.normal(size=shape)
    pred_t = true_t + 0.1 * rng.normal(size=shape)
    baseline_t = 4.0 + 0.6 * log_rho
    return log_rho, true_t, pred_t, baseline_t


@pytest.fixture(scope="module")
def test_set_2d():
    log_rho, true_t, pred_t, baseline_t = fake_test_set((3, 32, 32))
    return {"log_rho": log_rho, "true_log_t": true_t, "pred_log_t": pred_t,
            "baseline_log_t": baseline_t,
            "spec_model": metrics.spectral_comparison(pred_t, true_t, BOX),
            "spec_baseline": metrics.spectral_comparison(baseline_t, true_t, BOX)}


def test_each_figure_writes_a_png(tmp_path, test_set_2d):
    s = test_set_2d
    paths = [
        report.maps_panel(s["log_rho"], s["true_log_t"], s["pred_log_t"], tmp_path / "m.png",
                          s["baseline_log_t"], density_units="mean density", box_size=BOX),
        report.power_figure(s["spec_model"], s["spec_baseline"], tmp_path / "p.png"),
        report.cross_corr_figure(s["spec_model"], s["spec_baseline"], tmp_path / "c.png"),
        report.pdf_figure(s["true_log_t"], s["pred_log_t"], tmp_path / "d.png",
                          s["baseline_log_t"]),
        report.phase_diagram_figure(s["log_rho"], s["true_log_t"], s["pred_log_t"],
                                    tmp_path / "h.png", s["baseline_log_t"]),
    ]
    for path in paths:
        assert path.stat().st_size > 1000 and is_png(path)


def test_maps_of_3d_fields_show_a_slice(tmp_path):
    log_rho, true_t, pred_t, _ = fake_test_set((2, 16, 16, 16, 1))
    path = report.maps_panel(log_rho, true_t, pred_t, tmp_path / "maps3d.png")
    assert is_png(path)
    with pytest.raises(ValueError, match="2D or 3D"):
        report.maps_panel(log_rho[:, 0, 0], true_t[:, 0, 0], pred_t[:, 0, 0], tmp_path / "x.png")


def test_training_curves_tolerate_missing_keys(tmp_path):
    records = [{"step": 0, "train_loss": 1.0, "lr": 1e-3}, {"step": 10, "train_loss": 0.5},
               {"step": 10, "val_loss": 0.6}, {"samples_per_s": 100.0}, {"step": 20}]
    metrics_file = tmp_path / "metrics.jsonl"
    metrics_file.write_text("\n".join(json.dumps(r) for r in records) + '\n{"step": 30, "tr')
    assert len(rundir.read_metrics(metrics_file)) == len(records)
    assert is_png(report.training_curves(metrics_file, tmp_path / "t.png", baseline_mse=0.7))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert is_png(report.training_curves(empty, tmp_path / "t0.png"))


def eval_json_test_block(test_set, sim_index):
    """The "test" block eval.json would hold for a test set (normalized = log here), read
    back from JSON."""
    s = test_set
    c = statistics.Comparison(s["true_log_t"], s["pred_log_t"], s["baseline_log_t"],
                              s["true_log_t"], s["pred_log_t"], s["baseline_log_t"],
                              Grid.box(s["true_log_t"].shape[1:], BOX), np.asarray(sim_index))
    return json.loads(json.dumps(statistics.evaluate(c)))


def drawn(fig, gid):
    return next(a for a in fig.axes[0].get_children() if a.get_gid() == gid)


def test_per_box_figure_draws_the_eval_json_numbers():
    log_rho, true_t, pred_t, baseline_t = fake_test_set((6, 16, 16))
    pred_t = pred_t + 0.1 * np.arange(6)[:, None, None]   # boxes that differ
    test = eval_json_test_block({"true_log_t": true_t, "pred_log_t": pred_t,
                                 "baseline_log_t": baseline_t}, [8, 8, 2, 2, 5, 5])
    assert test["n_test_boxes"] == 3 and test["mse_err"] > 0
    fig = report.per_box_figure(test, None)
    for key in ("mse", "baseline_mse"):
        points = drawn(fig, key).get_xydata()
        np.testing.assert_array_equal(points[:, 0], [2, 5, 8])
        np.testing.assert_array_equal(points[:, 1], [b[key] for b in test["per_box"]])
        assert drawn(fig, f"{key}_mean").get_ydata()[0] == test[key]
        band = drawn(fig, f"{key}_band")
        assert band.get_y() == pytest.approx(test[key] - test[f"{key}_err"], rel=1e-12)
        assert band.get_height() == pytest.approx(2 * test[f"{key}_err"], rel=1e-12)
    assert f"{test['mse'] / test['baseline_mse']:.3f}" in fig.axes[0].get_title()

    one_box = eval_json_test_block({"true_log_t": true_t, "pred_log_t": pred_t,
                                    "baseline_log_t": baseline_t}, [1] * 6)
    fig = report.per_box_figure(one_box, None)
    gids = {a.get_gid() for a in fig.axes[0].get_children()}
    assert {"mse", "mse_mean"} <= gids and "mse_band" not in gids


def test_write_all_uses_the_fixed_names(tmp_path, test_set_2d):
    metrics_file = tmp_path / "metrics.jsonl"
    metrics_file.write_text(json.dumps({"step": 1, "train_loss": 0.3}) + "\n")
    summary = eval_json_test_block(test_set_2d, [0, 1, 1])
    paths = report.write_all(tmp_path / "figures", metrics_jsonl=metrics_file,
                             density_units="mean density", summary=summary, **test_set_2d)
    assert {p.name for p in paths.values()} == set(report.FIGURE_NAMES.values())
    assert all(p.parent == tmp_path / "figures" and is_png(p) for p in paths.values())


@pytest.mark.parametrize("shape", [(3, 32, 32), (2, 8, 8, 8)])
def test_sample_figures_write_pngs_in_2d_and_3d(tmp_path, shape):
    from fieldnet.figures import samples

    log_rho, true_t, _, _ = fake_test_set(shape)
    rng = np.random.default_rng(1)
    drawn = true_t[:, None] + 0.2 * rng.normal(size=(shape[0], 5, *shape[1:]))
    paths = samples.write_all(tmp_path, log_rho=log_rho, true_log_t=true_t,
                              samples_log_t=drawn, box=Grid.box(shape[1:], BOX),
                              density_units="mean density", box_size=BOX)
    assert set(paths) == set(samples.FIGURE_NAMES)
    assert not set(samples.FIGURE_NAMES.values()) & set(report.FIGURE_NAMES.values())
    for name, path in paths.items():
        assert path.name == samples.FIGURE_NAMES[name] and is_png(path)
    with pytest.raises(ValueError, match=r"samples must be \(N, S, \*spatial\)"):
        samples.calibration_figure(true_t, drawn[:1], tmp_path / "x.png")


def test_sample_figures_draw_a_regression_beside_the_samples_when_given():
    from fieldnet.figures import samples

    log_rho, true_t, pred_t, _ = fake_test_set((3, 32, 32))
    drawn = true_t[:, None] + 0.2 * np.random.default_rng(1).normal(size=(3, 4, 32, 32))

    def n_axes(figure, **regression):
        return len(figure(true_t, drawn, None, n_maps=2, **regression).axes)

    for figure in (functools.partial(samples.samples_panel, log_rho), samples.std_figure):
        # one more column: a map per row and its colour bar
        assert n_axes(figure, regression_log_t=pred_t) == n_axes(figure) + 2 + 1
    power = samples.samples_power_figure(true_t, drawn, Grid.box((32, 32), BOX), None,
                                         regression_log_t=pred_t)
    labels = power.axes[0].get_legend_handles_labels()[1]
    assert labels == ["true", "samples", "mean of samples", "regression"]
    assert len(power.axes[1].lines) == len(samples.samples_power_figure(
        true_t, drawn, Grid.box((32, 32), BOX), None).axes[1].lines) + 1
    with pytest.raises(ValueError, match=r"regression must be \(N, \*spatial\) = \(3, 32, 32\)"):
        samples.std_figure(true_t, drawn, None, regression_log_t=pred_t[:2])
