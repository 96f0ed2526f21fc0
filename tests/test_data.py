import threading

import h5py
import numpy as np
import pytest

from fieldnet import data, symmetry
from fieldnet.data import h5format
from fieldnet.data.prefetch import Prefetcher
from fieldnet.errors import FieldnetError
from fieldnet.eval import metrics, spectra
from fieldnet.grid import Grid

SIMS, PER_SIM, SIZE = 5, 3, 16


def temperature_of(rho):
    """A pointwise target, so y = a*x + b in normalized space wherever crops agree."""
    return (1e4 * rho**0.6).astype(np.float32)


def make_file(path, ndim=2, size=SIZE, sims=SIMS, per_sim=PER_SIM, seed=0, **fields):
    rng = np.random.default_rng(seed)
    n = sims * per_sim
    rho = np.exp(rng.normal(size=(n, *[size] * ndim))).astype(np.float32)
    arrays = {"density": rho, "temperature": temperature_of(rho), **fields}
    return h5format.write_arrays(path, arrays, ndim=ndim, box_size=25.0, source="test",
                                 sim_index=np.arange(n) // per_sim,
                                 units={k: "K" if k == "temperature" else "1" for k in arrays},
                                 overwrite=True)


def config(path, **overrides):
    c = data.default_config()
    c.path = str(path)
    c.crop_size = 8
    c.prefetch = 0
    c.update(overrides)
    return c


@pytest.fixture(scope="module")
def file2d(tmp_path_factory):
    return make_file(tmp_path_factory.mktemp("d") / "a.h5")


@pytest.fixture(scope="module")
def ds2d(file2d):
    with data.FieldDataset(config(file2d)) as ds:
        yield ds


def linear_fit_residual(x, y):
    a, b = np.polyfit(x.ravel(), y.ravel(), 1)
    return np.abs(a * x + b - y).max()


def test_batch_shapes_and_normalization(ds2d):
    b = ds2d.batch("train", 6, seed=0, step=0)
    assert b["x"].shape == (6, 8, 8, 1) and b["y"].shape == (6, 8, 8, 1)
    assert b["x"].dtype == np.float32 and b["y"].dtype == np.float32
    assert (ds2d.in_channels, ds2d.out_channels, ds2d.ndim) == (1, 1, 2)


def test_batches_are_a_pure_function_of_seed_and_step(file2d, ds2d):
    again = data.FieldDataset(config(file2d))
    for step in (0, 7):
        a, b = ds2d.batch("train", 4, 3, step), again.batch("train", 4, 3, step)
        np.testing.assert_array_equal(a["x"], b["x"])
        np.testing.assert_array_equal(a["y"], b["y"])
    assert not np.array_equal(ds2d.batch("train", 4, 3, 1)["x"], ds2d.batch("train", 4, 3, 2)["x"])
    assert not np.array_equal(ds2d.batch("train", 4, 3, 1)["x"], ds2d.batch("train", 4, 4, 1)["x"])


def test_resume_from_step_sees_the_same_batches(file2d):
    ds = data.FieldDataset(config(file2d, prefetch=2))
    with ds.batches("train", 4, seed=1, num_steps=6) as it:
        full = list(it)
    with ds.batches("train", 4, seed=1, start_step=3, num_steps=3) as it:
        resumed = list(it)
    assert len(full) == 6 and len(resumed) == 3
    for a, b in zip(full[3:], resumed, strict=True):
        np.testing.assert_array_equal(a["x"], b["x"])
        np.testing.assert_array_equal(a["y"], b["y"])


def test_process_shards_are_disjoint_slices_of_the_global_batch(file2d, ds2d):
    whole = ds2d.batch("train", 6, seed=2, step=5)
    shards = [data.FieldDataset(config(file2d), normalizer=ds2d.normalizer, process_index=p,
                                process_count=3).batch("train", 6, seed=2, step=5)
              for p in range(3)]
    assert all(s["x"].shape[0] == 2 for s in shards)
    for key in ("x", "y"):
        np.testing.assert_array_equal(np.concatenate([s[key] for s in shards]), whole[key])
    with pytest.raises(FieldnetError, match="not divisible"):
        data.FieldDataset(config(file2d), normalizer=ds2d.normalizer, process_index=0,
                          process_count=4).batch("train", 6, 0, 0)


def test_augmentation_is_identical_for_input_and_target(file2d, ds2d):
    plain = data.FieldDataset(config(file2d, augment=False), normalizer=ds2d.normalizer)
    aug = ds2d.batch("train", 8, seed=4, step=2)
    ref = plain.batch("train", 8, seed=4, step=2)
    # y is a pointwise function of x, which survives only if both saw the same transform.
    assert linear_fit_residual(aug["x"], aug["y"]) < 1e-4
    group = symmetry.group_elements(2)
    transformed = 0
    for xa, ya, xr, yr in zip(aug["x"], aug["y"], ref["x"], ref["y"], strict=True):
        g = next(g for g in group if np.array_equal(symmetry.apply(xr, g, 0), xa))
        np.testing.assert_array_equal(symmetry.apply(yr, g, 0), ya)
        transformed += not g.is_identity
    assert transformed > 0
    val = ds2d.batch("val", 8, seed=4, step=2)
    val_plain = plain.batch("val", 8, seed=4, step=2)
    np.testing.assert_array_equal(val["x"], val_plain["x"])


@pytest.mark.parametrize("ndim", [2, 3])
def test_batch_transform_is_each_samples_own_transform(ndim):
    """`transform_batch` (one transform per distinct element) gives exactly what
    `transform_fields` gives sample by sample, a vector field's components included."""
    from fieldnet.data.dataset import transform_batch, transform_fields
    from fieldnet.data.source import Field

    rng = np.random.default_rng(ndim)
    fields = [Field("rho", ("rho",), "1", None, False),
              Field("v", tuple(f"v_{a}" for a in "xyz"[:ndim]), "km/s", None, True)]
    values = rng.normal(size=(40, *[5] * ndim, 1 + ndim)).astype(np.float32)
    group = symmetry.group_elements(ndim)
    elements = rng.integers(len(group), size=len(values))
    moved = transform_batch(values, elements, fields)
    assert moved.dtype == values.dtype and moved.flags.c_contiguous
    for x, e, y in zip(values, elements, moved, strict=True):
        np.testing.assert_array_equal(transform_fields(x, fields, group[e]), y)
    scalars = transform_batch(values, elements)
    for x, e, y in zip(values, elements, scalars, strict=True):
        np.testing.assert_array_equal(symmetry.apply(x, group[e], 0), y)


@pytest.mark.parametrize("ndim,size", [(1, 4), (2, 3), (2, 7), (3, 5)])
def test_periodic_crops_are_windows_of_the_rolled_samples(ndim, size):
    from fieldnet.data.dataset import periodic_crops

    rng = np.random.default_rng(size)
    values = rng.normal(size=(6, *[7] * ndim, 2)).astype(np.float32)
    starts = rng.integers(7, size=(6, ndim))
    crops = periodic_crops(values, starts, size)
    assert crops.shape == (6, *[size] * ndim, 2)
    for x, start, crop in zip(values, starts, crops, strict=True):
        rolled = np.roll(x, tuple(-start), axis=tuple(range(ndim)))
        np.testing.assert_array_equal(rolled[(slice(size),) * ndim], crop)


def central_gradient(phi):
    """Periodic central differences: components last, one per spatial axis."""
    axes = range(1, phi.ndim)
    return np.stack([(np.roll(phi, -1, a) - np.roll(phi, 1, a)) / 2 for a in axes], axis=-1)


@pytest.mark.parametrize("ndim,size", [(2, SIZE), (3, 8)])
def test_vector_fields_rotate_as_vectors(tmp_path, ndim, size):
    rng = np.random.default_rng(5)
    phi = rng.normal(size=(6, *[size] * ndim)).astype(np.float32)
    grad = central_gradient(phi).astype(np.float32)
    fields = {f"v{s}": grad[..., k] for k, s in enumerate(("_x", "_y", "_z")[:ndim])}
    fields["theta"] = np.exp(phi).astype(np.float32)
    path = h5format.write_arrays(tmp_path / "v.h5", fields, ndim=ndim, box_size=10.0,
                                 source="test", sim_index=np.arange(6),
                                 units=dict.fromkeys(fields, "1"))
    ds = data.FieldDataset(config(path, input_field="v", target_field="theta",
                                  vector_fields="v", crop_size=6, split_fractions=(1, 0, 0)))
    assert ds.in_channels == ndim
    b = ds.batch("train", 12, seed=0, step=0)
    v_std, theta = ds.normalizer["v"].std, ds.normalizer["theta"]
    # Undo the normalization: v is the gradient of phi = ln(theta) in every augmented crop.
    v = b["x"] * v_std
    phi_crop = (b["y"][..., 0] * theta.std + theta.mean) * np.log(10)
    inner = (slice(None), *[slice(1, -1)] * ndim)
    for k in range(ndim):
        diff = (np.roll(phi_crop, -1, k + 1) - np.roll(phi_crop, 1, k + 1)) / 2
        np.testing.assert_allclose(v[..., k][inner], diff[inner], atol=2e-4)


def test_splits_are_by_simulation(ds2d):
    sim_index = ds2d.source.sim_index
    sims = {s: {int(sim_index[r.sample]) for r in ds2d.splits[s]} for s in data.SPLITS}
    assert sims["train"].isdisjoint(sims["val"]) and sims["train"].isdisjoint(sims["test"])
    assert sims["val"].isdisjoint(sims["test"])
    assert set.union(*sims.values()) == set(range(SIMS))
    # Whole simulations: every map of a chosen simulation is in its split.
    for s in data.SPLITS:
        assert len(ds2d.splits[s]) == PER_SIM * len(sims[s])
        assert ds2d.n_sims(s) == len(sims[s])
    again = data.split_simulations(sim_index, (0.6, 0.2, 0.2), seed=0)
    np.testing.assert_array_equal(again["test"], data.split_simulations(
        sim_index, (0.6, 0.2, 0.2), seed=0)["test"])
    others = [data.split_simulations(sim_index, (0.6, 0.2, 0.2), seed=k)["test"]
              for k in range(1, 6)]
    assert any(not np.array_equal(o, again["test"]) for o in others)


def test_max_train_sims_nests_and_keeps_val_test():
    sim_index = np.repeat(np.arange(20), 3)
    full = data.split_simulations(sim_index, (0.6, 0.2, 0.2), seed=0)
    small = data.split_simulations(sim_index, (0.6, 0.2, 0.2), seed=0, max_train=4)
    for s in ("val", "test"):
        np.testing.assert_array_equal(small[s], full[s])
    assert len(np.unique(sim_index[small["train"]])) == 4
    assert set(small["train"]) < set(full["train"])
    five = data.split_simulations(sim_index, (0.6, 0.2, 0.2), seed=0, max_train=5)
    assert set(small["train"]) < set(five["train"])
    with pytest.raises(FieldnetError, match="only 12 simulations"):
        data.split_simulations(sim_index, (0.6, 0.2, 0.2), seed=0, max_train=13)


def test_eval_maps_per_sim_keeps_the_first_maps_of_every_eval_box():
    sim_index = np.repeat(np.arange(20), 3)
    full = data.split_simulations(sim_index, (0.6, 0.2, 0.2), seed=0)
    one = data.split_simulations(sim_index, (0.6, 0.2, 0.2), seed=0, eval_maps=1)
    np.testing.assert_array_equal(one["train"], full["train"])
    for s in ("val", "test"):
        np.testing.assert_array_equal(np.unique(sim_index[one[s]]),
                                      np.unique(sim_index[full[s]]))   # every box
        assert len(one[s]) == len(np.unique(sim_index[full[s]]))      # one map each
        np.testing.assert_array_equal(one[s] % 3, 0)                  # its first
    two = data.split_simulations(sim_index, (0.6, 0.2, 0.2), seed=0, eval_maps=2)
    assert set(one["test"]) < set(two["test"]) < set(full["test"])
    many = data.split_simulations(sim_index, (0.6, 0.2, 0.2), seed=0, eval_maps=5)
    np.testing.assert_array_equal(many["val"], full["val"])


def test_explicit_split_sims(file2d):
    ds = data.FieldDataset(config(file2d, split_sims={"train": [0, 1, 2], "val": [3],
                                                      "test": [4]}))
    assert [r.sample for r in ds.splits["test"]] == [12, 13, 14]
    one = data.FieldDataset(config(file2d, split_sims={"train": [0, 1, 2], "val": [3],
                                                       "test": [4]}, eval_maps_per_sim=1))
    assert [[r.sample for r in one.splits[s]] for s in data.SPLITS] == [
        [r.sample for r in ds.splits["train"]], [9], [12]]
    assert one.read("test")["x"].shape[0] == 1
    with pytest.raises(FieldnetError, match="two splits"):
        data.FieldDataset(config(file2d, split_sims={"train": [0, 1], "val": [1], "test": [4]}))


def test_normalizer_uses_the_train_split_only(tmp_path, ds2d):
    changed = make_file(tmp_path / "b.h5")
    test_samples = [r.sample for r in ds2d.splits["test"]]
    with h5py.File(changed, "r+") as f:
        for name in ("density", "temperature"):
            f[f"fields/{name}"][test_samples] *= 1000.0
    assert data.FieldDataset(config(changed)).normalizer == ds2d.normalizer
    full = data.FieldDataset(config(changed, split_fractions=(1.0, 0.0, 0.0))).normalizer
    assert full != ds2d.normalizer


def test_read_whole_samples(file2d, ds2d):
    test = ds2d.read("test")
    samples = [r.sample for r in ds2d.splits["test"]]
    with h5py.File(file2d) as f:
        rho = f["fields/density"][samples]
    np.testing.assert_array_equal(test["x_phys"][..., 0], rho)
    np.testing.assert_allclose(test["x"], ds2d.normalizer.forward("density", test["x_phys"]))
    assert test["x"].shape == (len(samples), SIZE, SIZE, 1)
    assert test["units"] == {"density": "1", "temperature": "K"}
    assert test["grid"] == ds2d.grid == Grid.box((SIZE, SIZE), 25.0)
    np.testing.assert_array_equal(test["sim_index"], np.asarray(samples) // PER_SIM)
    one = next(ds2d.iter_samples(samples[0]))
    assert one["y"].shape == (SIZE, SIZE, 1) and one["grid"].periodic == (True, True)


def test_raw_hdf5_with_sample_axis_and_multiple_inputs(tmp_path):
    rng = np.random.default_rng(6)
    rho = np.exp(rng.normal(size=(6, 12, 12))).astype(np.float32)
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as f:
        f["/PartType0/density"] = rho
        f["/PartType0/mass"] = 2 * rho
        f["/PartType0/temperature"] = temperature_of(rho)
    cfg = config(path, input_field="/PartType0/density, /PartType0/mass",
                 target_field="/PartType0/temperature", split_fractions=(0.5, 0.5, 0.0))
    with pytest.raises(FieldnetError, match="set data.box_size"):
        data.FieldDataset(cfg)
    cfg.box_size = 50.0
    ds = data.FieldDataset(cfg)
    b = ds.batch("train", 2, 0, 0)
    assert b["x"].shape == (2, 8, 8, 2) and ds.grid.lengths == (50.0, 50.0)
    assert len(ds.splits["train"]) == 3 and not ds.splits["test"]
    with pytest.raises(FieldnetError, match="test split is empty"):
        ds.batch("test", 2, 0, 0)


def test_single_box_is_split_into_slabs(tmp_path):
    rows = np.arange(40, dtype=np.float32)[:, None] + 1.0
    box = np.broadcast_to(rows, (40, 40)).astype(np.float32)
    path = tmp_path / "box.h5"
    with h5py.File(path, "w") as f:
        f["rho"] = box
        f["T"] = box**2
        f.attrs["box_size"] = 100.0
    ds = data.FieldDataset(config(path, input_field="rho", target_field="T", sample_axis=False,
                                  split_fractions=(0.5, 0.25, 0.25), augment=False))
    assert [(r.lo, r.hi) for s in data.SPLITS for r in ds.splits[s]] == [(0, 20), (20, 30),
                                                                        (30, 40)]
    for step in range(20):
        x = ds.normalizer.inverse("rho", ds.batch("train", 4, 0, step)["x"])
        assert x.min() > 0.5 and x.max() < 20.5
    test = ds.read("test")
    assert test["x_phys"].shape == (1, 10, 40, 1)
    assert test["grid"] == Grid((10, 40), (25.0, 100.0), (False, True))
    assert np.all(test["sim_index"] == 0)
    with pytest.raises(FieldnetError, match="larger than the val slab"):
        data.FieldDataset(config(path, input_field="rho", target_field="T", sample_axis=False,
                                 split_fractions=(0.5, 0.25, 0.25), crop_size=12)).batch(
            "val", 1, 0, 0)


def test_file_layout_changes_the_storage_not_the_batches(tmp_path, file2d):
    """Raw crop-sized chunks (a faster layout for 3D crops) hold the same values."""
    with h5py.File(file2d) as f:
        fields = {k: f[f"fields/{k}"][...] for k in ("density", "temperature")}
    raw = h5format.write_arrays(tmp_path / "raw.h5", fields, ndim=2, box_size=25.0,
                                source="test", sim_index=np.arange(SIMS * PER_SIM) // PER_SIM,
                                units={"density": "1", "temperature": "K"}, chunks=(8, 4),
                                compress=False)
    with h5py.File(raw) as f:
        ds = f["fields/density"]
        assert ds.chunks == (1, 8, 4) and ds.compression is None
    with data.FieldDataset(config(file2d)) as a, data.FieldDataset(config(raw)) as b:
        for step in (0, 3):
            np.testing.assert_array_equal(a.batch("train", 4, 0, step)["x"],
                                          b.batch("train", 4, 0, step)["x"])
    with pytest.raises(FieldnetError, match=r"fields/density: chunks must be 2 sizes between 1 "
                                            r"and the field's \(16, 16\), got \(32, 4\)"):
        h5format.write_arrays(tmp_path / "bad.h5", fields, ndim=2, box_size=25.0, source="test",
                              sim_index=np.zeros(SIMS * PER_SIM), units={"density": "1",
                                                                         "temperature": "K"},
                              chunks=(32, 4))


def test_prefetcher_stops_and_reraises():
    with Prefetcher(lambda s: s, start=5, size=2) as it:
        assert [next(it) for _ in range(3)] == [5, 6, 7]
    assert not any(t.name == "fieldnet-prefetch" and t.is_alive()
                   for t in threading.enumerate())

    def broken(step):
        if step == 2:
            raise FieldnetError("bad sample")
        return step

    it = Prefetcher(broken, size=2)
    assert next(it) == 0 and next(it) == 1
    with pytest.raises(FieldnetError, match="bad sample"):
        next(it)


# --- bad input: one-line FieldnetError naming file, dataset and index -----------------------


def test_missing_file_and_dataset(tmp_path, file2d):
    with pytest.raises(FieldnetError, match=r"nope\.h5: no such file"):
        data.FieldDataset(config(tmp_path / "nope.h5"))
    with pytest.raises(FieldnetError, match=r"a\.h5:fields/pressure: missing dataset"):
        data.FieldDataset(config(file2d, target_field="pressure"))


def test_shape_mismatch(tmp_path):
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f["rho"] = np.ones((3, 8, 8), np.float32)
        f["T"] = np.ones((3, 8, 9), np.float32)
    with pytest.raises(FieldnetError, match=r"m\.h5:T: shape \(3, 8, 9\) differs"):
        data.FieldDataset(config(path, input_field="rho", target_field="T", box_size=1.0))


def test_nan_and_non_positive_values_name_the_sample(tmp_path):
    bad = np.ones((SIMS * PER_SIM, SIZE, SIZE), np.float32)
    bad[13, 2, 2] = np.nan
    path = make_file(tmp_path / "nan.h5", pressure=bad)
    split = {"train": [0, 1, 2], "val": [3], "test": [4]}
    ds = data.FieldDataset(config(path, target_field="pressure", split_sims=split))
    with pytest.raises(FieldnetError, match=r"nan\.h5:fields/pressure\[13\]: 1 NaN/Inf"):
        ds.read("test")
    bad[13, 2, 2] = 0.0
    path = make_file(tmp_path / "zero.h5", pressure=bad)
    ds = data.FieldDataset(config(path, target_field="pressure", split_sims=split))
    with pytest.raises(FieldnetError, match=r"zero\.h5:fields/pressure\[13\]: non-positive"):
        ds.read("test")
    floored = data.FieldDataset(config(path, target_field="pressure", split_sims=split,
                                       target_log_floor=0.5))
    assert floored.read("test")["y_phys"].min() == 0.0


def test_crop_larger_than_field(file2d):
    with pytest.raises(FieldnetError, match=r"a\.h5:fields/density: crop_size 17 is larger"):
        data.FieldDataset(config(file2d, crop_size=17))


def test_truncated_file(tmp_path, file2d):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(file2d.read_bytes()[:2000])
    with pytest.raises(FieldnetError, match=r"broken\.h5: not a readable HDF5 file"):
        data.FieldDataset(config(broken))


def test_corrupt_chunk_names_the_sample(tmp_path):
    path = make_file(tmp_path / "c.h5")
    with h5py.File(path) as f:
        chunk = f["fields/temperature"].id.get_chunk_info(7)
    with open(path, "r+b") as raw:
        raw.seek(chunk.byte_offset + 16)
        raw.write(b"\xff" * 64)
    ds = data.FieldDataset(config(path, split_sims={"train": [0, 1, 3], "val": [4],
                                                    "test": [2]}))
    with pytest.raises(FieldnetError, match=r"c\.h5:fields/temperature\[7\]: unreadable"):
        ds.read("test")


def test_rectangular_box_keeps_its_lengths_from_file_to_spectra(tmp_path):
    # A 10 x 40 Mpc/h box stored with one box_size per axis: the dataset's grid, the grid
    # of its whole-sample reads and the spectra on it keep both lengths.
    n, m = 16, 2
    wave = np.cos(2 * np.pi * m * np.arange(n) / n)[None, :]          # along axis 1
    rho = np.broadcast_to(np.exp(0.3 * wave), (3, n, n)).astype(np.float32)
    path = h5format.write_arrays(tmp_path / "rect.h5",
                                 {"density": rho, "temperature": temperature_of(rho)},
                                 ndim=2, box_size=(10.0, 40.0), source="test",
                                 sim_index=[0, 1, 2], units={"density": "1", "temperature": "K"})
    assert h5format.read_info(path).box_size == (10.0, 40.0)
    with data.FieldDataset(config(path, crop_size=8)) as ds:
        test = ds.read("test")
    assert ds.grid == test["grid"] == Grid.box((n, n), (10.0, 40.0))
    log_rho = np.log10(test["x_phys"][..., 0])
    spec = metrics.spectral_comparison(log_rho, log_rho, test["grid"])
    peak = int(np.nanargmax(spec["p_true"]))
    k_edges = spectra.default_edges(test["grid"])
    assert k_edges[peak] < 2 * np.pi * m / 40.0 < k_edges[peak + 1]
    assert spec["k_nyquist"] == pytest.approx(np.pi * n / 40.0)
