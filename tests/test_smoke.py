import numpy as np
import pytest
import torch

import neuralinv as ni


def test_singular_element_named_and_others_ok():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 4, 4, dtype=torch.float64, generator=g)
    A[3] = 0
    sol = ni.invert(A, method="lu")
    assert sol.status.tolist() == [0, 0, 0, int(ni.Status.SINGULAR), 0, 0]
    assert torch.isnan(sol.inverse[3]).all()
    with pytest.raises(ni.SingularMatrixError, match=r"\[3\]") as info:
        ni.inv(A, method="lu")
    assert info.value.indices == [(3,)]


def test_numpy_in_numpy_out():
    A = np.eye(3) * 2
    sol = ni.invert(A)
    assert isinstance(sol.inverse, np.ndarray)
    np.testing.assert_allclose(sol.inverse, np.eye(3) / 2)
