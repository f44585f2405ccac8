import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import neuralinv.files.writing as writing
from neuralinv import InputError
from neuralinv.files import (
    MatrixWriter,
    iter_matrices,
    open_matrices,
    read_matrices,
    write_matrices,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DMI = SHARED / "data" / "deepmatrixinversion"
needs_dmi = pytest.mark.skipif(not DMI.is_dir(), reason="../shared/data/deepmatrixinversion absent")

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def batches(allow_nonfinite=True):
    """(k, n, n) float64 arrays with any values, including extremes, signed zeros, NaN and inf."""
    elements = st.floats(allow_nan=allow_nonfinite, allow_infinity=allow_nonfinite, width=64)
    shapes = st.tuples(st.integers(1, 6), st.integers(1, 4)).map(lambda kn: (kn[0], kn[1], kn[1]))
    return shapes.flatmap(lambda s: arrays(np.float64, s, elements=elements))


def same(a, b):
    # bitwise: what was written is read back (file round trips, copies)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("ext", [".mx", ".npy", ".npz"])
@FAST
@given(X=batches(), chunk=st.integers(1, 7))
def test_round_trip_is_exact(tmp_path, ext, X, chunk):
    path = tmp_path / f"m{ext}"
    write_matrices(path, X)
    assert same(read_matrices(path), X)
    assert same(np.concatenate(list(iter_matrices(path, chunk))), X)
    # -0.0 keeps its sign through the text format too (NaN's sign and payload are not values).
    real = ~np.isnan(X)
    assert np.array_equal(np.signbit(read_matrices(path))[real], np.signbit(X)[real])  # bitwise: round trip


@FAST
@given(X=batches().map(lambda a: a[0]))
def test_csv_round_trip_is_exact(tmp_path, X):
    path = tmp_path / "one.csv"
    write_matrices(path, X)
    assert same(read_matrices(path), X)
    assert same(np.concatenate(list(iter_matrices(path))), X[None])


@pytest.mark.parametrize("ext", [".npy", ".npz"])
def test_binary_formats_keep_batch_shape_and_float32(tmp_path, ext):
    X = np.random.default_rng(0).standard_normal((2, 5, 3, 3)).astype(np.float32)
    write_matrices(tmp_path / f"x{ext}", X)
    Y = read_matrices(tmp_path / f"x{ext}")
    assert same(np.asarray(Y), X)
    assert open_matrices(tmp_path / f"x{ext}").count == 10
    chunks = list(iter_matrices(tmp_path / f"x{ext}", 4))
    assert [c.shape[0] for c in chunks] == [4, 4, 2]
    assert same(np.concatenate(chunks), X.reshape(10, 3, 3))


def test_npy_read_is_memory_mapped_but_chunks_are_not(tmp_path):
    X = np.arange(4 * 9, dtype=np.float64).reshape(4, 3, 3)
    np.save(tmp_path / "x.npy", X)
    assert isinstance(read_matrices(tmp_path / "x.npy"), np.memmap)
    for c in iter_matrices(tmp_path / "x.npy", 3):
        assert not isinstance(c, np.memmap)


def test_big_endian_and_fortran_npy_are_read(tmp_path):
    X = np.random.default_rng(1).standard_normal((5, 2, 2))
    np.save(tmp_path / "be.npy", X.astype(">f8"))
    np.save(tmp_path / "f.npy", np.asfortranarray(X))
    for name in ("be.npy", "f.npy"):
        # bitwise: a file round trip (byte order and layout are not values)
        assert np.array_equal(np.concatenate(list(iter_matrices(tmp_path / name, 2))), X)


def test_npz_key_choice(tmp_path):
    X = np.eye(2)[None].repeat(3, 0)
    np.savez(tmp_path / "named.npz", other=np.zeros(4), matrices=X)
    np.savez_compressed(tmp_path / "only.npz", anything=X)
    np.savez(tmp_path / "ambiguous.npz", a=X, b=X)
    assert same(read_matrices(tmp_path / "named.npz"), X)
    assert same(np.concatenate(list(iter_matrices(tmp_path / "only.npz", 2))), X)
    with pytest.raises(InputError, match=r"ambiguous\.npz.*2 arrays \(a, b\).*'matrices'"):
        open_matrices(tmp_path / "ambiguous.npz")


def test_streaming_writer_appends_chunks_with_declared_shape(tmp_path):
    X = np.random.default_rng(2).standard_normal((2, 3, 4, 4))
    for ext in (".npy", ".npz", ".mx"):
        shape = X.shape if ext != ".mx" else None
        with MatrixWriter(tmp_path / f"s{ext}", shape=shape) as w:
            for i in range(6):
                w.write(X.reshape(6, 4, 4)[i : i + 1])
        expect = X if ext != ".mx" else X.reshape(6, 4, 4)
        assert same(np.asarray(read_matrices(tmp_path / f"s{ext}")), expect)


MALFORMED_MX = [
    ("ragged", "1,2\n3\nEND\n", 2, "ragged rows"),
    ("non-numeric", "1,2\n3,abc\nEND\n", 2, "column 2: 'abc' is not a number"),
    ("empty cell", "1,2\n3,\nEND\n", 2, "column 2: '' is not a number"),
    ("missing final END", "1,2\n3,4\nEND\n5,6\n7,8\n", 5, "missing final END"),
    ("mixed sizes", "1,2\n3,4\nEND\n1,2,3\n4,5,6\n7,8,9\nEND\n", 4, "mixed sizes"),
    ("empty file", "", 1, "empty file"),
    ("only blank lines", "\n\n\n", 3, "empty file"),
    ("not square", "1,2,3\n4,5,6\nEND\n", 3, "expected a square matrix"),
    ("END missing between matrices", "1,2\n3,4\n5,6\nEND\n", 3, "missing END"),
    ("stray END", "1,2\n3,4\nEND\nEND\n", 4, "END without a matrix"),
    ("binary", "1,2\n\xff\xfe,1\nEND\n", 2, "not UTF-8"),
]


@pytest.mark.parametrize("case, text, line, phrase", MALFORMED_MX, ids=[c[0] for c in MALFORMED_MX])
def test_malformed_mx_names_file_and_line(tmp_path, case, text, line, phrase):
    path = tmp_path / "bad.mx"
    path.write_bytes(text.encode("latin1"))
    with pytest.raises(InputError) as info:
        read_matrices(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert phrase in msg
    # Streaming reports the same error.
    with pytest.raises(InputError, match=f"bad.mx:{line}: "):
        list(iter_matrices(path, 1))


MALFORMED_CSV = [
    ("ragged", "1,2\n3,4,5\n", 2, "ragged rows"),
    ("non-numeric", "1,2\nx,4\n", 2, "column 1: 'x' is not a number"),
    ("not square", "1,2,3\n4,5,6\n", 2, "one square matrix"),
    ("empty file", "", 1, "empty file"),
]


@pytest.mark.parametrize("case, text, line, phrase", MALFORMED_CSV, ids=[c[0] for c in MALFORMED_CSV])
def test_malformed_csv_names_file_and_line(tmp_path, case, text, line, phrase):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_matrices(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and phrase in str(info.value)


def test_bad_binary_files_name_the_file(tmp_path):
    np.save(tmp_path / "rect.npy", np.zeros((2, 3, 4)))
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    cases = {"rect.npy": "not a batch of square", "text.npy": "real numbers",
             "junk.npy": "not a valid .npy", "junk.npz": "not a valid .npz"}
    for name, phrase in cases.items():
        with pytest.raises(InputError, match=phrase) as info:
            read_matrices(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    with pytest.raises(InputError, match="no such file"):
        read_matrices(tmp_path / "missing.mx")
    with pytest.raises(InputError, match=r"unsupported format '\.txt'"):
        read_matrices(tmp_path / "m.txt")


def test_truncated_npy_is_an_input_error(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((100, 3, 3)))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError, match="t.npy"):
        list(iter_matrices(tmp_path / "t.npy", 10))


def test_writer_refuses_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(InputError, match="a .csv holds one matrix"):
        write_matrices(tmp_path / "two.csv", np.zeros((2, 3, 3)))
    with pytest.raises(InputError, match="square"):
        write_matrices(tmp_path / "r.npy", np.zeros((2, 3, 4)))
    with pytest.raises(InputError, match="no matrices"):
        with MatrixWriter(tmp_path / "empty.mx"):
            pass
    assert sorted(os.listdir(tmp_path)) == []


def _fail_on_second_call(real):
    calls = {"n": 0}

    def text(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption mid-write")
        return real(*args, **kwargs)

    return text


@pytest.mark.parametrize("ext", [".mx", ".npy", ".npz"])
def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch, ext):
    target = tmp_path / f"out{ext}"
    X = np.random.default_rng(3).standard_normal((5, 3, 3))
    if ext == ".mx":
        monkeypatch.setattr(writing, "format_rows", _fail_on_second_call(writing.format_rows))
        with pytest.raises(KeyboardInterrupt):
            write_matrices(target, X, chunk_size=2)
    else:
        with pytest.raises(RuntimeError, match="boom"):
            with MatrixWriter(target) as w:
                w.write(X[:2])
                raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []  # no target, no temporary file


def test_interrupted_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.mx"
    old = np.eye(3)[None]
    write_matrices(target, old)
    before = target.read_bytes()
    monkeypatch.setattr(writing, "format_rows", _fail_on_second_call(writing.format_rows))
    with pytest.raises(KeyboardInterrupt):
        write_matrices(target, np.ones((4, 3, 3)), chunk_size=1)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.mx"]


def test_written_files_get_normal_permissions(tmp_path):
    write_matrices(tmp_path / "p.npy", np.eye(2))
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "p.npy").stat().st_mode & 0o777 == 0o666 & ~umask


def test_reads_four_decimal_text(tmp_path):
    (tmp_path / "dmi.mx").write_text("0.4698,0.6889,0.5658\n-0.4312,0.3060,-0.6065\n-0.0463,-0.5554,-0.4109\nEND\n")
    A = read_matrices(tmp_path / "dmi.mx")
    assert A.shape == (1, 3, 3) and A[0, 1, 1] == 0.306 and A[0, 2, 0] == -0.0463


@needs_dmi
@pytest.mark.parametrize("k", [1, 2, 3])
def test_reads_deepmatrixinversion_validation_files(k):
    A = read_matrices(DMI / f"data{k}_val_matrix_3x3.mx")
    T = read_matrices(DMI / f"data{k}_val_target_inverse_3x3.mx")
    S = read_matrices(DMI / f"data{k}_sing_matrix_3x3.mx")
    assert A.shape == T.shape == S.shape == (10000, 3, 3)
    bound = 1 if k != 2 else 2
    assert np.abs(A).max() <= bound
    # Targets are inverses rounded to 4 decimals: for well-conditioned matrices A T ~ I.
    sigma = np.linalg.svd(A, compute_uv=False)[:, -1]
    well = sigma > 0.3
    err = np.abs(A[well] @ T[well] - np.eye(3)).max()
    assert err < 1e-2
    # The singular set is singular to the 4 decimals stored (rows repeat).
    assert np.linalg.svd(S, compute_uv=False)[:, -1].max() < 1e-12
