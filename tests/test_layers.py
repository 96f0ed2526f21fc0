"""Layers against direct numpy evaluations of their definitions."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fieldnet import nn
from tests.float32 import sum_tolerance


def naive_conv(x, kernel, stride, dilation, padding):
    """Cross-correlation by explicit sums over kernel offsets (numpy, channels-last)."""
    ndim = x.ndim - 2
    k = kernel.shape[0]
    total = dilation * (k - 1)
    before = 0 if padding == "valid" else total // 2
    after = 0 if padding == "valid" else total - total // 2
    widths = [(0, 0)] + [(before, after)] * ndim + [(0, 0)]
    xp = np.pad(x, widths, mode="wrap" if padding == "periodic" else "constant")
    out_sizes = [(s + before + after - total - 1) // stride + 1 for s in x.shape[1:-1]]
    y = np.zeros((x.shape[0], *out_sizes, kernel.shape[-1]))
    for out in itertools.product(*[range(n) for n in out_sizes]):
        for off in itertools.product(range(k), repeat=ndim):
            src = tuple(stride * o + dilation * f for o, f in zip(out, off, strict=True))
            y[(slice(None), *out)] += xp[(slice(None), *src)] @ kernel[off]
    return y


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("padding", ["periodic", "zero", "valid"])
@pytest.mark.parametrize("kernel_size,stride,dilation",
                         [(3, 1, 1), (3, 2, 1), (3, 1, 2), (2, 2, 1)])
def test_conv_matches_definition(ndim, padding, kernel_size, stride, dilation):
    size = 6 if ndim < 3 else 4
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, *([size] * ndim), 3)).astype(np.float32)
    conv = nn.Conv(3, 4, kernel_size, ndim=ndim, stride=stride, dilation=dilation,
                   padding=padding, rngs=nnx.Rngs(0))
    conv.bias[...] = jnp.arange(4.0)
    expected = naive_conv(x, np.asarray(conv.kernel), stride, dilation, padding) + np.arange(4.0)
    # both sides sum kernel_size**ndim * 3 products and a bias per output, in float32
    bound = sum_tolerance(kernel_size**ndim * 3 + 1, np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(conv(jnp.asarray(x)), expected, rtol=0, atol=bound)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_conv_transpose_writes_blocks(ndim):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, *([3] * ndim), 2)).astype(np.float32)
    up = nn.ConvTranspose(2, 5, ndim=ndim, rngs=nnx.Rngs(0))
    y = np.asarray(up(jnp.asarray(x)))
    assert y.shape == (2, *([6] * ndim), 5)
    k = np.asarray(up.kernel)
    for pos in itertools.product(range(6), repeat=ndim):
        coarse = tuple(p // 2 for p in pos)
        block = tuple(p % 2 for p in pos)
        np.testing.assert_allclose(y[(slice(None), *pos)], x[(slice(None), *coarse)] @ k[block],
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("kind", ["max", "mean"])
def test_pool(ndim, kind):
    x = np.random.default_rng(2).normal(size=(2, *([4] * ndim), 3)).astype(np.float32)
    y = np.asarray(nn.Pool(kind)(jnp.asarray(x)))
    assert y.shape == (2, *([2] * ndim), 3)
    first = x[(slice(None), *([slice(0, 2)] * ndim))].reshape(2, -1, 3)
    ref = first.max(1) if kind == "max" else first.mean(1)
    np.testing.assert_allclose(y[(slice(None), *([0] * ndim))], ref, rtol=0,  # 2**ndim terms
                               atol=sum_tolerance(2**ndim, np.abs(first).max()))


def test_channel_mixer_is_pointwise_matmul():
    x = np.random.default_rng(3).normal(size=(2, 5, 5, 3)).astype(np.float32)
    mix = nn.ChannelMixer(3, 7, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(mix(jnp.asarray(x)), x @ np.asarray(mix.weight[...]), rtol=1e-5,
                               atol=1e-6)


def test_norms_do_not_mix_samples():
    x = np.random.default_rng(4).normal(size=(3, 8, 8, 8)).astype(np.float32)
    for norm in (nn.LayerNorm(8), nn.GroupNorm(8, groups=4)):
        y_all = np.asarray(norm(jnp.asarray(x)))
        y_one = np.asarray(norm(jnp.asarray(x[1:2])))
        np.testing.assert_allclose(y_all[1:2], y_one, rtol=1e-5, atol=1e-6)
    y = np.asarray(nn.LayerNorm(8)(jnp.asarray(x)))
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(-1), 1, atol=1e-3)


def test_dropout_only_in_training():
    block = nn.ResBlock(4, 4, ndim=2, dropout=0.5, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(5).normal(size=(1, 8, 8, 4)), jnp.float32)
    block.eval()
    np.testing.assert_array_equal(block(x), block(x))
    block.train()
    assert not np.allclose(block(x), block(x))


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv_parameter_count(ndim, k):
    conv = nn.Conv(3, 5, k, ndim=ndim, rngs=nnx.Rngs(0))
    assert nn.param_count(conv) == 3 * 5 * k**ndim + 5


@pytest.mark.parametrize("ndim,k,orbits", [(1, 3, 2), (2, 3, 3), (3, 3, 4), (2, 5, 6), (3, 2, 1)])
def test_symmetric_conv_parameter_count(ndim, k, orbits):
    # Even kernels are symmetric only over windows that need no padding.
    padding = "periodic" if k % 2 else "valid"
    conv = nn.Conv(3, 5, k, ndim=ndim, padding=padding, symmetric=True, rngs=nnx.Rngs(0))
    assert nn.param_count(conv) == orbits * 3 * 5 + 5


@pytest.mark.parametrize("kernel_size,dilation", [(3, 1), (5, 1), (2, 2)])
def test_symmetric_conv_with_balanced_padding_is_equivariant_2d(kernel_size, dilation):
    """Odd kernels, and even kernels whose dilation makes the padding balanced, keep their
    centre on a pixel: the layer commutes with every element of D4."""
    from fieldnet import symmetry

    conv = nn.Conv(2, 3, kernel_size, ndim=2, dilation=dilation, symmetric=True,
                   rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(6).normal(size=(1, 8, 8, 2)), jnp.float32)
    y = conv(x)
    # a rotated image sums each output's kernel_size**2 * 2 products in another order
    bound = sum_tolerance(kernel_size**2 * 2, np.abs(np.asarray(y)).max())
    for g in symmetry.group_elements(2):
        np.testing.assert_allclose(conv(symmetry.apply(x, g)), symmetry.apply(y, g),
                                   rtol=0, atol=bound)


@pytest.mark.parametrize("padding", ["periodic", "zero"])
@pytest.mark.parametrize("kernel_size,dilation", [(2, 1), (4, 1), (4, 3)])
def test_symmetric_conv_refuses_lopsided_padding(padding, kernel_size, dilation):
    with pytest.raises(ValueError, match=f"odd kernel_size.*got kernel_size={kernel_size}"):
        nn.Conv(1, 1, kernel_size, ndim=2, dilation=dilation, padding=padding, symmetric=True,
                rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name", ["in_channels", "out_channels", "kernel_size", "stride",
                                  "dilation"])
@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_conv_refuses_non_positive_sizes(name, value):
    args = {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 1, "dilation": 1,
            name: value}
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {value}"):
        nn.Conv(**args, ndim=2, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("layer", [nn.ConvTranspose, nn.ChannelMixer, nn.ResBlock])
def test_channel_counts_must_be_positive(layer):
    kwargs = {"ndim": 2} if layer is not nn.ChannelMixer else {}
    with pytest.raises(ValueError, match="in_channels must be a positive integer, got 0"):
        layer(0, 3, **kwargs, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="out_channels must be a positive integer, got 0"):
        layer(3, 0, **kwargs, rngs=nnx.Rngs(0))


def test_bad_choices_raise():
    with pytest.raises(ValueError, match="padding"):
        nn.Conv(1, 1, 3, ndim=2, padding="reflect", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="ndim"):
        nn.Conv(1, 1, 3, ndim=4, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("cin,cout", [(1, 4), (3, 4), (6, 2)])
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("bfloat16", 2e-2)])
def test_cpu_convolution_vjp_equals_the_plain_gradient(ndim, cin, cout, dtype, tol):
    """The CPU fast path (2D: tap or transposed-form forward, transposed-form kernel
    gradient; 3D: depth slices of the 2D path) against the plain float32 XLA convolution and
    its jax.grad, for the input and the kernel, to float32 rounding (bfloat16: to its own
    rounding, a few 1e-3 of the largest value, about as far as XLA's bfloat16 convolution)."""
    import jax

    from fieldnet.nn import ops

    rng = np.random.default_rng(0)
    shape = (7, 6, 5)[-ndim:]
    x = jnp.asarray(rng.normal(size=(2, *shape, cin)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(3,) * ndim + (cin, cout)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(2, *[n - 2 for n in shape], cout)), jnp.float32)
    low = [a.astype(dtype) for a in (x, k, g)]
    assert ops.use_cpu_vjp(low[0], low[1], 1, 1) == (jax.default_backend() == "cpu")
    fast = ops.conv2d_cpu if ndim == 2 else ops.conv3d_cpu

    def close(want, got):  # want: the float32 reference
        assert want.shape == got.shape and got.dtype == dtype
        got = got.astype(jnp.float32)
        assert float(jnp.abs(got - want).max()) <= tol * float(jnp.abs(want).max())

    def pulled(conv, x, k, g):
        y, pull = jax.vjp(conv, x, k)
        return (y, *pull(g))

    for want, got in zip(pulled(ops.xla_conv, x, k, g), pulled(fast, *low), strict=True):
        close(want, got)

    # and through conv_nd as the layers call it, under jax.grad
    def loss(conv):
        return lambda a, w: 0.5 * jnp.sum(conv(a, w).astype(jnp.float32) ** 2)

    want = jax.grad(loss(ops.xla_conv), argnums=(0, 1))(x, k)
    got = jax.grad(loss(ops.conv_nd), argnums=(0, 1))(*low[:2])
    for a, b in zip(want, got, strict=True):
        close(a, b)


def test_cpu_convolution_forms_equal_the_plain_convolution():
    """Each form the CPU path chooses from computes the plain VALID convolution."""
    from fieldnet.nn import ops

    rng = np.random.default_rng(2)
    for ndim, cin in [(2, 1), (2, 5), (3, 1), (3, 3)]:
        x = jnp.asarray(rng.normal(size=(2,) + (6, 5, 7)[-ndim:] + (cin,)), jnp.float32)
        k = jnp.asarray(rng.normal(size=(3, 2, 3)[-ndim:] + (cin, 4)), jnp.float32)
        want = ops.xla_conv(x, k)
        for form in (ops.tap_conv, ops.transposed_conv):
            got = form(x, k)
            assert got.shape == want.shape
            assert float(jnp.abs(got - want).max()) <= 1e-5 * float(jnp.abs(want).max())


def test_cpu_3d_convolution_in_depth_slabs_equals_the_whole(monkeypatch):
    """With a tiny chunk limit the 3D CPU path runs in depth slabs; values and gradients
    equal the single convolution."""
    import jax

    from fieldnet.nn import ops

    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(2, 10, 6, 5, 3)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(3, 3, 3, 3, 4)), jnp.float32)

    def loss(a, w):
        return jnp.sum(jnp.sin(ops.conv3d_cpu(a, w)))

    whole = ops.conv3d_cpu(x, k), *jax.grad(loss, argnums=(0, 1))(x, k)
    limit = 2 * 2 * 4 * 3 * 27 * 3  # two output planes of 4 x 3 per slab
    assert len(ops.depth_chunks(x.shape, k.shape, 1, 1, limit)) == 4
    monkeypatch.setattr(ops, "CPU_CONV_CHUNK_ELEMENTS", limit)
    chunked = ops.conv3d_cpu(x, k), *jax.grad(loss, argnums=(0, 1))(x, k)
    for a, b in zip(whole, chunked, strict=True):
        assert a.shape == b.shape
        assert float(jnp.abs(a - b).max()) <= 1e-6 * float(jnp.abs(a).max())


@pytest.mark.parametrize("kernel_size,stride,dilation", [(3, 1, 1), (2, 2, 1), (3, 1, 2)])
def test_depth_chunked_cpu_convolution_equals_the_whole(monkeypatch, kernel_size, stride,
                                                        dilation):
    """Large 3D convolutions on the CPU run in depth slabs; with a tiny chunk limit every
    slab is a few planes, and values and gradients equal the single convolution."""
    import jax

    from fieldnet.nn import ops

    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 12, 6, 5, 3)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(kernel_size,) * 3 + (3, 4)), jnp.float32)
    plane = np.prod([(n - dilation * (kernel_size - 1) - 1) // stride + 1 for n in (6, 5)])
    limit = 2 * 2 * int(plane) * kernel_size**3 * 3  # two output planes per slab
    chunks = ops.depth_chunks(x.shape, k.shape, stride, dilation, limit)
    want_depth = (12 - dilation * (kernel_size - 1) - 1) // stride + 1
    assert len(chunks) > 1 and chunks[0] == (0, 2) and chunks[-1][1] == want_depth
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))

    def loss(a, w):
        return jnp.sum(jnp.sin(ops.xla_conv(a, w, stride, dilation)))

    whole = ops.xla_conv(x, k, stride, dilation), *jax.grad(loss, argnums=(0, 1))(x, k)
    monkeypatch.setattr(ops, "CPU_CONV_CHUNK_ELEMENTS", limit)
    chunked = ops.xla_conv(x, k, stride, dilation), *jax.grad(loss, argnums=(0, 1))(x, k)
    for a, b in zip(whole, chunked, strict=True):
        assert a.shape == b.shape
        assert float(jnp.abs(a - b).max()) <= 1e-6 * float(jnp.abs(a).max())
