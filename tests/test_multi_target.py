"""Every target is scored: a run with two targets writes eval.json's `test.fields` with the
same keys for each, keeps the first target's at the top level, and draws each target's
figures under its own label."""

import json

import pytest

from experiments.studies import density_to_temp as study
from fieldnet.figures import report
from tests.test_experiment import CONTRACT_KEYS, tiny_config


@pytest.mark.slow
def test_two_targets_are_scored_alike(tmp_path):
    config = tiny_config()
    config.data.target_field = "temperature,density"
    report_json = study.train_and_evaluate(config, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved == json.loads(json.dumps(report_json))
    test = saved["test"]
    assert set(test["fields"]) == {"temperature", "density"}
    for block in test["fields"].values():
        assert CONTRACT_KEYS | {"per_box", "pdf_w1"} <= set(block)
    first = test["fields"]["temperature"]
    assert all(test[key] == first[key] for key in first)
    # the local baseline of the density from the density is the identity up to its bins
    assert test["fields"]["density"]["baseline_pixel_corr"] > 0.99
    assert test["fields"]["density"]["baseline_pixel_corr"] > first["baseline_pixel_corr"]
    figures = tmp_path / "run" / "figures"
    for name in ("power.png", "cross_corr.png", "pdf.png", "per_box.png"):
        assert (figures / name).is_file() and (figures / "density" / name).is_file(), name


@pytest.mark.parametrize("name, transform, units, label", [
    ("temperature", "log10", "K", r"$\log_{10} T$ [K]"),
    ("gas_density", "log10", "mean density", r"$\log_{10} \rho_\mathrm{gas}$ [mean density]"),
    ("velocity_divergence", "none", "", r"$\theta$"),
    ("velocity_dispersion", "asinh", "km/s", r"$\mathrm{asinh}(\sigma_v/s)$ [km/s]"),
    ("my_field", "none", "K", r"$\mathrm{my\_field}$ [K]"),
])
def test_figures_name_the_target_in_its_space(name, transform, units, label):
    assert report.field_label(name, transform, units).full == label
    figure = report.pdf_figure([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], None,
                               target=report.field_label(name, transform, units))
    assert figure.axes[0].get_xlabel() == label


def test_the_printed_headline_does_not_repeat_the_first_target():
    from experiments.launch import headline

    block = {"mse": 0.1, "k": [1.0, 2.0]}
    report = {"test": {**block, "fields": {"temperature": block,
                                           "gas_density": {"mse": 0.2}}}, "n_test": 3}
    assert headline(report) == {"test.mse": 0.1, "test.fields.gas_density.mse": 0.2,
                                "n_test": 3}
