"""The training loaders: grain (in this process or in worker processes) yields bit for bit the
batches of the thread loader, from any start step; a worker's error is the user's one-line
error; closing stops the workers and nothing is left behind at exit."""

import multiprocessing
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fieldnet import cli, data
from fieldnet.data import h5format
from fieldnet.errors import FieldnetError

ROOT = Path(__file__).resolve().parents[1]


def write(path, ndim, size, sims, per_sim, broken_sample=None):
    rng = np.random.default_rng(ndim)
    n = sims * per_sim
    rho = np.exp(rng.normal(size=(n, *[size] * ndim))).astype(np.float32)
    temperature = (1e4 * rho**0.6).astype(np.float32)
    if broken_sample is not None:
        temperature[broken_sample] = np.nan
    sim_index = np.arange(n) // per_sim
    params = np.stack([1.0 + sim_index, 3.0 - sim_index], axis=1).astype(np.float32)
    return h5format.write_arrays(path, {"density": rho, "temperature": temperature},
                                 ndim=ndim, box_size=25.0, source="test", sim_index=sim_index,
                                 units={"density": "1", "temperature": "K"}, params=params,
                                 param_names=["a", "b"], overwrite=True)


def config(path, **overrides):
    c = data.default_config()
    c.update(path=str(path), crop_size=8, split_fractions=(0.5, 0.25, 0.25), **overrides)
    return c


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loader")
    return {"2d": write(folder / "a2.h5", ndim=2, size=16, sims=8, per_sim=2),
            "3d": write(folder / "a3.h5", ndim=3, size=12, sims=4, per_sim=2)}


# Augmented crops in both, and the conditioning parameters with their noise in 2D.
CASES = {"2d": dict(condition_on="a,b", condition_noise=0.3), "3d": {}}


def stream(ds, loader, workers, start=3, steps=5):
    ds.config.loader, ds.config.workers = loader, workers
    with ds.batches("train", 4, seed=7, start_step=start, num_steps=steps) as it:
        return list(it)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_grain_batches_equal_thread_batches_bitwise(files, case, workers):
    with data.FieldDataset(config(files[case], **CASES[case])) as ds:
        expected = stream(ds, "thread", 0)
        got = stream(ds, "grain", workers)
        direct = [ds.batch("train", 4, 7, step) for step in range(3, 8)]
    assert len(got) == len(expected) == 5   # 5 steps over 2 workers: one gets fewer
    assert set(got[0]) == ({"x", "y", "cond"} if case == "2d" else {"x", "y"})
    for a, b, c in zip(expected, got, direct, strict=True):
        for key in a:
            assert type(b[key]) is np.ndarray and b[key].dtype == a[key].dtype
            assert b[key].flags.writeable and b[key].flags.c_contiguous
            np.testing.assert_array_equal(b[key], a[key])
            np.testing.assert_array_equal(c[key], a[key])
    assert not np.array_equal(got[0]["x"], got[1]["x"])


def test_a_pickled_dataset_opens_the_file_itself(files):
    """What a worker process receives: the recipe, and its own HDF5 handle."""
    ds = data.FieldDataset(config(files["2d"], condition_on="a"))
    expected = ds.batch("train", 4, 1, 2)
    copy = pickle.loads(pickle.dumps(ds))
    ds.close()   # the original's handle is gone; the copy reads through its own
    with copy:
        assert copy.normalizer == ds.normalizer and copy.splits == ds.splits
        got = copy.batch("train", 4, 1, 2)
    for key in ("x", "y", "cond"):
        np.testing.assert_array_equal(got[key], expected[key])


@pytest.fixture(scope="module")
def broken(files, tmp_path_factory):
    """A file whose sample 4 (a training sample) is all NaN, with statistics from a clean
    file (fitting on it would fail first); and the first step whose batch reads it."""
    path = write(tmp_path_factory.mktemp("broken") / "nan.h5", ndim=2, size=16, sims=8,
                 per_sim=2, broken_sample=4)
    with data.FieldDataset(config(files["2d"])) as clean:
        normalizer = clean.normalizer
    ds = data.FieldDataset(config(path), normalizer=normalizer)
    assert 4 in [r.sample for r in ds.splits["train"]]
    first_bad = 0
    while True:
        try:
            ds.batch("train", 4, 7, first_bad)
        except FieldnetError:
            break
        first_bad += 1
    yield ds, first_bad
    ds.close()


def drain(ds, loader, workers):
    ds.config.loader, ds.config.workers = loader, workers
    good = []
    with ds.batches("train", 4, seed=7) as it, pytest.raises(FieldnetError) as err:
        for batch in it:
            good.append(batch)
    return good, err.value


def test_a_worker_error_is_the_one_line_error_of_the_thread_loader(broken):
    ds, first_bad = broken
    assert 1 <= first_bad < 20
    good, expected = drain(ds, "thread", 0)
    assert len(good) == first_bad and "nan.h5:fields/temperature[4]: " in str(expected)
    for workers in (0, 2):
        got_good, got = drain(ds, "grain", workers)
        assert type(got) is type(expected) and str(got) == str(expected)
        assert cli.one_line(got) == str(got)
        assert len(got_good) == first_bad   # every batch before it, then the error
        np.testing.assert_array_equal(got_good[-1]["x"], good[-1]["x"])
    assert multiprocessing.active_children() == []


def test_closing_stops_the_workers(files):
    with data.FieldDataset(config(files["2d"], loader="grain", workers=2)) as ds:
        it = ds.batches("train", 4, seed=0)
        next(it)
        assert len(multiprocessing.active_children()) == 2
        it.close()
        assert multiprocessing.active_children() == []
        with pytest.raises(StopIteration):
            next(it)


@pytest.mark.slow
def test_exit_with_an_open_stream_and_a_worker_error_is_one_line_and_does_not_hang(files,
                                                                                  broken):
    """A stream left open at exit, and a worker's error reported by the command-line
    policy: exit code 2 and exactly one line, no warning about leftover shared memory."""
    script = textwrap.dedent(f"""
        from fieldnet import cli, data
        from fieldnet.data.transforms import Normalizer

        def main():
            c = data.default_config()
            c.update(path={str(files["2d"])!r}, crop_size=8, split_fractions=(0.5, 0.25, 0.25),
                     loader="grain", workers=2)
            clean = data.FieldDataset(c)
            left_open = clean.batches("train", 4, seed=0)
            next(left_open)
            bad = c.copy_and_resolve_references()
            bad.path = {str(broken[0].source.path)!r}
            with cli.user_errors():
                ds = data.FieldDataset(bad, normalizer=clean.normalizer)
                with ds.batches("train", 4, seed=7) as it:
                    for _ in it:
                        pass

        if __name__ == "__main__":   # worker processes are spawned: they import this file
            main()
    """)
    path = Path(broken[0].source.path).with_name("exit_script.py")
    path.write_text(script)
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=180)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("error: ") and "nan.h5:fields/temperature[4]: " in lines[0]


@pytest.mark.parametrize("key, value, message", [
    ("loader", "threads", "data.loader must be one of ('grain', 'thread'), got 'threads'"),
    ("workers", -1, "data.workers must be an integer ≥ 0, got -1"),
])
def test_bad_loader_settings_are_refused(files, key, value, message):
    c = config(files["2d"], **{key: value})
    with pytest.raises(FieldnetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.check_config(c)
    c = config(files["2d"], loader="thread", workers=2)
    with pytest.raises(FieldnetError, match="data.workers=2 needs data.loader='grain'"):
        data.check_config(c)
