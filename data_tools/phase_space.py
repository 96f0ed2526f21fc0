r"""Particles to grid fields: density, mean velocity, velocity dispersion and divergence.

    moments = MomentGrid(grid=128, box_size=25.0)          # Mpc/h
    for chunk in chunks:                                   # any number of calls
        moments.add(chunk.positions, chunk.masses, chunk.velocities)
    fields = grid_fields(moments, a=1.0, hubble=100.0)     # {"density": (G, G, G), ...}

Used by the simulator (`data_tools.simulate`, from the sums its gas model deposits) and by
the particle-snapshot importer, so that both write the same fields with the same meaning.

**Deposit.** `MomentGrid.add` assigns each particle to the 8 cells around it with the
cloud-in-cell kernel on the periodic mesh, in the convention of `nbody.cic_paint`: cell
i spans [iH, (i+1)H) with its centre at (i + 1/2)H, H = box_size / grid, so a particle at
a cell centre lands entirely in that cell. Per cell it sums, in float64 with
`np.bincount` (O(grid^3) memory, whatever the number of particles or chunks),

    M = sum w m,   P = sum w m v,   K = sum w m |v|^2,   W_q = sum w m q,

with w the particle's CIC weight there, m its mass [M_sun/h], v its peculiar velocity
[km/s] and q each other mass-weighted quantity. The weights of a particle add up to 1 to
float64 rounding, so the total mass is conserved.

**Means in a cell.** Where M > 0 the fields are the plain CIC-mass-weighted means,
u = P / M and q = W_q / M, so sum_cells M q = sum_particles m q holds exactly. A cell no
particle reaches (M = 0, in voids, more of them the finer the mesh) takes the same
ratios of the sums smoothed by a Gaussian exp(-k^2 l^2 / 2): l = H, doubled until the
smoothed mass there is at least `EMPTY_CELL_MASS` of the mean cell mass (far above the
float64 rounding of the FFT; l = H already reaches about 5 cells into a void). The
Gaussian tail weights the nearest particles most, so an empty cell gets the flow of its
neighbours; it carries no mass, so no mass-weighted total changes.

**Dispersion.** sigma^2 = K / M - |u|^2 (the same ratios, with the same fill), the 3D
dispersion of the particles' velocities about the cell's mean, clipped at 0 against
rounding. A cold single-stream flow still shows the spread of its velocity across the CIC
kernel (about |grad u| H / sqrt(6)), and in an empty cell across the smoothing kernel.

**Divergence.** theta = div(u) / (a H(a)), dimensionless (the comoving gradient in h/Mpc
of u in km/s over H in km/s per Mpc/h), which linear theory predicts to be -f(a) delta.
The derivative is the 4th-order central difference
(8 [u(i+1) - u(i-1)] - [u(i+2) - u(i-2)]) / (12 H), the stencil of the PM force
(`nbody._gradient`): it is local, so a cell whose mean is one particle's velocity moves
theta only within 2 cells instead of ringing through the box as a spectral ik derivative
would; it vanishes at the Nyquist frequency, where CIC leaves grid-scale noise; and on a
mode of wavenumber k it is low by (kH)^4 / 30 (0.08% at an eighth of the Nyquist
frequency). On the largest scales of a PM run theta = -f delta holds within 1.5% with 8
particles per cell; with one particle per cell (the simulator's mesh) the mean velocity of
a cell is mostly that of one particle and theta comes out 2-5% above -f delta there.

**Maps (dim = 2).** The box is cut into `slabs` slabs along each axis (axis 0 first, then
1, then 2: `column_sums`, which the simulator's own maps use too); each map pixel sums its
column of cells: density = total mass per pixel [M_sun/h], velocity = P / M of the column
(its two in-plane components, in the map's own axis order), dispersion = the square root
of the mass-weighted mean of the cells' sigma^2 through the column (the random motions in
the cells; the bulk flow's change along the line of sight, which moves gas without heating
it, does not count), divergence and quantities mass-weighted through the column. A column
with no mass at all takes the plain mean of its cells.

Up to 2026-12-06 the maps' dispersion was that of the whole column, K / M - |P / M|^2,
which counts the line-of-sight spread of the mean flow. The cells' own dispersion tells
the gas temperature of the default simulations far better: with the map's density
context and divergence, a cubic fit of log10 T on the old map leaves 10.5% of its
variance, on the new one 5.7% (6 simulations, `docs/studies/density-to-temp.md`).
"""

from __future__ import annotations

import itertools

import numpy as np

from fieldnet.errors import FieldnetError
from fieldnet.eval import spectra
from fieldnet.grid import Grid

# The fields' units and log floors, which the simulator and the snapshot importer share (the
# floors are for empty cells: log-space learning raises values below them to them).
DENSITY_LOG_FLOOR = 1e-3  # of the mean density (of the mean pixel mass in 2D maps)
TEMPERATURE_LOG_FLOOR = 10.0  # K, below any gas temperature
# km/s: a cell reached by a single particle has none; resolved random motions are tens of km/s
DISPERSION_LOG_FLOOR = 1.0


def field_units(name: str, dim: int) -> str:
    """The units of a field the simulator or the snapshot importer writes."""
    if name in ("density", "gas_density"):
        return "mean density" if dim == 3 else "M_sun/h"
    if name == "temperature":
        return "K"
    if name == "velocity_divergence":
        return "dimensionless"
    return "km/s"


def log_floors(names, mean_density: float = 1.0) -> dict[str, float]:
    """The `log_floor` attribute of each positive field in `names` (none for the signed
    velocity fields); `mean_density` is the mean of a density field in its units (1 in 3D,
    the mean pixel mass in 2D maps)."""
    floors = {"density": DENSITY_LOG_FLOOR * mean_density,
              "gas_density": DENSITY_LOG_FLOOR * mean_density,
              "temperature": TEMPERATURE_LOG_FLOOR,
              "velocity_dispersion": DISPERSION_LOG_FLOOR}
    return {name: floors[name] for name in names if name in floors}


EMPTY_CELL_MASS = 1e-6  # smoothed mass, in units of the mean cell mass, that fills an empty cell
AXES = "xyz"
# names a mass-weighted quantity may not take: the sums kept beside it and the fields made
RESERVED = frozenset({"mass", "kinetic", "density", "velocity_dispersion", "velocity_divergence",
                      *(f"momentum_{i}" for i in range(3)), *(f"velocity_{c}" for c in AXES)})


class MomentGrid:
    """Cloud-in-cell (periodic, mass-conserving) accumulation of particle mass moments on a
    grid^3 mesh, chunk by chunk (module docstring, "Deposit").

    Args:
      grid: cells per side.
      box_size: comoving side of the periodic box in Mpc/h.
    """

    def __init__(self, grid: int, box_size: float):
        if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
            raise FieldnetError(f"grid must be a positive integer, got {grid!r}")
        if not (np.isfinite(box_size) and box_size > 0):
            raise FieldnetError(f"box_size must be a positive length in Mpc/h, got {box_size}")
        self.grid = int(grid)
        self.box_size = float(box_size)
        self._mass = np.zeros(self.grid**3)
        self._momentum: np.ndarray | None = None  # (3, grid^3)
        self._kinetic: np.ndarray | None = None
        self._weighted: dict[str, np.ndarray] = {}
        self._started = False

    @classmethod
    def from_sums(cls, box_size: float, mass: np.ndarray, momentum: np.ndarray | None = None,
                  kinetic: np.ndarray | None = None, **mass_weighted: np.ndarray
                  ) -> MomentGrid:
        """Moments deposited elsewhere with the same kernel: `mass` (G, G, G) sum w m
        [M_sun/h], `momentum` (G, G, G, 3) sum w m v, `kinetic` (G, G, G) sum w m |v|^2
        (velocities in km/s; both or neither), each keyword (G, G, G) sum w m q."""
        mass = np.asarray(mass, np.float64)
        grid = mass.shape[0] if mass.ndim == 3 else 0
        if mass.shape != (grid,) * 3 or grid < 1:
            raise FieldnetError(f"mass must be a (G, G, G) grid, got shape {mass.shape}")
        if (momentum is None) != (kinetic is None):
            raise FieldnetError("momentum and kinetic sums must be given together")
        _check_quantity_names(mass_weighted)
        moments = cls(grid, box_size)
        moments._mass = mass.ravel().copy()
        if momentum is not None:
            momentum = np.asarray(momentum, np.float64)
            _check_shape("momentum", momentum.shape, (grid,) * 3 + (3,))
            _check_shape("kinetic", np.shape(kinetic), (grid,) * 3)
            moments._momentum = np.moveaxis(momentum, -1, 0).reshape(3, -1).copy()
            moments._kinetic = np.asarray(kinetic, np.float64).ravel().copy()
        for name, values in mass_weighted.items():
            _check_shape(name, np.shape(values), (grid,) * 3)
            moments._weighted[name] = np.asarray(values, np.float64).ravel().copy()
        for name, values in moments.sums().items():
            if not np.all(np.isfinite(values)):
                raise FieldnetError(f"the {name} sums must be finite")
        moments._started = True
        return moments

    @property
    def mass(self) -> np.ndarray:
        """(G, G, G) deposited mass per cell [M_sun/h], float64 (a view, not a copy)."""
        return self._mass.reshape((self.grid,) * 3)

    @property
    def total_mass(self) -> float:
        """Sum of all masses added [M_sun/h]."""
        return float(self._mass.sum())

    @property
    def has_velocities(self) -> bool:
        return self._momentum is not None

    @property
    def quantities(self) -> tuple[str, ...]:
        """Names of the mass-weighted per-particle quantities."""
        return tuple(self._weighted)

    def add(self, positions: np.ndarray, masses: np.ndarray,
            velocities: np.ndarray | None = None, **mass_weighted: np.ndarray) -> None:
        """Deposits one chunk of M particles.

        Args:
          positions: (M, 3) comoving positions in Mpc/h, in [0, box_size) (wrapped if not).
          masses: (M,) masses in M_sun/h.
          velocities: (M, 3) peculiar velocities in km/s, or None.
          **mass_weighted: (M,) per-particle quantities whose mass-weighted mean is wanted
            (e.g. temperature=T in K).
        The first call fixes whether velocities and which quantities are given; every
        later call must give the same.
        """
        positions = np.asarray(positions, np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise FieldnetError(f"positions must have shape (M, 3), got {positions.shape}")
        count = positions.shape[0]
        masses = np.asarray(masses, np.float64)
        _check_shape("masses", masses.shape, (count,))
        if self._started:
            if (velocities is not None) != self.has_velocities:
                raise FieldnetError("velocities must be given in every call to add or in none")
            if set(mass_weighted) != set(self._weighted):
                raise FieldnetError(f"every call to add must give the same quantities "
                                    f"{sorted(self._weighted)}, got {sorted(mass_weighted)}")
        else:
            _check_quantity_names(mass_weighted)
            if velocities is not None:
                self._momentum = np.zeros((3, self.grid**3))
                self._kinetic = np.zeros(self.grid**3)
            self._weighted = {name: np.zeros(self.grid**3) for name in mass_weighted}
            self._started = True
        columns = {"mass": masses}
        if velocities is not None:
            velocities = np.asarray(velocities, np.float64)
            _check_shape("velocities", velocities.shape, (count, 3))
            for i in range(3):
                columns[f"momentum_{i}"] = masses * velocities[:, i]
            columns["kinetic"] = masses * np.einsum("ij,ij->i", velocities, velocities)
        for name, values in mass_weighted.items():
            values = np.asarray(values, np.float64)
            _check_shape(name, values.shape, (count,))
            columns[name] = masses * values
        for name, values in [("positions", positions), *columns.items()]:
            if not np.all(np.isfinite(values)):
                raise FieldnetError(f"{name} of the particles must be finite")
        if count == 0:
            return
        targets = self.sums()
        for flat, weight in _cic_stencil(positions, self.grid, self.box_size):
            for name, values in columns.items():
                targets[name] += np.bincount(flat, weights=weight * values,
                                             minlength=self.grid**3)

    def sums(self) -> dict[str, np.ndarray]:
        """The running sums per cell, flat (grid^3,), float64, by name: "mass" (M),
        "momentum_0".."momentum_2" (P) and "kinetic" (K) when velocities were given, and
        each mass-weighted quantity (W_q). The arrays are the grid's own (adding more
        particles changes them); `from_sums` builds a grid from them.

        Returns:
            {name: (grid^3,) float64 array}.
        """
        targets = {"mass": self._mass}
        if self._momentum is not None:
            targets.update({f"momentum_{i}": self._momentum[i] for i in range(3)})
            targets["kinetic"] = self._kinetic
        targets.update(self._weighted)
        return targets


def _check_quantity_names(names) -> None:
    taken = sorted(RESERVED.intersection(names))
    if taken:
        raise FieldnetError(f"mass-weighted quantities may not be named {taken}: those names "
                            "are the velocity moments and the fields made from them")


def _check_shape(name: str, shape, expected) -> None:
    if tuple(shape) != tuple(expected):
        raise FieldnetError(f"{name} must have shape {tuple(expected)}, got {tuple(shape)}")


def _cic_stencil(positions: np.ndarray, grid: int, box_size: float):
    """Yields (flat cell index, weight) for the 8 cells around each particle, float64."""
    cell = np.mod(positions.T, box_size) * (grid / box_size) - 0.5  # centres at i + 1/2
    lower = np.floor(cell)
    frac = cell - lower
    lower = lower.astype(np.int64)
    lower[lower < 0] += grid  # a particle below the first cell centre
    upper = lower + 1
    upper[upper >= grid] -= grid
    strides = (grid * grid, grid, 1)
    index = [(lower[i] * strides[i], upper[i] * strides[i]) for i in range(3)]
    weight = [(1.0 - frac[i], frac[i]) for i in range(3)]
    for cx, cy in itertools.product((0, 1), repeat=2):
        flat_xy = index[0][cx] + index[1][cy]
        weight_xy = weight[0][cx] * weight[1][cy]
        for cz in (0, 1):
            yield flat_xy + index[2][cz], weight_xy * weight[2][cz]


def _smooth(field: np.ndarray, box_size: float, scale: float) -> np.ndarray:
    """Gaussian smoothing exp(-k^2 scale^2 / 2) of a periodic grid, float64."""
    kernel = np.exp(-0.5 * (spectra.wavenumber(Grid.box(field.shape, box_size)) * scale) ** 2)
    return np.fft.irfftn(np.fft.rfftn(field) * kernel, s=field.shape, axes=range(field.ndim))


def _cell_means(mass: np.ndarray, sums: list[np.ndarray], box_size: float) -> list[np.ndarray]:
    """sum / mass per cell, in empty cells of the sums Gaussian-smoothed on the smallest
    scale that reaches them (module docstring, "Means in a cell")."""
    occupied = mass > 0
    means = [np.where(occupied, s / np.where(occupied, mass, 1.0), 0.0) for s in sums]
    empty = ~occupied
    grid = mass.shape[0]
    threshold = EMPTY_CELL_MASS * mass.sum() / mass.size
    scale = box_size / grid
    while empty.any():
        smoothed_mass = _smooth(mass, box_size, scale)
        reached = empty & (smoothed_mass >= threshold)
        if reached.any():
            for mean, s in zip(means, sums, strict=True):
                mean[reached] = _smooth(s, box_size, scale)[reached] / smoothed_mass[reached]
            empty &= ~reached
        scale *= 2.0
    return means


def _derivative(field: np.ndarray, axis: int, spacing: float) -> np.ndarray:
    """4th-order central difference along `axis` of a periodic grid."""
    def shifted(n):
        return np.roll(field, -n, axis=axis)
    return (8.0 * (shifted(1) - shifted(-1)) - (shifted(2) - shifted(-2))) / (12.0 * spacing)


def column_sums(field: np.ndarray, slabs: int) -> np.ndarray:
    """(3 * slabs, G, G): the sums over the columns of cells under each map pixel, slabs
    along axis 0 first, then axis 1, then axis 2 (each map keeps the other two axes in
    order). The one slab projection of the simulator and the snapshot importer."""
    grid = field.shape[0]
    return np.concatenate([np.moveaxis(field, axis, 0).reshape(
        slabs, grid // slabs, grid, grid).sum(axis=1) for axis in range(3)])


def project(mass: np.ndarray, mean: np.ndarray, slabs: int) -> np.ndarray:
    """(3 * slabs, G, G) mass-weighted means of `mean` through each column; a column
    without mass takes the plain mean of its cells."""
    total = column_sums(mass, slabs)
    empty = total <= 0
    projected = column_sums(mass * mean, slabs) / np.where(empty, 1.0, total)
    if empty.any():
        projected[empty] = column_sums(mean, slabs)[empty] / (mass.shape[0] // slabs)
    return projected


def _in_plane(velocity: list[np.ndarray], slabs: int) -> dict[str, np.ndarray]:
    """The two in-plane components of each map's velocity, in the map's axis order: the
    maps of slabs along axis 0 span axes (1, 2), along axis 1 (0, 2), along axis 2 (0, 1)."""
    planes = [[i for i in range(3) if i != axis] for axis in range(3)]
    return {f"velocity_{AXES[c]}": np.concatenate(
                [velocity[plane[c]][axis * slabs:(axis + 1) * slabs]
                 for axis, plane in enumerate(planes)])
            for c in range(2)}


def grid_fields(moments: MomentGrid, *, a: float, hubble: float, dim: int = 3, slabs: int = 4,
                prefix: str = "") -> dict[str, np.ndarray]:
    """The fields of the module docstring from deposited moments, float32.

    Args:
      moments: the deposited particles.
      a: scale factor.
      hubble: H(a) in km/s per Mpc/h (100 E(a)).
      dim: 3 for (G, G, G) grids, 2 for (3 * slabs, G, G) slab maps (axis 0 slabs first).
      slabs: slabs per axis for dim = 2; must divide the grid.
      prefix: put before "density" only (the importer's gas uses "gas_"); the other names
        stay as they are, since a quantity such as "temperature" says what it is.

    Returns:
      "density": in units of the mean (3D) or total mass per pixel in M_sun/h (2D);
      with velocities, "velocity_x", "velocity_y" (and "velocity_z" in 3D) in km/s,
      "velocity_dispersion" in km/s and "velocity_divergence" theta (dimensionless);
      each mass-weighted quantity under its own name.
    """
    if not (np.isfinite(a) and a > 0):
        raise FieldnetError(f"scale factor a must be positive, got {a}")
    if not (np.isfinite(hubble) and hubble > 0):
        raise FieldnetError(f"hubble H(a) must be positive (km/s per Mpc/h), got {hubble}")
    if dim not in (2, 3):
        raise FieldnetError(f"dim must be 2 or 3, got {dim}")
    grid = moments.grid
    if dim == 2 and (not isinstance(slabs, (int, np.integer)) or slabs < 1 or grid % slabs):
        raise FieldnetError(f"slabs must divide the grid {grid}, got {slabs}")
    if not moments.total_mass > 0:
        raise FieldnetError("no particle mass was deposited")
    shape = (grid,) * 3
    mass = moments.mass
    sums = {name: values.reshape(shape) for name, values in moments.sums().items()
            if name != "mass"}
    # per unit mass, the momentum sums become the mean velocity, the kinetic sum <|v|^2>
    means = dict(zip(sums, _cell_means(mass, list(sums.values()), moments.box_size),
                     strict=True))
    if moments.has_velocities:
        spacing = moments.box_size / grid
        means["velocity_divergence"] = sum(
            _derivative(means[f"momentum_{i}"], i, spacing) for i in range(3)) / (a * hubble)
        means["dispersion2"] = np.maximum(
            means.pop("kinetic") - sum(means[f"momentum_{i}"] ** 2 for i in range(3)), 0.0)
    if dim == 3:
        fields = {f"{prefix}density": mass * (mass.size / mass.sum())}
        maps = means
    else:
        fields = {f"{prefix}density": column_sums(mass, slabs)}
        maps = {name: project(mass, mean, slabs) for name, mean in means.items()}
    if moments.has_velocities:
        velocity = [maps[f"momentum_{i}"] for i in range(3)]
        if dim == 3:
            fields.update({f"velocity_{AXES[i]}": velocity[i] for i in range(3)})
        else:
            fields.update(_in_plane(velocity, slabs))
        fields["velocity_dispersion"] = np.sqrt(maps["dispersion2"])
        fields["velocity_divergence"] = maps["velocity_divergence"]
    fields.update({name: maps[name] for name in moments.quantities})
    return {name: np.asarray(values, np.float32) for name, values in fields.items()}
