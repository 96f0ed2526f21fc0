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
            "spec_model": metrics.spectral_comparison(pred_t, true_t, Grid.box((32, 32), BOX)),
            "spec_baseline": metrics.spectral_comparison(baseline_t, true_t,
                                                         Grid.box((32, 32), BOX))}


def images(fig):
    """The maps of a map grid, row by row (colour bars excluded), as they are drawn."""
    return [ax.images[0].get_array().T for ax in fig.axes if ax.images]


def test_maps_panel_shows_the_maps_given_in_columns(tmp_path, test_set_2d):
    s = test_set_2d
    fig = report.maps_panel(s["log_rho"], s["true_log_t"], s["pred_log_t"], None,
                            s["baseline_log_t"], density_units="mean density",
                            grid=Grid.box((32, 32), BOX))
    # 3 rows of rho, true, model, baseline, model - true, baseline - true; a bar per column
    assert len(images(fig)) == 3 * 6 and len(fig.axes) == 3 * 6 + 6
    titles = [ax.get_title() for ax in fig.axes[:6]]
    assert titles == [report.log_rho_label("mean density"), "true " + report.LOG_T_LABEL,
                      "model " + report.LOG_T_LABEL, "local baseline " + report.LOG_T_LABEL,
                      "model $-$ true [dex]", "baseline $-$ true [dex]"]
    shown = np.array(images(fig)).reshape(3, 6, 32, 32)
    for i in range(3):
        expected = [s["log_rho"][i], s["true_log_t"][i], s["pred_log_t"][i],
                    s["baseline_log_t"][i], s["pred_log_t"][i] - s["true_log_t"][i],
                    s["baseline_log_t"][i] - s["true_log_t"][i]]
        np.testing.assert_array_equal(shown[i], expected)
    assert [ax.get_xlabel() for ax in fig.axes[12:18]] == ["[Mpc/$h$]"] * 6  # bottom row
    assert list(fig.axes[0].images[0].get_extent()) == [0, BOX, 0, BOX]
    path = report.maps_panel(s["log_rho"], s["true_log_t"], s["pred_log_t"], tmp_path / "m.png")
    assert path.stat().st_size > 1000 and is_png(path)


def test_maps_of_a_rectangular_box_span_each_axis_length():
    # the first axis runs across (maps are drawn transposed), the second up
    assert report.map_extent(Grid.box((32, 32), (10.0, 40.0))) == (0.0, 10.0, 0.0, 40.0)
    assert report.map_extent(Grid.box((8, 16, 32), (5.0, 10.0, 40.0))) == (0.0, 10.0, 0.0, 40.0)
    assert report.map_extent(None) is None


def test_power_figure_draws_the_spectra_and_their_transfer(test_set_2d):
    model, baseline = test_set_2d["spec_model"], test_set_2d["spec_baseline"]
    top, bottom = report.power_figure(model, baseline, None).axes
    assert [line.get_label() for line in top.lines] == ["true", "model", "local baseline"]
    for line, values in zip(top.lines, (model["p_true"], model["p_pred"], baseline["p_pred"]),
                            strict=True):
        np.testing.assert_array_equal(line.get_xdata(), model["k"])
        np.testing.assert_array_equal(line.get_ydata(), values)
    assert top.get_xscale() == top.get_yscale() == "log" and "P(k)" in top.get_ylabel()
    np.testing.assert_array_equal(bottom.lines[0].get_ydata(), model["transfer"])
    np.testing.assert_array_equal(bottom.lines[1].get_ydata(), baseline["transfer"])
    assert bottom.get_xlabel() == report.K_LABEL


def test_cross_corr_figure_draws_r_of_k_and_half_nyquist(test_set_2d):
    model, baseline = test_set_2d["spec_model"], test_set_2d["spec_baseline"]
    (ax,) = report.cross_corr_figure(model, baseline, None).axes
    curves = {line.get_label(): line for line in ax.lines}
    np.testing.assert_array_equal(curves["model"].get_ydata(), model["cross_corr"])
    np.testing.assert_array_equal(curves["local baseline"].get_ydata(), baseline["cross_corr"])
    assert curves[r"$k_\mathrm{Nyq}/2$"].get_xdata()[0] == model["k_nyquist"] / 2
    assert ax.get_xlabel() == report.K_LABEL and "r(k)" in ax.get_ylabel()


def test_pdf_figure_draws_the_histograms_of_the_fields(test_set_2d):
    s = test_set_2d
    (ax,) = report.pdf_figure(s["true_log_t"], s["pred_log_t"], None, s["baseline_log_t"],
                              n_bins=40).axes
    edges = report.histogram_edges(s["true_log_t"], 40)
    assert ax.get_xlabel() == report.LOG_T_LABEL
    assert [line.get_label() for line in ax.lines] == ["true", "model", "local baseline"]
    for line, values in zip(ax.lines, (s["true_log_t"], s["pred_log_t"], s["baseline_log_t"]),
                            strict=True):
        np.testing.assert_array_equal(line.get_xdata(), 0.5 * (edges[1:] + edges[:-1]))
        pdf = metrics.one_point_pdf(values, edges)
        np.testing.assert_array_equal(line.get_ydata(), np.where(pdf > 0, pdf, np.nan))


def test_phase_diagram_figure_bins_both_fields_alike(test_set_2d):
    s = test_set_2d
    fig = report.phase_diagram_figure(s["log_rho"], s["true_log_t"], s["pred_log_t"], None,
                                      s["baseline_log_t"], n_bins=20)
    *panels, bar = fig.axes  # two panels and their colour bar
    assert [ax.get_title() for ax in panels] == ["true", "model"] and bar.get_ylabel()
    assert panels[0].get_ylabel() == report.LOG_T_LABEL
    edges_x = report.histogram_edges(s["log_rho"], 20)
    edges_y = report.histogram_edges(s["true_log_t"], 20)
    for ax, log_t in zip(panels, (s["true_log_t"], s["pred_log_t"]), strict=True):
        hist = metrics.joint_histogram(s["log_rho"], log_t, edges_x, edges_y)
        shown = np.ma.filled(ax.collections[0].get_array(), 0.0).reshape(20, 20)
        np.testing.assert_array_equal(np.nan_to_num(shown), hist.T)
        rho, t = ax.lines[0].get_data()  # the baseline, a function of rho: on the curve
        np.testing.assert_allclose(t, 4.0 + 0.6 * np.asarray(rho), rtol=1e-12)


def test_maps_of_3d_fields_show_a_slice(tmp_path):
    log_rho, true_t, pred_t, _ = fake_test_set((2, 16, 16, 16, 1))
    fig = report.maps_panel(log_rho, true_t, pred_t, None)
    shown = np.array(images(fig)).reshape(2, 4, 16, 16)  # rho, true, model, model - true
    np.testing.assert_array_equal(shown[1, 1], true_t[1, 8, ..., 0])  # the middle slice
    np.testing.assert_array_equal(shown[0, 0], log_rho[0, 8, ..., 0])
    with pytest.raises(ValueError, match="2D or 3D"):
        report.maps_panel(log_rho[:, 0, 0], true_t[:, 0, 0], pred_t[:, 0, 0], tmp_path / "x.png")


def test_training_curves_tolerate_missing_keys(tmp_path):
    records = [{"step": 0, "train_loss": 1.0, "lr": 1e-3}, {"step": 10, "train_loss": 0.5},
               {"step": 10, "val_loss": 0.6}, {"samples_per_s": 100.0}, {"step": 20}]
    metrics_file = tmp_path / "metrics.jsonl"
    metrics_file.write_text("\n".join(json.dumps(r) for r in records) + '\n{"step": 30, "tr')
    assert len(rundir.read_metrics(metrics_file)) == len(records)
    (ax,) = report.training_curves(metrics_file, None, baseline_mse=0.7).axes
    curves = {line.get_label(): line for line in ax.lines}
    assert set(curves) == {"train loss", "val loss", "local baseline MSE"}
    assert curves["train loss"].get_xydata().tolist() == [[0, 1.0], [10, 0.5]]
    assert curves["val loss"].get_xydata().tolist() == [[10, 0.6]]
    assert list(curves["local baseline MSE"].get_ydata()) == [0.7, 0.7]
    assert (ax.get_xlabel(), ax.get_yscale()) == ("step", "log")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    (ax,) = report.training_curves(empty, None).axes
    assert not ax.lines and ax.texts[0].get_text() == "no losses logged yet"
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
                              samples_log_t=drawn, grid=Grid.box(shape[1:], BOX),
                              density_units="mean density")
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
