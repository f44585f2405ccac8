from pathlib import Path

import numpy as np
import pytest

from helpers import neuralinv as cli
from neuralinv.files import read_matrices, write_matrices

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DMI = SHARED / "data" / "deepmatrixinversion"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    r = cli("generate", 3, 300, "--min-abs-det", "0.1", "--seed", 7, "-o", d / "train")
    assert r.returncode == 0, r.stderr
    return d, r.stdout


def test_generate_writes_deepmatrixinversion_names_and_respects_the_filter(dataset):
    d, out = dataset
    A = read_matrices(d / "train_matrices_3x3.mx")
    Y = read_matrices(d / "train_matrices_inverted_3x3.mx")
    assert A.shape == Y.shape == (300, 3, 3)
    assert (np.abs(np.linalg.det(A)) > 0.1).all() and np.abs(A).max() <= 1
    np.testing.assert_allclose(Y, np.linalg.inv(A), rtol=1e-10, atol=1e-12)
    assert "wrote 300 3x3 matrices" in out


def test_generate_then_verify_passes_and_a_corrupted_inverse_fails_with_its_index(dataset):
    d, _ = dataset
    mats, invs = d / "train_matrices_3x3.mx", d / "train_matrices_inverted_3x3.mx"
    ok = cli("verify", mats, invs)
    assert ok.returncode == 0, ok.stderr
    assert "300 matrices (invertible): worst deviation" in ok.stdout and "OK" in ok.stdout

    Y = read_matrices(invs)
    Y[123, 1, 2] += 1e-9  # far below what 4-decimal files resolve, far above n*eps
    write_matrices(d / "bad_inverted.mx", Y)
    bad = cli("verify", mats, d / "bad_inverted.mx")
    assert bad.returncode == 1
    assert "first bad matrix: index 123" in bad.stderr
    assert "1 of 300 matrices fail" in bad.stderr


def test_generate_singular_pseudo_inverses_verify_only_as_singular(tmp_path):
    r = cli("generate", 4, 200, "--singular", "--max-rank", 2, "--format", "npy", "-o", tmp_path / "s")
    assert r.returncode == 0, r.stderr
    mats, invs = tmp_path / "s_matrices_4x4.npy", tmp_path / "s_matrices_inverted_4x4.npy"
    A = read_matrices(mats)
    ranks = np.linalg.matrix_rank(A)
    assert set(ranks.tolist()) == {1, 2}
    np.testing.assert_allclose(read_matrices(invs), np.linalg.pinv(A), atol=1e-9)
    ok = cli("verify", mats, invs, "--kind", "singular")
    assert ok.returncode == 0, ok.stderr
    not_inverse = cli("verify", mats, invs)
    assert not_inverse.returncode == 1 and "first bad matrix: index 0" in not_inverse.stderr


def test_invert_streams_any_format_and_scores_against_target(dataset, tmp_path):
    d, _ = dataset
    out = tmp_path / "inv.npz"
    r = cli("invert", d / "train_matrices_3x3.mx", "-o", out, "--chunk-size", 64,
            "--target", d / "train_matrices_inverted_3x3.mx")
    assert r.returncode == 0, r.stderr
    assert "300 matrices" in r.stdout and "status: OK 300" in r.stdout
    assert "R2 1.000000 over 300 matrices" in r.stdout
    X = read_matrices(out)
    np.testing.assert_allclose(X, read_matrices(d / "train_matrices_inverted_3x3.mx"), rtol=1e-12, atol=1e-13)


def test_cli_input_errors_exit_2_naming_file_and_line(tmp_path):
    (tmp_path / "bad.mx").write_text("1,2\n3,x\nEND\n")
    r = cli("invert", tmp_path / "bad.mx", "-o", tmp_path / "out.npy")
    assert r.returncode == 2 and "bad.mx:2: column 2: 'x' is not a number" in r.stderr
    assert not (tmp_path / "out.npy").exists()
    write_matrices(tmp_path / "a.npy", np.eye(3)[None].repeat(4, 0))
    write_matrices(tmp_path / "b.npy", np.eye(3)[None].repeat(5, 0))
    r = cli("verify", tmp_path / "a.npy", tmp_path / "b.npy")
    assert r.returncode == 2 and "holds 5 matrices but" in r.stderr
    r = cli("generate", 3, 10, "--max-rank", 1, "-o", tmp_path / "x")
    assert r.returncode == 2 and "--max-rank only applies with --singular" in r.stderr


@pytest.mark.skipif(not DMI.is_dir(), reason="../shared/data/deepmatrixinversion absent")
def test_deepmatrixinversion_files_through_invert_and_verify(tmp_path):
    r = cli("invert", DMI / "data1_val_matrix_3x3.mx", "-o", tmp_path / "x.mx",
            "--target", DMI / "data1_val_target_inverse_3x3.mx")
    assert r.returncode == 0, r.stderr
    assert "10000 matrices" in r.stdout and "over 10000 matrices" in r.stdout
    # Our inverses of the stored (rounded) matrices verify; the stored 4-decimal targets do not.
    assert cli("verify", DMI / "data1_val_matrix_3x3.mx", tmp_path / "x.mx").returncode == 0
    stored = cli("verify", DMI / "data1_val_matrix_3x3.mx", DMI / "data1_val_target_inverse_3x3.mx")
    assert stored.returncode == 1 and "first bad matrix: index 0" in stored.stderr
