"""The sweep's table: rows from eval.json, table.csv numeric, table.md with mean ± error,
and the notebooks' check of the table against eval.json."""

import csv

import ml_collections
import numpy as np
import pytest

from experiments.studies import sweep
from fieldnet import rundir
from fieldnet.errors import FieldnetError
from fieldnet.eval import statistics
from fieldnet.files import write_json
from fieldnet.grid import Grid
from notebooks.lib import recompute, sweep_figures


def eval_test_block(sim_index, seed, statistic_names=None):
    """A real "test" block of eval.json for maps of the given simulations."""
    rng = np.random.default_rng(seed)
    true = rng.normal(size=(len(sim_index), 16, 16))
    pred = true + rng.normal(scale=rng.uniform(0.2, 0.6, (len(sim_index), 1, 1)),
                             size=true.shape)
    base = 0.5 * true
    return statistics.evaluate(statistics.Comparison(true, pred, base, true, pred, base,
                                                     Grid.box((16, 16), 25.0),
                                                     np.asarray(sim_index)), statistic_names)


def fake_study(blocks):
    """A study that writes a run folder with the given test block per variation (by the
    config's width), as `density_to_temp.train_and_evaluate` would."""

    def study(config, workdir):
        report = {"test": blocks[config.model.width], "n_test": 6, "train_steps": 10}
        workdir.mkdir()
        write_json(rundir.config(workdir), config.to_dict())
        write_json(rundir.evaluation(workdir), report)
        return report

    return study


@pytest.fixture
def swept(tmp_path):
    base = ml_collections.ConfigDict({"name": "fake", "model": {"width": 8}})
    old = eval_test_block([0, 0], seed=2)   # an eval.json from before the errors over boxes
    for key in ("per_box", "mse_err", "baseline_mse_err", "n_test_boxes"):
        del old[key]
    blocks = {8: eval_test_block([3, 3, 5, 5, 9, 9], seed=0),
              16: eval_test_block([1, 1, 1], seed=1), 4: old}
    variations = {"reference": {}, "one_box": {"model.width": 16}, "old": {"model.width": 4}}
    rows = sweep.run_sweep(base, variations, tmp_path, fake_study(blocks))
    return tmp_path, rows, blocks


def test_table_csv_holds_the_errors_as_numbers(swept):
    out, _, blocks = swept
    with open(out / rundir.TABLE_CSV, newline="") as f:
        table = {r["variation"]: r for r in csv.DictReader(f)}
    assert tuple(table["reference"]) == sweep.columns()
    reference = blocks[8]
    for key in ("mse", "mse_err", "baseline_mse", "baseline_mse_err"):
        assert float(table["reference"][key]) == reference[key]
    assert int(table["reference"]["n_test_boxes"]) == 3
    assert table["one_box"]["mse_err"] == table["one_box"]["baseline_mse_err"] == ""
    assert table["one_box"]["n_test_boxes"] == "1"
    assert table["old"]["mse_err"] == table["old"]["n_test_boxes"] == ""


def test_table_md_shows_mean_plus_minus_error(swept):
    out, _, blocks = swept
    header, rule, *lines = (out / rundir.TABLE_MD).read_text().splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert "mse_err" not in columns and "n_test_boxes" in columns
    assert rule == "|" + "---|" * len(columns)
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
             for line in lines}
    b = blocks[8]
    row = dict(zip(columns, cells["reference"], strict=True))
    assert row["mse"] == f"{b['mse']:.4f} ± {b['mse_err']:.4f}"
    assert row["baseline_mse"] == f"{b['baseline_mse']:.4f} ± {b['baseline_mse_err']:.4f}"
    assert row["n_test_boxes"] == "3"
    one_box = dict(zip(columns, cells["one_box"], strict=True))
    assert one_box["mse"] == f"{blocks[16]['mse']:.4f}"


def test_notebook_rows_check_the_table_against_eval_json(swept):
    out, rows, _ = swept
    read = sweep_figures.sweep_rows(out)
    for mine, theirs in zip(rows, read, strict=True):
        assert {c: theirs[c] for c in sweep.columns()} == mine
    assert sweep_figures.variations_figure(read).axes
    csv_path = out / rundir.TABLE_CSV
    text = csv_path.read_text()
    reference_err = f"{rows[0]['mse_err']!r}"
    assert reference_err in text
    csv_path.write_text(text.replace(reference_err, "0.5"))
    with pytest.raises(FieldnetError, match="reference mse_err = 0.5"):
        sweep_figures.sweep_rows(out)


def test_scaling_curve_orders_the_training_set_sizes(tmp_path):
    base = ml_collections.ConfigDict({"name": "fake", "model": {"width": 8},
                                      "data": {"max_train_sims": None}})
    base.data.max_train_sims = ml_collections.FieldReference(None, field_type=int)
    blocks = {n: eval_test_block([3, 3, 5, 5], seed=n) for n in (2, 8, 32)}
    STD = {2: 0.5, 8: 0.6, 32: 0.7}   # each run standardizes with its own training split

    def study(config, workdir):
        n = config.data.max_train_sims or 32
        report = {"test": blocks[n], "n_test": 4, "train_steps": 10, "n_train_sims": n}
        workdir.mkdir()
        write_json(rundir.config(workdir), config.to_dict())
        write_json(rundir.model_io(workdir), {"target_names": ["temperature"]})
        write_json(rundir.normalizer(workdir), {"fields": [
            {"name": "temperature", "components": 1, "floor": 10.0, "log": True,
             "mean": 4.0, "std": STD[n]}]})
        write_json(rundir.evaluation(workdir), report)
        return report

    variations = {"all": {}, "sims_8": {"data.max_train_sims": 8},
                  "sims_2": {"data.max_train_sims": 2}, "wide": {"model.width": 16}}
    sweep.run_sweep(base, variations, tmp_path, study)
    rows = sweep_figures.sweep_rows(tmp_path)
    curve = sweep_figures.scaling_rows(rows)
    assert [r["variation"] for r in curve] == ["sims_2", "sims_8", "all"]
    assert [r["mse"] for r in curve] == [blocks[n]["mse"] for n in (2, 8, 32)]
    (ax,) = sweep_figures.scaling_figure(rows, tmp_path).axes
    assert list(ax.get_xticks()) == [2, 8, 32]
    model_line = ax.get_lines()[0]   # drawn in dex^2: normalized MSE times the variance
    np.testing.assert_allclose(model_line.get_ydata(),
                               [blocks[n]["mse"] * STD[n] ** 2 for n in (2, 8, 32)])
    # the variations figure leaves the curve to its own figure: one column, the width
    assert len(sweep_figures.variations_figure(rows).axes) == len(sweep_figures.METRIC_PANELS)
    with pytest.raises(FieldnetError, match="no variations of data.max_train_sims"):
        sweep_figures.scaling_figure([r for r in rows if r["variation"] in ("all", "wide")],
                                     tmp_path)


def test_keys_a_newer_version_added_are_not_a_variations_change():
    """A row run before fieldnet gained a config key (or with another data loader) differs
    from later rows only in what their overrides change."""
    old = {"name": "base", "model.width": 16, "data.augment": True}
    newer = {"name": "zero", "model.width": 16, "data.augment": True, "model.padding": "zero",
             "data.loader": "grain", "data.workers": 0, "model.objective": "regression"}
    newer_base = {**old, "model.padding": "periodic", "data.loader": "thread"}
    changed = sweep_figures.changed_keys({"base": {**old, "model.padding": "periodic"},
                                          "zero": newer, "again": newer_base}, "base")
    assert changed == {"base": set(), "zero": {"model.padding"}, "again": set()}


def test_a_variation_of_two_settings_is_drawn_against_the_one_that_changes_one(tmp_path):
    """Conditioning without parameter noise changes two settings from the reference; it is
    drawn against the conditioned run, which changes one of them to the same value, in a
    column of the other setting that names the kept one."""
    base = ml_collections.ConfigDict({"name": "fake", "model": {"width": 8, "depth": 2}})
    blocks = {8: eval_test_block([3, 3, 5, 5], seed=0), 16: eval_test_block([3, 3, 5, 5], seed=1)}
    variations = {"all": {}, "wide": {"model.width": 16},
                  "wide_deep": {"model.width": 16, "model.depth": 3},
                  "deep": {"model.depth": 3}}
    sweep.run_sweep(base, variations, tmp_path, fake_study(blocks))
    rows = sweep_figures.sweep_rows(tmp_path)
    by_name = {r["variation"]: r for r in rows}
    assert sweep_figures.nearest_base(rows, by_name["wide_deep"])["variation"] == "wide"
    assert sweep_figures.nearest_base(rows, by_name["deep"])["variation"] == "all"
    fig = sweep_figures.variations_figure(rows)
    bottom = [a for a in fig.axes if a.get_xlabel()]  # the bottom row names each column
    assert sorted(a.get_xlabel() for a in bottom) == ["model.depth", "model.depth\nmodel.width=16",
                                                        "model.width"]
    kept = next(a for a in bottom if "=" in a.get_xlabel())
    assert [t.get_text() for t in kept.get_xticklabels()] == ["2", "3"]
    # each column draws its base variation, then the variations that change its setting
    columns = {"model.width": ["all", "wide"], "model.depth": ["all", "deep"],
               "model.depth\nmodel.width=16": ["wide", "wide_deep"]}
    grid = np.array(fig.axes).reshape(len(sweep_figures.METRIC_PANELS), len(columns))
    for j, ax in enumerate(grid[-1]):
        drawn = columns[ax.get_xlabel()]
        for row, (column, _, _) in zip(grid[:, j], sweep_figures.METRIC_PANELS, strict=True):
            np.testing.assert_array_equal(row.lines[0].get_ydata(),
                                          [by_name[v][column] for v in drawn])


def flow_test_block(sim_index, seed, n_samples=8):
    """A real "test" block of a generative run: statistics of samples scattered about the
    truth, their mean as the prediction, with the "pdf" and "samples" statistics."""
    rng = np.random.default_rng(seed)
    true = rng.normal(size=(len(sim_index), 16, 16))
    drawn = true[:, None] + rng.normal(scale=0.4, size=(len(sim_index), n_samples, 16, 16))
    mean, base = drawn.mean(axis=1), 0.5 * true
    comparison = statistics.Comparison(true, mean, base, true, mean, base,
                                       Grid.box((16, 16), 25.0), np.asarray(sim_index),
                                       samples_norm=drawn, samples_log=drawn)
    return statistics.evaluate(comparison, "pdf,samples")


def test_regression_and_flow_runs_share_one_table(tmp_path):
    """A flow row's PDF distance and power ratio are of its samples, a regression row's of
    its prediction; coverage and CRPS are empty for the regression; the notebooks' check
    of table.csv against eval.json holds for both."""
    base = ml_collections.ConfigDict({"name": "fake", "model": {"width": 8}})
    regression = eval_test_block([3, 3, 5, 5], seed=0, statistic_names="pdf")
    flow = flow_test_block([3, 3, 5, 5], seed=1)
    blocks = {8: regression, 16: flow}
    sweep.run_sweep(base, {"regression": {}, "flow": {"model.width": 16}}, tmp_path,
                    fake_study(blocks))
    with open(tmp_path / rundir.TABLE_CSV, newline="") as f:
        table = {r["variation"]: r for r in csv.DictReader(f)}
    assert table["regression"]["objective"] == "regression"
    assert table["flow"]["objective"] == "flow"
    for column in statistics.SAMPLE_COLUMNS:
        assert table["regression"][column] == ""
        assert float(table["flow"][column]) == flow["samples"][column]
    assert float(table["flow"]["pdf_w1"]) == flow["samples"]["pdf_w1"] != flow["pdf_w1"]
    within = np.asarray(flow["k"]) <= flow["k_nyquist"] / 2
    for name, powers in (("flow", flow["samples"]["power_ratio"]),
                         ("regression", regression["power_ratio"])):
        powers = np.asarray(powers)[within]
        assert float(table[name]["power_ratio_min"]) == np.nanmin(powers)
        assert float(table[name]["power_ratio_max"]) == np.nanmax(powers)
    read = sweep_figures.sweep_rows(tmp_path)
    assert [r["objective"] for r in read] == ["regression", "flow"]
    md = (tmp_path / rundir.TABLE_MD).read_text()
    assert "| flow |" in md and "| regression |" in md


def test_another_config_file_becomes_a_variation_of_the_base():
    from experiments.configs import density_to_temp, density_to_temp_flow

    default = density_to_temp.get_config()
    flow = density_to_temp_flow.get_config()
    overrides = sweep.overrides_between(default, flow)
    assert overrides["model.objective"] == "flow"
    assert "name" not in overrides
    assert sweep.apply_overrides(default, overrides).to_dict() == {**flow.to_dict(),
                                                                  "name": default.name}
    extra = default.copy_and_resolve_references()
    extra.model.novel = 1
    with pytest.raises(FieldnetError, match="lacks: model.novel"):
        sweep.overrides_between(default, extra)


def test_a_registered_statistic_reaches_eval_json_the_sweep_table_and_the_check(tmp_path):
    """One function and its columns: the statistic fills the test block when named, is a
    column of the sweep's table and of its rows, and the notebooks' recomputation check
    compares it with eval.json."""

    @statistics.register_statistic("test_spread_ratio", columns=("spread_ratio",))
    def spread_ratio(c):
        return {"spread_ratio": float(np.std(c.pred_log) / np.std(c.true_log))}

    try:
        block = eval_test_block([3, 3, 5, 5], seed=0, statistic_names="test_spread_ratio")
        without = eval_test_block([3, 3, 5, 5], seed=0)
        assert "spread_ratio" in block and "spread_ratio" not in without
        assert "spread_ratio" in statistics.columns() and "spread_ratio" in sweep.columns()
        base = ml_collections.ConfigDict({"name": "fake", "model": {"width": 8}})
        rows = sweep.run_sweep(base, {"with": {}, "without": {"model.width": 16}}, tmp_path,
                               fake_study({8: block, 16: without}))
        assert rows[0]["spread_ratio"] == block["spread_ratio"]
        assert rows[1]["spread_ratio"] is None
        with open(tmp_path / rundir.TABLE_CSV, newline="") as f:
            table = {r["variation"]: r for r in csv.DictReader(f)}
        assert float(table["with"]["spread_ratio"]) == block["spread_ratio"]
        assert table["without"]["spread_ratio"] == ""
        assert [r["spread_ratio"] for r in sweep_figures.sweep_rows(tmp_path)] == [
            block["spread_ratio"], None]
        checked = recompute.check_against_eval(block, {"test": block})
        assert checked["spread_ratio"] == (block["spread_ratio"], block["spread_ratio"], 0.0)
        assert {"mse", "mean_r_to_half_nyquist", "mse_err"} < set(checked)
        changed = {**block, "spread_ratio": 1.1 * block["spread_ratio"]}
        with pytest.raises(FieldnetError, match="spread_ratio"):
            recompute.check_against_eval(changed, {"test": block})
    finally:
        statistics.STATISTICS.unregister("test_spread_ratio")
    assert "spread_ratio" not in sweep.columns()


def test_the_check_of_a_recomputation_takes_null_errors_as_equal():
    block = eval_test_block([1, 1], seed=3)       # one test box: null errors
    assert block["mse_err"] is None
    checked = recompute.check_against_eval(block, {"test": block})
    assert checked["mse_err"] == (None, None, 0.0)
    with pytest.raises(FieldnetError, match="mse_err"):
        recompute.check_against_eval({**block, "mse_err": 0.1}, {"test": block})


def test_a_bad_override_is_refused():
    base = ml_collections.ConfigDict({"model": {"width": 8}})
    with pytest.raises(FieldnetError, match="bad override"):
        sweep.apply_overrides(base, {"model.wdth": 3})
    assert sweep.apply_overrides(base, {"model.width": 3}).model.width == 3
    assert base.model.width == 8
