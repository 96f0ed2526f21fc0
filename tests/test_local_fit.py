"""benchmarks.local_fit: the per-pixel ablation finds the input that sets the temperature."""

import numpy as np
import pytest

from benchmarks import local_fit
from fieldnet.data import h5format
from fieldnet.errors import FieldnetError

NAMES = ("density", "velocity_dispersion", "velocity_divergence", "velocity_x", "velocity_y",
         "temperature")


def write(path, *, with_velocities=True, sims=20, maps=1, size=16):
    """log10 T = 4 + 0.3 log10 rho + 0.8 log10 sigma exactly, sigma drawn independently of
    rho: only an input set with the dispersion can predict T."""
    rng = np.random.default_rng(0)
    shape = (sims * maps, size, size)
    density = 10 ** rng.normal(0.0, 0.5, shape)
    dispersion = 10 ** rng.uniform(0.5, 2.0, shape)
    fields = {"density": density, "velocity_dispersion": dispersion,
              "velocity_divergence": rng.normal(0, 1, shape),
              "velocity_x": rng.normal(0, 100, shape), "velocity_y": rng.normal(0, 100, shape),
              "temperature": 10 ** (4 + 0.3 * np.log10(density) + 0.8 * np.log10(dispersion))}
    if not with_velocities:
        fields = {k: fields[k] for k in ("density", "temperature")}
    h5format.write_arrays(path, {k: v.astype(np.float32) for k, v in fields.items()}, ndim=2,
                          box_size=25.0, source="test", sim_index=np.repeat(np.arange(sims), maps),
                          units={k: "" for k in fields}, params=rng.uniform(0, 1, (sims * maps, 5)),
                          param_names=local_fit.PARAM_NAMES)
    return path


def test_only_the_inputs_that_set_the_temperature_remove_its_error(tmp_path):
    rows = local_fit.ablation(str(write(tmp_path / "f.h5")), conditioned=True)
    assert rows["density"]["ratio"] > 0.5                     # sigma is independent of rho
    for label in ("+ divergence", "+ speed"):
        assert rows[label]["ratio"] > 0.5
    # float32 storage of T and the inputs: the fit is exact up to ~1e-7 dex, far below 1e-4
    assert rows["+ dispersion"]["ratio"] < 1e-4
    assert rows["all"]["ratio"] < 1e-4
    assert rows["all"]["n_test_boxes"] == 2


def test_a_file_without_phase_space_fields_is_one_line(tmp_path):
    with pytest.raises(FieldnetError, match="lacks the phase-space fields"):
        local_fit.ablation(str(write(tmp_path / "f.h5", with_velocities=False)), False)
