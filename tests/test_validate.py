"""Every bad input is refused with an error naming the parameter, the rule and the value received.

Messages are pinned with ``pytest.raises(match=...)``; each case goes through the public API
(``convmatrix.*``), so the test holds whatever module raises it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp
from memory import traced_peak

import convmatrix as cm

W = np.ones((3, 3))
W4 = np.ones((2, 1, 3, 3))
NAN = float("nan")


def _cases():
    """(id, callable, exception type, regex)."""
    conv, convt, full, corr = cm.conv_matrix, cm.conv_transpose_matrix, cm.convolution_matrix, cm.correlation_matrix
    return [
        # ---------------------------------------------------------------- stride / dilation
        ("stride-zero", lambda: conv(W, (5, 5), stride=0), ValueError, r"stride must be a positive integer; got 0"),
        ("stride-negative", lambda: conv(W, (5, 5), stride=-2), ValueError,
         r"stride must be a positive integer; got -2"),
        ("stride-axis-zero", lambda: conv(W, (5, 5), stride=(1, 0)), ValueError,
         r"stride\[1\] must be a positive integer; got 0"),
        ("stride-float", lambda: conv(W, (5, 5), stride=2.0), TypeError,
         r"stride must be a positive integer; got 2\.0 of type float"),
        ("stride-bool", lambda: conv(W, (5, 5), stride=True), TypeError,
         r"stride must be a positive integer; got True of type bool"),
        ("stride-nan", lambda: conv(W, (5, 5), stride=NAN), ValueError, r"stride must be a positive integer; got nan"),
        ("stride-str", lambda: conv(W, (5, 5), stride="2"), TypeError,
         r"stride must be an int or a sequence of 2 ints; got '2'"),
        ("stride-len", lambda: conv(W, (5, 5), stride=(1, 2, 3)), ValueError,
         r"stride must be an int or have one entry per spatial axis \(2\); got 3 entries"),
        ("stride-transpose", lambda: convt(W, (5, 5), stride=0), ValueError,
         r"stride must be a positive integer; got 0"),
        ("stride-nnz", lambda: cm.conv_nnz((3, 3), (5, 5), stride=-1), ValueError,
         r"stride must be a positive integer; got -1"),
        ("stride-output-shape", lambda: cm.conv_output_shape((5, 5), (3, 3), stride=0), ValueError,
         r"stride must be a positive integer; got 0"),
        ("dilation-zero", lambda: conv(W, (5, 5), dilation=0), ValueError,
         r"dilation must be a positive integer; got 0"),
        ("dilation-negative", lambda: convt(W, (5, 5), dilation=(1, -1)), ValueError,
         r"dilation\[1\] must be a positive integer; got -1"),
        ("dilation-float", lambda: conv(W, (5, 5), dilation=1.5), TypeError,
         r"dilation must be a positive integer; got 1\.5 of type float"),
        ("dilation-transpose-output-shape",
         lambda: cm.conv_transpose_output_shape((5, 5), (3, 3), dilation=0), ValueError,
         r"dilation must be a positive integer; got 0"),
        # ---------------------------------------------------------------- sizes
        ("input-float", lambda: conv(W, (5.0, 5)), TypeError,
         r"input_shape\[0\] must be a positive integer; got 5\.0 of type float"),
        ("input-bool", lambda: conv(W, (5, True)), TypeError,
         r"input_shape\[1\] must be a positive integer; got True of type bool"),
        ("input-nan", lambda: conv(W, (NAN, 5)), ValueError, r"input_shape\[0\] must be a positive integer; got nan"),
        ("input-str", lambda: conv(W, "55"), TypeError, r"input_shape must be a sequence of positive ints; got '55'"),
        ("input-str-item", lambda: conv(W, ("5", 5)), TypeError,
         r"input_shape\[0\] must be a positive integer; got '5' of type str"),
        ("input-zero", lambda: conv(W, (0, 5)), ValueError, r"input_shape\[0\] must be a positive integer; got 0"),
        ("input-empty", lambda: conv(W, ()), ValueError, r"input_shape must have at least one spatial axis; got \(\)"),
        ("input-none", lambda: conv(W, None), TypeError, r"input_shape must be a sequence of positive ints; got None"),
        ("input-scipy-float", lambda: full(W, (3.0, 3)), TypeError,
         r"input_shape\[0\] must be a positive integer; got 3\.0"),
        ("input-transpose-nan", lambda: convt(W, (3, NAN)), ValueError,
         r"input_shape\[1\] must be a positive integer; got nan"),
        ("groups-zero", lambda: conv(W4, (5, 5), groups=0), ValueError, r"groups must be a positive integer; got 0"),
        ("groups-float", lambda: conv(W4, (5, 5), groups=2.0), TypeError,
         r"groups must be a positive integer; got 2\.0 of type float"),
        ("groups-bool", lambda: convt(W4, (5, 5), groups=True), TypeError,
         r"groups must be a positive integer; got True of type bool"),
        ("max-bytes-zero", lambda: conv(W, (5, 5), max_bytes=0), ValueError,
         r"max_bytes must be a positive integer \(bytes\), None \(no limit\) or .auto. \(half the RAM\); got 0"),
        ("max-bytes-float", lambda: conv(W, (5, 5), max_bytes=1e6), TypeError,
         r"max_bytes must be a positive integer \(bytes\), None \(no limit\) or .auto. \(half the RAM\); got 1000000\.0 of type float"),
        # ---------------------------------------------------------------- padding forms
        ("padding-negative", lambda: conv(W, (5, 5), padding=-1), ValueError,
         r"padding must be a non-negative integer; got -1"),
        ("padding-float", lambda: conv(W, (5, 5), padding=1.5), TypeError,
         r"padding must be a non-negative integer; got 1\.5 of type float"),
        ("padding-nan", lambda: conv(W, (5, 5), padding=NAN), ValueError,
         r"padding must be a non-negative integer; got nan"),
        ("padding-bool", lambda: conv(W, (5, 5), padding=True), TypeError,
         r"padding must be a non-negative integer; got True of type bool"),
        ("padding-keyword", lambda: conv(W, (5, 5), padding="half"), ValueError,
         r"padding must be an int, one int or \(before, after\) pair per axis, or one of 'valid', 'same', "
         r"'same_lower', 'full'; got 'half'"),
        ("padding-len", lambda: conv(W, (5, 5), padding=(1, 2, 3)), ValueError,
         r"padding must be an int or have one entry .* per spatial axis \(2\); got 3 entries"),
        ("padding-triple", lambda: conv(W, (5, 5), padding=((1, 2, 3), 1)), ValueError,
         r"padding\[0\] must be an int or a \(before, after\) pair; got \(1, 2, 3\)"),
        ("padding-pair-negative", lambda: conv(W, (5, 5), padding=((1, -2), 1)), ValueError,
         r"padding\[0\]\[1\] must be a non-negative integer; got -2"),
        ("padding-pair-float", lambda: convt(W, (5, 5), padding=(1, (0.5, 1))), TypeError,
         r"padding\[1\]\[0\] must be an integer; got 0\.5 of type float"),
        ("padding-object", lambda: conv(W, (5, 5), padding=object()), TypeError,
         r"padding must be an int, a sequence, or a string; got <object object"),
        # ---------------------------------------------------------------- kernel vs input
        ("kernel-larger", lambda: conv(W, (2, 5)), ValueError,
         r"kernel is larger than the padded input along axis 0: dilated kernel extent d\*\(k-1\)\+1 = 3 > "
         r"padded input n\+p_before\+p_after = 2"),
        ("kernel-larger-dilated", lambda: conv(W, (5, 5), dilation=(1, 3), padding=((0, 0), (1, 0))), ValueError,
         r"kernel is larger than the padded input along axis 1: dilated kernel extent d\*\(k-1\)\+1 = 7 > "
         r"padded input n\+p_before\+p_after = 6"),
        ("kernel-rank", lambda: conv(W, (5, 5, 5)), ValueError,
         r"kernel must have 3 dims \(spatial, one channel\) or 5 dims \(C_out, C_in/groups, \*k\) for a 3-D "
         r"input_shape; got 2 dims with shape \(3, 3\)"),
        ("kernel-rank-3", lambda: conv(np.ones((1, 3, 3)), (5, 5)), ValueError,
         r"kernel must have 2 dims .* or 4 dims .* got 3 dims with shape \(1, 3, 3\)"),
        ("kernel-rank-transpose", lambda: convt(np.ones((1, 3, 3)), (5, 5)), ValueError,
         r"kernel must have 2 dims \(spatial, one channel\) or 4 dims \(C_in, C_out/groups, \*k\)"),
        ("kernel-rank-scipy", lambda: full(W, (3, 3, 3)), ValueError,
         r"kernel must have as many dims as input_shape \(3\); got kernel shape \(3, 3\)"),
        ("kernel-rank-correlation", lambda: corr(np.ones(3), (3, 3)), ValueError,
         r"kernel must have as many dims as input_shape \(2\); got kernel shape \(3,\)"),
        ("kernel-scalar", lambda: conv(3.0, (3,)), ValueError, r"kernel must have at least one axis; got a scalar"),
        ("kernel-empty", lambda: conv(np.ones((0, 3)), (3, 3)), ValueError,
         r"kernel must have at least one element along every axis; got shape \(0, 3\)"),
        ("kernel-str", lambda: conv("abc", (3,)), TypeError, r"kernel must be a numeric array; got 'abc'"),
        ("kernel-ragged", lambda: conv([[1, 2], [3]], (3, 3)), TypeError,
         r"kernel must be a numeric array; got \[\[1, 2\], \[3\]\]"),
        ("kernel-text-dtype", lambda: conv(np.array(["a", "b"]), (3,)), TypeError,
         r"kernel must have a numeric dtype \(integer, float or complex\); got dtype <U1"),
        ("kernel-object-dtype", lambda: full(np.array([1, None], dtype=object), (3,)), TypeError,
         r"kernel must have a numeric dtype .* got dtype object"),
        # ---------------------------------------------------------------- channels / groups
        ("groups-c-out", lambda: conv(np.ones((3, 2, 3, 3)), (5, 5), groups=2), ValueError,
         r"groups must divide out_channels; got groups=2 and out_channels \(kernel\.shape\[0\]\)=3"),
        ("groups-c-in-transpose", lambda: convt(np.ones((3, 2, 3, 3)), (5, 5), groups=2), ValueError,
         r"groups must divide in_channels; got groups=2 and in_channels \(kernel\.shape\[0\]\)=3"),
        ("groups-nnz", lambda: cm.conv_nnz((3, 2, 3), (5,), groups=2), ValueError, r"groups must divide out_channels"),
        # ---------------------------------------------------------------- output_padding / output_shape
        ("output-padding-range", lambda: convt(W, (5, 5), stride=2, output_padding=2), ValueError,
         r"output_padding must be smaller than either stride or dilation; got output_padding\[0\]=2 with "
         r"stride 2 and dilation 1"),
        ("output-padding-range-dilation",
         lambda: convt(W, (5, 5), stride=(1, 2), dilation=(3, 2), output_padding=(2, 2)), ValueError,
         r"output_padding must be smaller than either stride or dilation; got output_padding\[1\]=2 with "
         r"stride 2 and dilation 2"),
        ("output-padding-negative", lambda: convt(W, (5, 5), output_padding=-1), ValueError,
         r"output_padding must be a non-negative integer; got -1"),
        ("output-padding-float", lambda: convt(W, (5, 5), stride=2, output_padding=1.0), TypeError,
         r"output_padding must be a non-negative integer; got 1\.0 of type float"),
        ("output-padding-nnz", lambda: cm.conv_transpose_nnz((3,), (4,), output_padding=1), ValueError,
         r"output_padding must be smaller than either stride or dilation"),
        ("output-shape-unreachable", lambda: convt(W, (5, 5), stride=2, output_shape=(13, 11)), ValueError,
         r"output_shape\[0\]=13 is unreachable: with this geometry the output size along axis 0 can be 11 to 12"),
        ("output-shape-too-small", lambda: convt(W, (5, 5), stride=2, output_shape=(11, 10)), ValueError,
         r"output_shape\[1\]=10 is unreachable: .* can be 11 to 12"),
        ("output-shape-len", lambda: convt(W, (5, 5), stride=2, output_shape=(11,)), ValueError,
         r"output_shape must have one size per spatial axis \(2\); got \(11,\)"),
        ("output-shape-float", lambda: convt(W, (5, 5), stride=2, output_shape=(11.0, 11)), TypeError,
         r"output_shape\[0\] must be a positive integer; got 11\.0 of type float"),
        ("output-shape-and-padding", lambda: convt(W, (5, 5), stride=2, output_shape=(12, 12), output_padding=1),
         ValueError, r"give either output_padding or output_shape, not both; got output_padding=\(1, 1\)"),
        ("output-shape-same", lambda: convt(np.ones(3), (4,), stride=2, padding="same", output_shape=(9,)),
         ValueError, r"padding='same' needs ceil\(output_shape/stride\) == input size; got output_shape\[0\]=9, "
                     r"stride 2, input size 4"),
        ("transpose-padding-too-large", lambda: convt(np.ones(3), (2,), padding=5), ValueError,
         r"padding is too large along axis 0: transposed output size .* = -6 < 1"),
        # ---------------------------------------------------------------- boundary widths
        ("circular-wide", lambda: conv(W, (3, 3), padding=4, padding_mode="circular"), ValueError,
         r"circular padding must not be wider than the input \(wrapping more than once\); got padding \(4, 4\) "
         r"for input size 3 along axis 0"),
        ("circular-wide-pair", lambda: conv(W, (5, 3), padding=(0, (0, 4)), padding_mode="circular"), ValueError,
         r"circular padding must not be wider than the input .* got padding \(0, 4\) for input size 3 along axis 1"),
        ("reflect-equal", lambda: conv(W, (3, 3), padding=3, padding_mode="reflect"), ValueError,
         r"reflect padding must be smaller than the input size; got padding \(3, 3\) for input size 3 along axis 0"),
        ("reflect-size-1", lambda: conv(np.ones(1), (1,), padding=1, padding_mode="reflect"), ValueError,
         r"reflect padding must be smaller than the input size; got padding \(1, 1\) for input size 1"),
        ("reflect-same", lambda: conv(np.ones(7), (3,), padding="same", padding_mode="reflect"), ValueError,
         r"padding='same' cannot be honoured with padding_mode='reflect': reflect padding must be smaller than the "
         r"input size; got padding \(3, 3\) for input size 3"),
        ("circular-full", lambda: conv(np.ones(4), (2,), padding="full", padding_mode="circular"), ValueError,
         r"padding='full' cannot be honoured with padding_mode='circular': circular padding must not be wider"),
        # ---------------------------------------------------------------- unknown names
        ("padding-mode", lambda: conv(W, (3, 3), padding_mode="mirror"), ValueError,
         r"padding_mode must be one of 'zeros', 'circular', 'reflect', 'replicate', 'symmetric'; got 'mirror'"),
        ("padding-mode-type", lambda: conv(W, (3, 3), padding_mode=None), TypeError,
         r"padding_mode must be one of 'zeros', .*; got None"),
        # ---------------------------------------------------------------- non-finite kernels, bytes as numbers
        ("kernel-nan", lambda: conv(np.array([[np.nan, 1.0], [1.0, 1.0]]), (3, 3)), ValueError,
         r"kernel must be finite \(no NaN or inf\); got 1 non-finite entry in an array of shape \(2, 2\)"),
        ("kernel-inf-transpose", lambda: convt(np.full(3, np.inf), (4,)), ValueError, r"kernel must be finite"),
        ("kernel-complex-nan", lambda: full(np.array([1, complex(0, np.nan)]), (4,)), ValueError,
         r"kernel must be finite"),
        ("kernel-inf-correlation", lambda: corr(np.array([1.0, -np.inf]), (4,)), ValueError, r"kernel must be finite"),
        ("kernel-nan-operator", lambda: cm.ConvOperator(np.full((2, 2), np.nan), (4, 4)), ValueError,
         r"kernel must be finite"),
        ("kernel-nan-transpose-operator", lambda: cm.ConvTransposeOperator(np.full(2, np.nan), (4,)), ValueError,
         r"kernel must be finite"),
        ("mode-sparse-complex", lambda: corr(np.ones((2, 2)) + 1j, (4, 4), mode=sp.csr_array(np.eye(2))), ValueError,
         r"mode must be one of 'full', 'same', 'valid'"),
        ("convention-sparse-complex", lambda: corr(np.ones(2) + 1j, (4,), convention=sp.csr_array(np.eye(2))),
         ValueError, r"convention must be 'scipy', 'matlab' or 'numpy'"),
        ("padding-bytes", lambda: conv(np.ones(3), (4,), padding=b"3"), TypeError,
         r"padding must be an int, a sequence, or a string; got b'3'"),
        ("padding-bytearray", lambda: cm.conv_output_shape((3,), (4,), padding=bytearray(b"3")), TypeError,
         r"padding must be an int, a sequence, or a string; got bytearray"),
        ("padding-bytes-entry", lambda: conv(np.ones(3), (4,), padding=[bytearray(b"12")]), TypeError,
         r"padding\[0\] must be a non-negative integer; got bytearray"),
        ("input-shape-bytearray", lambda: conv(np.ones(3), bytearray(b"\x05")), TypeError,
         r"input_shape must be a sequence of positive ints; got bytearray"),
        ("padding-mode-case", lambda: conv(W, (3, 3), padding_mode="Zeros"), ValueError,
         r"padding_mode must be one of .*; got 'Zeros'"),
        ("padding-mode-transpose", lambda: convt(W, (3, 3), padding_mode="reflect"), ValueError,
         r"padding_mode must be one of 'zeros'; got 'reflect'"),
        ("padding-mode-nnz-transpose",
         lambda: cm.conv_transpose_nnz((3, 3), (5, 5), padding_mode="circular"), TypeError,
         r"conv_transpose_nnz\(\) got an unexpected keyword argument 'padding_mode'"),
        ("nnz-transpose-flag", lambda: cm.conv_nnz((3, 3), (5, 5), transpose=True), TypeError,
         r"conv_nnz\(\) got an unexpected keyword argument 'transpose'"),
        ("padding-mode-nnz", lambda: cm.conv_nnz((3, 3), (5, 5), padding_mode="wrap"), ValueError,
         r"padding_mode must be one of .*; got 'wrap'"),
        ("boundary", lambda: full(W, (3, 3), boundary="nope"), ValueError,
         r"boundary must be one of 'fill', 'wrap', 'symm'; got 'nope'"),
        ("boundary-type", lambda: corr(W, (3, 3), boundary=0), ValueError, r"boundary must be one of .*; got 0"),
        ("mode", lambda: full(W, (3, 3), mode="nope"), ValueError,
         r"mode must be one of 'full', 'same', 'valid'; got 'nope'"),
        ("mode-positional", lambda: corr(W, (3, 3), "Same"), ValueError, r"mode must be one of .*; got 'Same'"),
        ("convention", lambda: full(W, (3, 3), convention="octave"), ValueError,
         r"convention must be 'scipy', 'matlab' or 'numpy'; got 'octave'"),
        ("order", lambda: full(W, (3, 3), order="A"), ValueError,
         r"order must be 'C' \(row-major ravel\) or 'F' \(MATLAB's column-major X\(:\)\); got 'A'"),
        ("fillvalue", lambda: full(W, (3, 3), fillvalue=1), ValueError,
         r"fillvalue must be 0 \(a nonzero fill makes the map affine, not linear\); got 1"),
        ("valid-mixed", lambda: full(np.ones((2, 5)), (3, 3), "valid"), ValueError,
         r"mode='valid' needs the input to be at least as large as the kernel in every dimension, or the kernel at "
         r"least as large as the input in every dimension; got input_shape \(3, 3\) and kernel shape \(2, 5\)"),
        ("format", lambda: conv(W, (3, 3), format="csx"), ValueError,
         r"format must be one of 'csr', 'csc', 'coo', 'bsr', 'lil', 'dok', 'dia'; got 'csx'"),
        ("format-transpose", lambda: convt(W, (3, 3), format="CSR"), ValueError,
         r"format must be one of .*; got 'CSR'"),
        ("format-scipy", lambda: full(W, (3, 3), format=None), ValueError, r"format must be one of .*; got None"),
        ("flip", lambda: conv(W, (3, 3), flip=1), TypeError, r"flip must be a bool \(True or False\); got 1 of type int"),
        # ---------------------------------------------------------------- dtypes
        ("float16-kernel", lambda: conv(W.astype(np.float16), (3, 3)), TypeError,
         r"kernel dtype float16 is not supported by scipy\.sparse; convert it to float32"),
        ("float16-kernel-scipy", lambda: full(W.astype(np.float16), (3, 3)), TypeError, r"kernel dtype float16"),
        ("float16-dtype", lambda: conv(W, (3, 3), dtype=np.float16), TypeError,
         r"dtype must be an integer, float32/float64 or complex dtype; got float16"),
        ("complex-to-real", lambda: conv(W + 1j, (3, 3), dtype=np.float64), TypeError,
         r"dtype float64 cannot hold the kernel's dtype complex128"),
        ("float-to-int", lambda: convt(W, (3, 3), dtype=np.int64), TypeError,
         r"dtype int64 cannot hold the kernel's dtype float64"),
        ("complex-to-real-scipy", lambda: corr(W + 1j, (3, 3), dtype=np.float32), TypeError,
         r"dtype float32 cannot hold the kernel's dtype complex128"),
        ("dtype-bogus", lambda: conv(W, (3, 3), dtype="bogus"), TypeError, r"dtype must be a numpy dtype; got 'bogus'"),
        ("dtype-object", lambda: conv(W, (3, 3), dtype=object), TypeError,
         r"dtype must be an integer, float32/float64 or complex dtype; got object"),
        ("dtype-bool", lambda: conv(W, (3, 3), dtype=bool), TypeError,
         r"dtype must be an integer, float32/float64 or complex dtype; got bool"),
    ]


CASES = _cases()


@pytest.mark.parametrize("fn, exc, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_clear_message(fn, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn()


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("bad", [dict(stride=0), dict(padding="half"), dict(padding_mode="mirror"), dict(format="x"),
                                 dict(dtype=np.float16), dict(dilation=-1)])
def test_errors_come_before_any_allocation(bad):
    """A bad argument on a gigantic geometry is refused at once (nothing was allocated)."""
    def call():
        with pytest.raises((ValueError, TypeError)):
            cm.conv_matrix(np.ones((5, 5)), (10**6, 10**6), padding=2, **bad)

    assert traced_peak(call)[1] < 2**20


def test_matrix_too_large_is_a_memory_error_with_guidance():
    assert issubclass(cm.MatrixTooLargeError, MemoryError)

    def call():
        with pytest.raises(cm.MatrixTooLargeError) as info:
            cm.conv_matrix(np.ones((2, 3, 5, 5)), (4000, 4000), padding="same", max_bytes=2**30)
        return str(info.value)

    msg, peak = traced_peak(call)
    assert peak < 2**20  # refused before allocating
    nnz = 2 * 3 * (4000 * 5 - 2 * 3) ** 2  # 5 taps per axis, minus the taps lost on the zero border
    assert re.search(rf"nnz {nnz:,}", msg), msg
    assert re.search(r"\d+ GiB", msg) and "max_bytes=1,073,741,824" in msg and "ConvOperator" in msg


@pytest.mark.parametrize("value", [np.int64(2), np.int32(2), np.uint8(2), 2])
def test_numpy_integers_are_accepted(value):
    C = cm.conv_matrix(np.ones(3), (np.int64(9),), stride=value, padding=value, dilation=value)
    ref = cm.conv_matrix(np.ones(3), (9,), stride=2, padding=2, dilation=2)
    assert (ref != C).nnz == 0


def test_sequences_of_every_kind_are_accepted():
    ref = cm.conv_matrix(np.ones((3, 2)), (6, 5), stride=(2, 1), padding=((1, 0), (0, 1)))
    for stride, padding, shape in [([2, 1], [[1, 0], [0, 1]], [6, 5]),
                                   (np.array([2, 1]), np.array([[1, 0], [0, 1]]), np.array([6, 5]))]:
        C = cm.conv_matrix(np.ones((3, 2)), shape, stride=stride, padding=padding)
        assert (ref != C).nnz == 0


def test_bool_kernel_is_accepted_as_integers():
    C = cm.conv_matrix(np.array([True, False, True]), (4,))
    assert C.dtype.kind == "i"
    np.testing.assert_array_equal(C.toarray(), [[1, 0, 1, 0], [0, 1, 0, 1]])


def test_int_input_shape_means_1d():
    ref = cm.conv_matrix([1, 2], (5,))
    for shape in (5, np.int64(5), [5], np.array([5])):
        assert (cm.conv_matrix([1, 2], shape) != ref).nnz == 0


# ---------------------------------------------------------------------------- padding keywords in any case
@pytest.mark.parametrize("word", ["SAME", "Same", "VALID", "Valid", "FULL", "Same_Lower", "SAME_LOWER"])
def test_padding_keywords_in_any_case(word):
    """TensorFlow's and ONNX's spelling ("SAME", "VALID") means the same padding as the lower-case keyword."""
    lower = word.lower()
    k = np.arange(1.0, 7.0).reshape(2, 3)
    assert (cm.conv_matrix(k, (6, 5), stride=2, padding=word) != cm.conv_matrix(k, (6, 5), stride=2,
                                                                                  padding=lower)).nnz == 0
    assert cm.conv_output_shape((6, 5), (2, 3), padding=word) == cm.conv_output_shape((6, 5), (2, 3), padding=lower)
    assert cm.conv_nnz((2, 3), (6, 5), padding=word) == cm.conv_nnz((2, 3), (6, 5), padding=lower)
    t_word, t_lower = (cm.conv_transpose_matrix(k, (3, 3), stride=2, padding=p) for p in (word, lower))
    assert t_word.shape == t_lower.shape and (t_word != t_lower).nnz == 0
    op = cm.ConvOperator(k, (6, 5), padding=word)
    x = np.arange(30.0)
    np.testing.assert_array_equal(op @ x, cm.conv_matrix(k, (6, 5), padding=lower) @ x)


def test_padding_keywords_still_refuse_other_words():
    for word in ("SAMEE", "same ", "half"):
        with pytest.raises(ValueError, match=rf"padding must be .* one of 'valid', 'same', 'same_lower', 'full'; got "
                                             rf"'{word}'"):
            cm.conv_matrix(W, (5, 5), padding=word)


# ---------------------------------------------------------------------------- swapped arguments
SWAP = r"input_shape looks like an array of values: were the arguments swapped\? The kernel comes first"


@pytest.mark.parametrize("call", [
    lambda k: cm.conv_matrix((5, 5), k),
    lambda k: cm.conv_transpose_matrix((5, 5), k),
    lambda k: cm.convolution_matrix((5, 5), k),
    lambda k: cm.correlation_matrix((5, 5), k, "same"),
    lambda k: cm.ConvOperator((5, 5), k),
    lambda k: cm.singular_values((5, 5), k),
    lambda k: cm.check_conv((5, 5), k),
], ids=["conv_matrix", "conv_transpose_matrix", "convolution_matrix", "correlation_matrix", "ConvOperator",
        "singular_values", "check_conv"])
@pytest.mark.parametrize("kernel", [np.ones((3, 3)), np.ones(3), np.array([[1, 2], [3, 4]]), [1, -1], [0.5, 0.5],
                                    np.array([1, 0, -1])],
                         ids=["float-2d", "float-1d", "int-2d", "list-negative", "list-float", "int-negative"])
def test_swapped_arguments_are_named(call, kernel):
    with pytest.raises((TypeError, ValueError), match=SWAP) as info:
        call(kernel)
    assert str(info.value).startswith("input_shape[")  # the rule and the value first, then the hint
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_swapped_torch_tensor_is_named_without_its_contents():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=SWAP) as info:
        cm.conv_matrix((5, 5), torch.ones(64, 64))
    assert "1., 1., 1." not in str(info.value)


POSITIVE_SWAP = r"kernel looks like a shape and input_shape like an array of values: were the arguments swapped\?"


@pytest.mark.parametrize("call", [
    lambda: cm.conv_matrix((5,), np.array([1, 2, 1])),  # a kernel of positive ints is a valid shape too
    lambda: cm.conv_matrix([4], np.array([3, 3, 3], dtype=np.uint8)),
    lambda: cm.conv_transpose_matrix((3,), np.array([1, 1])),
], ids=["conv_matrix-1d", "conv_matrix-uint8", "conv_transpose_matrix"])
def test_swapped_arguments_with_a_positive_integer_kernel_are_named(call):
    with pytest.raises((TypeError, ValueError), match=POSITIVE_SWAP) as info:
        call()
    assert str(info.value).count("swapped") == 1


@pytest.mark.parametrize("call", [
    lambda: cm.conv_matrix([1, 2, 1], np.array([10]), stride=0),  # the swapped call is no better: no hint
    lambda: cm.conv_matrix((5, 5), np.array([1, 2, 1])),  # a 1-D kernel for a 2-D input either way
])
def test_positive_integer_kernels_get_no_swap_hint_when_swapping_would_not_help(call):
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    assert "swapped" not in str(info.value)


def test_conv_output_shape_names_exchanged_shapes():
    with pytest.raises(ValueError, match=r"kernel is larger than the padded input .* \(were input_shape and "
                                         r"kernel_shape swapped\? input_shape comes first\)$"):
        cm.conv_output_shape((3, 3), (5, 5))
    with pytest.raises(ValueError, match=r"padded input n\+p_before\+p_after = 5$"):
        cm.conv_output_shape((5, 5), (3, 9))  # the other way round does not fit either: no hint


@pytest.mark.parametrize("shape, pattern", [((5, 0), r"input_shape\[1\] must be a positive integer; got 0$"),
                                            ("5x5", r"input_shape must be a sequence of positive ints; got '5x5'$"),
                                            ((5, 2**63), r"input_shape\[1\] must be a positive integer at most 2\*\*62")])
def test_bad_shapes_get_no_swap_hint(shape, pattern):
    """A shape that is merely wrong is not called a kernel."""
    with pytest.raises((TypeError, ValueError), match=pattern) as info:
        cm.conv_matrix(W, shape)
    assert "swapped" not in str(info.value)
