import numpy as np
import pytest

from fieldnet import symmetry


@pytest.mark.parametrize("ndim,order", [(1, 2), (2, 8), (3, 48)])
def test_group_order_and_closure(ndim, order):
    elements = symmetry.group_elements(ndim)
    assert len(elements) == order
    assert elements[0].is_identity
    x = np.random.default_rng(0).normal(size=(1, *([4] * ndim), 1))
    images = {symmetry.apply(x, g).tobytes() for g in elements}
    assert len(images) == order
    for g in elements:
        for h in elements:
            gh = symmetry.apply(symmetry.apply(x, h), g).tobytes()
            assert gh in images


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_inverse(ndim):
    x = np.random.default_rng(1).normal(size=(2, *([5] * ndim), 3))
    for g in symmetry.group_elements(ndim):
        np.testing.assert_array_equal(symmetry.apply(symmetry.apply(x, g), symmetry.inverse(g)), x)


def test_vector_field_gradient_transforms_as_vector():
    """The gradient of a rotated scalar field is the rotated gradient field."""
    rng = np.random.default_rng(2)
    phi = rng.normal(size=(1, 6, 6, 6, 1))

    def grad(f):
        # Centred periodic differences; reflection x -> n-1-x keeps them centred.
        return np.concatenate([(np.roll(f, -1, a) - np.roll(f, 1, a)) / 2 for a in (1, 2, 3)], -1)

    for g in symmetry.group_elements(3):
        np.testing.assert_allclose(grad(symmetry.apply(phi, g)),
                                   symmetry.apply_to_vector(grad(phi), g), atol=1e-12)
