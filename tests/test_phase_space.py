"""data_tools.phase_space: CIC moments of particles and the density / velocity fields."""

import jax.numpy as jnp
import numpy as np
import pytest

from data_tools import cosmology, nbody
from data_tools.phase_space import MomentGrid, grid_fields
from fieldnet.errors import FieldnetError
from fieldnet.eval import spectra
from fieldnet.grid import Grid

EPS32 = float(np.finfo(np.float32).eps)


def lattice(grid: int, box: float, offset: float = 0.5) -> np.ndarray:
    """(grid^3, 3) positions at (i + offset) H, H = box / grid."""
    q = (np.arange(grid) + offset) * (box / grid)
    return np.stack(np.meshgrid(q, q, q, indexing="ij"), -1).reshape(-1, 3)


def random_particles(count: int, box: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, box, (count, 3)), rng.uniform(0.5, 2.0, count),
            rng.normal(0, 300.0, (count, 3)), rng.uniform(1e3, 1e6, count))


def fields_of(positions, masses, velocities=None, grid=16, box=20.0, a=1.0, hubble=100.0,
              **kwargs):
    moments = MomentGrid(grid, box)
    moments.add(positions, masses, velocities, **kwargs.pop("weighted", {}))
    return grid_fields(moments, a=a, hubble=hubble, **kwargs)


def test_total_mass_is_conserved_over_chunks():
    positions, masses, velocities, _ = random_particles(5000, 20.0)
    moments = MomentGrid(16, 20.0)
    for part in np.array_split(np.arange(5000), 7):
        moments.add(positions[part], masses[part], velocities[part])
    assert moments.total_mass == pytest.approx(masses.sum(), rel=1e-13)
    fields = grid_fields(moments, a=1.0, hubble=100.0)
    assert float(np.mean(fields["density"], dtype=np.float64)) == pytest.approx(1.0, rel=1e-6)
    maps = grid_fields(moments, a=1.0, hubble=100.0, dim=2, slabs=4)["density"]
    for axis in range(3):  # every projection holds the whole mass
        assert maps[4 * axis:4 * axis + 4].sum(dtype=np.float64) == pytest.approx(
            masses.sum(), rel=1e-6)


def test_particle_at_a_cell_centre_lands_in_that_cell():
    grid, box = 16, 20.0
    moments = MomentGrid(grid, box)
    moments.add(np.array([[3.5, 0.5, 15.5]]) * (box / grid), np.array([2.0]))
    mass = moments.mass
    assert mass[3, 0, 15] == 2.0 and mass.sum() == 2.0


def test_deposit_wraps_around_the_periodic_edges():
    """A particle on the box corner sits between the first and last cell of every axis."""
    grid, box = 16, 20.0
    moments = MomentGrid(grid, box)
    moments.add(np.array([[0.0, 0.0, box]]), np.array([8.0]))
    mass = moments.mass
    corners = np.ix_([0, grid - 1], [0, grid - 1], [0, grid - 1])
    np.testing.assert_allclose(mass[corners], 1.0, rtol=1e-14)
    assert mass.sum() == pytest.approx(8.0, rel=1e-15)


def test_cic_convention_is_the_pm_solver_s():
    positions, _, _, _ = random_particles(3000, 20.0)
    moments = MomentGrid(16, 20.0)
    moments.add(positions, np.ones(len(positions)))
    pm = nbody.cic_paint(jnp.asarray(positions, jnp.float32), (16,) * 3, 20.0)
    # float32 positions and a float32 sum of ~12 particles per cell
    np.testing.assert_allclose(moments.mass, pm, atol=1e-5)


def test_uniform_lattice_gives_uniform_density():
    """A lattice with one particle per cell, shifted off the centres by any offset, gives
    every cell the same mass."""
    for offset in (0.5, 0.137, 0.9):
        positions = lattice(16, 20.0, offset)
        fields = fields_of(positions, np.full(len(positions), 3.0))
        np.testing.assert_allclose(fields["density"], 1.0, rtol=4 * EPS32)


def test_mass_weighted_mean_matches_the_particles():
    positions, masses, velocities, temperature = random_particles(2000, 20.0, seed=1)
    fields = fields_of(positions, masses, velocities, weighted={"temperature": temperature})
    cell_mass = fields["density"].astype(np.float64) * masses.sum() / 16**3
    expected = np.sum(masses * temperature) / masses.sum()
    # each cell's mean is W / M, so sum M (W / M) = sum m T up to float32 rounding of each
    got = np.sum(cell_mass * fields["temperature"]) / np.sum(cell_mass)
    assert got == pytest.approx(expected, rel=8 * EPS32)
    # and two particles alone in a cell average with their masses
    pair = fields_of(np.array([[1.5, 1.5, 1.5], [1.5, 1.5, 1.5]]) * (20.0 / 16),
                     np.array([1.0, 3.0]), weighted={"temperature": np.array([100.0, 500.0])})
    assert pair["temperature"][1, 1, 1] == pytest.approx(400.0, rel=EPS32)
    assert np.all(np.isfinite(pair["temperature"])) and set(pair) == {"density", "temperature"}


def test_divergence_of_a_sine_flow_is_analytic():
    """v_x = A sin(kx), v_y = B sin(kx) on a lattice at the cell centres: each cell's mean is
    the flow at its centre, so theta = A k cos(kx) / (aH) up to the stencil's (kH)^4 / 30
    and float32 rounding; the shear v_y adds nothing."""
    grid, box, a, hubble = 16, 20.0, 0.5, 100.0 * 1.7
    positions = lattice(grid, box)
    k = 2 * np.pi / box
    x = positions[:, 0]
    velocities = np.stack([150.0 * np.sin(k * x), 80.0 * np.sin(k * x), np.zeros_like(x)], -1)
    fields = fields_of(positions, np.ones(len(x)), velocities, grid=grid, box=box, a=a,
                       hubble=hubble)
    centres = (np.arange(grid) + 0.5) * (box / grid)
    theta = (150.0 * k * np.cos(k * centres) / (a * hubble))[:, None, None]
    kh = k * box / grid
    amplitude = 150.0 * k / (a * hubble)
    tolerance = amplitude * (kh**4 / 30 * 1.01 + 16 * EPS32)
    assert np.max(np.abs(fields["velocity_divergence"] - theta)) < tolerance
    flow = np.broadcast_to(150.0 * np.sin(k * centres)[:, None, None], (grid,) * 3)
    np.testing.assert_allclose(fields["velocity_x"], flow, atol=150.0 * 4 * EPS32)
    assert np.max(fields["velocity_dispersion"]) < 150.0 * 1e-3  # one particle per cell: none


def test_counter_streaming_lattices_give_their_speed_as_dispersion():
    """Two lattices on the cell centres moving w +- u e: mean w, 3D dispersion u."""
    positions = lattice(16, 20.0)
    direction = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    w, u = np.array([30.0, -10.0, 5.0]), 250.0
    both = np.concatenate([positions, positions])
    velocities = np.concatenate([np.tile(w + u * direction, (len(positions), 1)),
                                 np.tile(w - u * direction, (len(positions), 1))])
    masses = np.ones(len(both))
    for dim in (3, 2):
        fields = fields_of(both, masses, velocities, dim=dim, slabs=4)
        np.testing.assert_allclose(fields["velocity_dispersion"], u, rtol=16 * EPS32)
        # in 2D the maps of slabs along x show (v_y, v_z), the others start with v_x
        first = w[0] if dim == 3 else np.repeat([w[1], w[0], w[0]], 4)[:, None, None]
        np.testing.assert_allclose(fields["velocity_x"], np.broadcast_to(
            first, fields["velocity_x"].shape), atol=u * 16 * EPS32)
        np.testing.assert_allclose(fields["velocity_divergence"], 0.0, atol=1e-5)


def test_a_map_counts_random_motions_not_the_bulk_flow_along_the_line_of_sight():
    """A cold lattice on the cell centres moving v_x = A sin(kx): every cell has no
    dispersion (its particle's velocity is its mean), so the maps of slabs along x, whose
    columns run through the sine, show none either; a column's own spread, sqrt(<v^2> -
    <v>^2) through its 8 cells, would be about A / sqrt(2). Counter-streaming particles
    on top add their speed u as the dispersion of every map."""
    grid, box = 16, 20.0
    positions = lattice(grid, box)
    k = 2 * np.pi / box
    amplitude, u = 150.0, 40.0
    flow = np.stack([amplitude * np.sin(k * positions[:, 0]), np.zeros(len(positions)),
                     np.zeros(len(positions))], -1)
    cold = fields_of(positions, np.ones(len(positions)), flow, grid=grid, box=box, dim=2,
                     slabs=2)
    assert np.max(cold["velocity_dispersion"]) < amplitude * 1e-3
    kick = np.array([0.0, u, 0.0])
    warm = fields_of(np.concatenate([positions, positions]), np.ones(2 * len(positions)),
                     np.concatenate([flow + kick, flow - kick]), grid=grid, box=box, dim=2,
                     slabs=2)
    np.testing.assert_allclose(warm["velocity_dispersion"], u, rtol=1e-4)


def test_slab_maps_hold_the_in_plane_components_in_their_axis_order():
    positions = lattice(16, 20.0, offset=0.3)
    velocities = np.tile([1.0, 2.0, 3.0], (len(positions), 1))
    fields = fields_of(positions, np.ones(len(positions)), velocities, dim=2, slabs=2)
    assert set(fields) == {"density", "velocity_x", "velocity_y", "velocity_dispersion",
                           "velocity_divergence"}
    for axis, (first, second) in enumerate([(2.0, 3.0), (1.0, 3.0), (1.0, 2.0)]):
        maps = slice(2 * axis, 2 * axis + 2)
        np.testing.assert_allclose(fields["velocity_x"][maps], first, rtol=4 * EPS32)
        np.testing.assert_allclose(fields["velocity_y"][maps], second, rtol=4 * EPS32)
    # each pixel sums a column of 8 cells of one unit each
    np.testing.assert_allclose(fields["density"], 8.0, rtol=4 * EPS32)


def test_empty_cells_take_the_flow_around_them():
    """Particles fill only the half x < L/2 of the box, all moving with one velocity: the
    empty half (up to 8 cells from a particle, beyond the first smoothing scale) gets that
    velocity, no dispersion and no divergence, and nothing is NaN."""
    grid, box = 32, 32.0
    positions = lattice(16, 16.0) * [1.0, 2.0, 2.0]  # spacing 1 in x, 2 in y and z
    velocity = np.array([120.0, -40.0, 70.0])
    fields = fields_of(positions, np.ones(len(positions)), np.tile(velocity, (len(positions), 1)),
                       grid=grid, box=box)
    assert np.all(fields["density"][20:28] == 0)
    for i, c in enumerate("xyz"):
        np.testing.assert_allclose(fields[f"velocity_{c}"], velocity[i], rtol=1e-6)
    assert np.max(fields["velocity_dispersion"]) < 1e-3 * 120.0
    np.testing.assert_allclose(fields["velocity_divergence"], 0.0, atol=1e-6)


def rotate_fields(fields: dict, kind: str) -> dict:
    """The fields the transformed particles must give: `quarter` turns x to y
    ((x, y, z) -> (L - y, x, z)), `flip` mirrors z."""
    if kind == "quarter":
        def turn(f):
            return np.rot90(f, axes=(0, 1))
        out = {name: turn(f) for name, f in fields.items()}
        out["velocity_x"], out["velocity_y"] = (-turn(fields["velocity_y"]),
                                                turn(fields["velocity_x"]))
        return out
    out = {name: np.flip(f, axis=2) for name, f in fields.items()}
    out["velocity_z"] = -out["velocity_z"]
    return out


@pytest.mark.parametrize("kind", ["quarter", "flip"])
def test_fields_rotate_with_the_particles(kind):
    """Fewer particles than cells, so empty cells (the smoothed fill) are part of it too."""
    box = 20.0
    positions, masses, velocities, temperature = random_particles(500, box, seed=2)
    if kind == "quarter":
        moved = np.stack([box - positions[:, 1], positions[:, 0], positions[:, 2]], -1)
        turned = np.stack([-velocities[:, 1], velocities[:, 0], velocities[:, 2]], -1)
    else:
        moved = positions * [1, 1, -1] + [0, 0, box]
        turned = velocities * [1, 1, -1]
    weighted = {"temperature": temperature}
    before = fields_of(positions, masses, velocities, weighted=weighted)
    after = fields_of(moved, masses, turned, weighted=weighted)
    assert np.mean(before["density"] == 0) > 0.2
    expected = rotate_fields(before, kind)
    for name, values in after.items():
        # the same float64 sums in another order, rounded to float32
        scale = np.max(np.abs(values))
        np.testing.assert_allclose(values, expected[name], rtol=0, atol=8 * EPS32 * scale,
                                   err_msg=name)


def test_linear_theory_theta_is_minus_f_delta_on_large_scales():
    """z = 0 in a 1 Gpc/h box is linear on its largest scales, where f(1) ~ 0.51 (not 1)
    sets theta = -f delta. 32^3 particles on a 16^3 mesh (8 per cell) over the modes
    0 < k < 1.5 k_f. The CIC density of displaced particles responds to a displacement
    like a one-sided difference, low by up to (kH)^2 / 12 = 2.6% at sqrt(2) k_f, the
    divergence (a central difference) by (kH)^4 / 30 = 0.3%; nonlinear terms are
    < 0.1% there (Delta^2(k) < 1e-3): measured over 6 seeds, -0.7 to -1.3%."""
    cosmo = cosmology.Cosmology()
    box, grid = 1000.0, 16
    state, _ = nbody.simulate_particles(
        cosmo, box, seed=3, settings=nbody.PMSettings(particle_grid=32, mesh_factor=1,
                                                      n_steps=3))
    moments = MomentGrid(grid, box)
    moments.add(np.asarray(state.positions), np.ones(32**3), np.asarray(state.velocities))
    fields = grid_fields(moments, a=1.0, hubble=100.0 * float(cosmology.hubble_rate(cosmo, 1)))
    delta_k = np.fft.rfftn(fields["density"] - 1.0)
    theta_k = np.fft.rfftn(fields["velocity_divergence"])
    k = spectra.wavenumber(Grid.box((grid,) * 3, box))
    low = (k > 0) & (k < 1.5 * 2 * np.pi / box)
    cross = np.sum((theta_k[low] * delta_k[low].conj()).real)
    slope = cross / np.sum(np.abs(delta_k[low]) ** 2)
    correlation = cross / np.sqrt(np.sum(np.abs(delta_k[low]) ** 2)
                                  * np.sum(np.abs(theta_k[low]) ** 2))
    f = float(cosmology.growth_rate(cosmo, 1.0))
    assert slope == pytest.approx(-f, rel=0.03)
    assert correlation < -0.999


@pytest.mark.parametrize("call, message", [
    (lambda m: m.add(np.zeros((3, 2)), np.ones(3)), "positions must have shape (M, 3)"),
    (lambda m: m.add(np.zeros((3, 3)), np.ones(2)), "masses must have shape (3,)"),
    (lambda m: m.add(np.full((1, 3), np.nan), np.ones(1)), "must be finite"),
    (lambda m: m.add(np.zeros((1, 3)), np.ones(1), density=np.ones(1)), "may not be named"),
    (lambda m: grid_fields(m, a=1.0, hubble=100.0), "no particle mass"),
    (lambda m: (m.add(np.zeros((1, 3)), np.ones(1)),
                grid_fields(m, a=1.0, hubble=100.0, dim=2, slabs=3)), "slabs must divide"),
    (lambda m: (m.add(np.zeros((1, 3)), np.ones(1)),
                m.add(np.zeros((1, 3)), np.ones(1), np.zeros((1, 3)))), "in every call"),
    (lambda m: (m.add(np.zeros((1, 3)), np.ones(1)), grid_fields(m, a=0.0, hubble=100.0)),
     "scale factor"),
])
def test_bad_input_raises_one_line(call, message):
    with pytest.raises(FieldnetError) as err:
        call(MomentGrid(16, 20.0))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_prefix_names_the_density_only():
    positions, masses, _, temperature = random_particles(500, 20.0)
    fields = fields_of(positions, masses, weighted={"temperature": temperature},
                       prefix="gas_")
    assert set(fields) == {"gas_density", "temperature"}


def test_sums_deposited_elsewhere_give_the_same_fields():
    positions, masses, velocities, temperature = random_particles(800, 20.0, seed=4)
    moments = MomentGrid(16, 20.0)
    moments.add(positions, masses, velocities, temperature=temperature)
    sums = moments.sums()
    momentum = np.stack([sums[f"momentum_{i}"] for i in range(3)], -1).reshape(16, 16, 16, 3)
    again = MomentGrid.from_sums(20.0, moments.mass, momentum,
                                 sums["kinetic"].reshape((16,) * 3),
                                 temperature=sums["temperature"].reshape((16,) * 3))
    for dim in (3, 2):
        first = grid_fields(moments, a=0.5, hubble=170.0, dim=dim)
        second = grid_fields(again, a=0.5, hubble=170.0, dim=dim)
        assert first.keys() == second.keys()
        for name in first:
            np.testing.assert_array_equal(first[name], second[name])
    with pytest.raises(FieldnetError, match="kinetic sums must be finite"):
        MomentGrid.from_sums(20.0, moments.mass, momentum, np.full((16,) * 3, np.nan))
