"""The notebooks' helpers on small inputs, without running a notebook: equivariance errors,
the training-set maps, the Ising results read back and the symmetry figures; and the
configs that only the notebooks and the long runs load."""

from pathlib import Path

import numpy as np
import pytest

from fieldnet import cli, symmetry
from notebooks.lib import data_figures, equivariance, ising_results, symmetry_figures


def test_equivariance_errors_are_zero_for_an_equivariant_map_and_not_otherwise():
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1))
    smooth = lambda a: a + np.roll(a, 1, 1) + np.roll(a, -1, 1) + np.roll(a, 1, 2)  # noqa: E731
    assert equivariance.translation_error(smooth, x, 3).shape == (8, 8)
    assert equivariance.translation_error(smooth, x, 3).max() == 0.0
    ramp = np.arange(8.0).reshape(1, 8, 1, 1)  # not translation equivariant
    assert equivariance.translation_error(lambda a: a * ramp, x, 1).max() > 0.1
    errors = equivariance.group_errors(smooth, x)
    assert len(errors) == len(symmetry.group_elements(2)) - 1 and "(-y,x)" in errors
    assert max(e.max() for e in errors.values()) > 0.1  # the stencil is not isotropic
    isotropic = lambda a: 2 * a  # noqa: E731
    assert max(e.max() for e in equivariance.group_errors(isotropic, x).values()) == 0.0
    assert equivariance.rms([3.0, 4.0]) == pytest.approx(np.sqrt(12.5), rel=1e-15)


def test_example_maps_draw_a_row_per_map():
    rng = np.random.default_rng(1)
    log_rho, log_t = rng.normal(size=(2, 2, 8, 8))
    fig = data_figures.example_maps(log_rho, log_t, [4, 7], box_size=10.0, density_units="mean")
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == 4 and [ax.get_title() for ax in maps[::2]] == ["simulation 4",
                                                                        "simulation 7"]
    np.testing.assert_array_equal(maps[3].images[0].get_array().T, log_t[1])
    np.testing.assert_array_equal(maps[0].images[0].get_array().T, log_rho[0])


def test_ising_results_read_back_the_curves_and_the_fit():
    evaluation = {"curves": {"16": {"T": [2.0, 2.5], "p_ordered": [0.9, 0.1]},
                             "8": {"T": [2.0, 2.5], "p_ordered": [0.8, 0.2]}},
                  "tc": 2.27, "tc_err": 0.01,
                  "fit": {"coefficients": [-0.3], "chi2": 0.5, "dof": 1}}
    curves = ising_results.curves(evaluation)
    assert [c.L for c in curves] == [8, 16]
    np.testing.assert_array_equal(curves[1].p_ordered, [0.9, 0.1])
    fit = ising_results.extrapolation(evaluation, nu=1.0)
    assert (fit.tc, fit.tc_err, fit.coefficients, fit.dof) == (2.27, 0.01, [-0.3], 1)


def test_symmetry_figures_show_each_case():
    maps = {"periodic": np.full((8, 8), 1e-7), "zero padding": np.full((8, 8), 1e-2)}
    fig = symmetry_figures.error_maps_figure(maps, box_size=10.0, units="dex")
    assert [ax.get_title() for ax in fig.axes if ax.images] == list(maps)
    fig = symmetry_figures.error_bars_figure({"periodic": 0.0, "zero": 1e-2}, units="dex",
                                             rounding=1e-7)
    (ax,) = [a for a in fig.axes if a.patches]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["periodic", "zero"]
    assert [p.get_width() for p in ax.patches][1] == 1e-2
    assert ax.get_xlabel() == "RMS equivariance error [dex]"


@pytest.mark.parametrize("name,function", [("density_to_temp_camels", "get_config"),
                                           ("density_to_temp_gpu", "get_config"),
                                           ("density_to_temp_variations", "get_variations")])
def test_the_other_configs_load(name, function):
    path = Path(__file__).resolve().parents[1] / "experiments" / "configs" / f"{name}.py"
    module = cli.import_user_file(path, function)
    value = cli.call_user(path, getattr(module, function))
    assert value and (function == "get_variations" or value.name)
