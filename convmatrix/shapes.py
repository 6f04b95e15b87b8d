"""Sizes before building anything: output shapes and exact stored-entry counts, in closed form."""

from __future__ import annotations

from . import _validate as V
from .geometry import conv_geometry, conv_transpose_geometry

__all__ = ["conv_nnz", "conv_output_shape", "conv_transpose_nnz", "conv_transpose_output_shape"]


def conv_output_shape(
    input_shape: V.IntOrSequence,
    kernel_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    dilation: V.IntOrSequence = 1,
) -> tuple[int, ...]:
    """Spatial output shape of ``torch.nn.functional.conv{d}d`` for this geometry.

    Parameters
    ----------
    input_shape : int or sequence of int
        Spatial input shape ``(n_0, ..., n_{d-1})``.
    kernel_shape : int or sequence of int
        Spatial kernel shape, or PyTorch's weight shape ``(C_out, C_in/groups, *k)``.
    stride : int or sequence of int, keyword-only
        Step of the sliding window per spatial axis (default 1).
    padding : int, sequence of int or of ``(before, after)`` pairs, or str, keyword-only
        Implicit padding per axis (default 0), or ``"valid"`` (none), ``"same"`` (output size
        ``ceil(n / s)``, the odd element after, as TensorFlow/JAX), ``"same_lower"`` (odd element
        before) or ``"full"`` (``d*(k-1)`` on each side).
    dilation : int or sequence of int, keyword-only
        Spacing between kernel taps per axis (default 1).

    Returns
    -------
    tuple of int
        The spatial output shape, one size per axis of ``input_shape``.

    Raises
    ------
    ValueError
        A size, stride or dilation that is not a positive integer, a negative padding, a padding
        word that is not one of the four, lengths that do not match the number of spatial axes,
        or a kernel (dilated) larger than the padded input.
    TypeError
        A shape, stride, padding or dilation of the wrong type (e.g. a float or a bool).

    See Also
    --------
    conv_transpose_output_shape : The output shape of the transposed convolution.
    conv_nnz : The number of stored entries of the matrix, for the same geometry.
    convmatrix.symbolic.output_size_formula : The formula, derived by SymPy.

    Notes
    -----
    Per axis ``o = floor((n + p_before + p_after - d*(k-1) - 1) / s) + 1``, the shape that
    :func:`torch.nn.functional.conv2d` (and its 1-D and 3-D siblings) returns [1]_; it is
    relationship 6 (with dilation, 15) of Dumoulin & Visin [2]_.

    References
    ----------
    .. [1] PyTorch documentation, ``torch.nn.Conv2d``, "Shape".
    .. [2] V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
       arXiv:1603.07285, 2016.

    Examples
    --------
    >>> conv_output_shape((5, 5), (3, 3))
    (3, 3)
    >>> conv_output_shape((2, 2), (3, 3), padding="full")   # 2x2 image, 3x3 kernel, full: 4x4
    (4, 4)
    >>> conv_output_shape((7,), (3,), stride=2, padding="same")
    (4,)
    """
    ks = V.input_shape_tuple(kernel_shape, "kernel_shape")
    try:
        return conv_geometry(ks, input_shape, stride=stride, padding=padding, dilation=dilation).output_shape
    except ValueError as exc:
        try:  # the other way round fits: the two shapes were probably exchanged
            conv_geometry(V.input_shape_tuple(input_shape), ks, stride=stride, padding=padding, dilation=dilation)
        except (TypeError, ValueError):
            raise exc from None
        raise ValueError(f"{exc} (were input_shape and kernel_shape swapped? input_shape comes first)") from None


def conv_transpose_output_shape(
    input_shape: V.IntOrSequence,
    kernel_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    output_padding: V.IntOrSequence = 0,
    dilation: V.IntOrSequence = 1,
) -> tuple[int, ...]:
    """Spatial output shape of ``torch.nn.functional.conv_transpose{d}d``.

    Parameters
    ----------
    input_shape : int or sequence of int
        Spatial shape of the transposed convolution's input ``(n_0, ..., n_{d-1})``.
    kernel_shape : int or sequence of int
        Spatial kernel shape, or PyTorch's transposed weight shape ``(C_in, C_out/groups, *k)``.
    stride : int or sequence of int, keyword-only
        Stride of the convolution that this one transposes (default 1): the spacing of the
        kernel copies in the output.
    padding : int, sequence of int or of ``(before, after)`` pairs, or str, keyword-only
        Padding of the convolution that this one transposes (default 0; the words of
        :func:`conv_output_shape` too): cropped from the output.  A negative padding adds zero
        outputs instead (ONNX's SAME needs it when the stride exceeds the kernel's extent;
        PyTorch refuses it).
    output_padding : int or sequence of int, keyword-only
        Extra size at the end of each axis (default 0), ``0 <= a < max(s, d)`` (PyTorch's rule).
    dilation : int or sequence of int, keyword-only
        Spacing between kernel taps per axis (default 1).

    Returns
    -------
    tuple of int
        The spatial output shape, one size per axis of ``input_shape``.

    Raises
    ------
    ValueError
        A size, stride or dilation that is not a positive integer, an ``output_padding``
        outside ``[0, max(s, d))``, lengths that do not match the number of spatial axes, or a
        padding that crops the whole output.
    TypeError
        An argument of the wrong type (e.g. a float or a bool).

    See Also
    --------
    conv_output_shape : The output shape of the convolution.
    conv_transpose_nnz : The number of stored entries of the matrix.
    convmatrix.symbolic.output_padding_for : The output padding that reaches a wanted size.

    Notes
    -----
    Per axis ``o = (n-1)*s - p_before - p_after + d*(k-1) + a + 1`` with output padding
    ``0 <= a < max(s, d)``, as :func:`torch.nn.functional.conv_transpose2d` [1]_; without padding
    and output padding it is the ``(n-1)*s + k`` of the transposed convolution in the article
    "卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)" [2]_.

    References
    ----------
    .. [1] PyTorch documentation, ``torch.nn.ConvTranspose2d``, "Shape".
    .. [2] "卷积神经网络CNN——图像卷积与反卷积(后卷积,转置卷积)" (Convolutional neural networks:
       image convolution and deconvolution, also called transposed convolution).

    Examples
    --------
    >>> conv_transpose_output_shape((2, 2), (4, 4), stride=3)   # (2-1)*3 + 4 = 7
    (7, 7)
    >>> conv_transpose_output_shape((3, 3), (3, 3), stride=2, padding=1)
    (5, 5)
    >>> conv_transpose_output_shape((3,), (3,), stride=2, padding=1, output_padding=1)
    (6,)
    """
    ks = V.input_shape_tuple(kernel_shape, "kernel_shape")
    return conv_transpose_geometry(ks, input_shape, stride=stride, padding=padding,
                                   output_padding=output_padding, dilation=dilation).output_shape


def conv_nnz(
    kernel_shape: V.IntOrSequence,
    input_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    dilation: V.IntOrSequence = 1,
    groups: int = 1,
    padding_mode: V.PaddingMode = "zeros",
) -> int:
    """Exact number of stored entries of :func:`conv_matrix`, without building it.

    Parameters
    ----------
    kernel_shape : int or sequence of int
        Spatial kernel shape, or PyTorch's weight shape ``(C_out, C_in/groups, *k)``.
    input_shape : int or sequence of int
        Spatial input shape.
    stride, padding, dilation, groups, padding_mode
        As :func:`conv_matrix` (keyword-only).

    Returns
    -------
    int
        Every kernel tap counts as a stored entry; taps that a boundary mode folds onto the same
        input are one entry.  Computed in closed form (floor sums) for zeros, replicate and
        circular padding whatever the sizes; reflect and symmetric padding add their boundary rows
        one period at a time.

    Raises
    ------
    ValueError
        An invalid geometry, as :func:`conv_matrix` refuses it.
    TypeError
        An argument of the wrong type.

    See Also
    --------
    conv_transpose_nnz : The same for :func:`conv_transpose_matrix`.
    conv_matrix : The matrix whose entries are counted.

    Examples
    --------
    >>> conv_nnz((3, 3), (5, 5))                 # 9 outputs x 9 taps
    81
    >>> conv_nnz((3, 3), (5, 5), padding=1)      # 25 rows, edges lose taps
    169
    >>> conv_nnz((3,), (5,), padding=10**8)      # closed form: nothing of the padding's size
    15
    """
    ks = V.input_shape_tuple(kernel_shape, "kernel_shape")
    return conv_geometry(ks, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                         padding_mode=padding_mode).nnz


def conv_transpose_nnz(
    kernel_shape: V.IntOrSequence,
    input_shape: V.IntOrSequence,
    *,
    stride: V.IntOrSequence = 1,
    padding: V.Padding = 0,
    output_padding: V.IntOrSequence = 0,
    dilation: V.IntOrSequence = 1,
    groups: int = 1,
    output_shape: V.IntOrSequence | None = None,
) -> int:
    """Exact number of stored entries of :func:`conv_transpose_matrix`, without building it.

    Parameters
    ----------
    kernel_shape : int or sequence of int
        Spatial kernel shape, or PyTorch's transposed weight shape ``(C_in, C_out/groups, *k)``.
    input_shape : int or sequence of int
        Spatial shape of the transposed convolution's input.
    stride, padding, output_padding, dilation, groups, output_shape
        As :func:`conv_transpose_matrix` (keyword-only).

    Returns
    -------
    int
        The entries of the convolution it transposes, in closed form.

    Raises
    ------
    ValueError
        An invalid geometry, as :func:`conv_transpose_matrix` refuses it.
    TypeError
        An argument of the wrong type.

    See Also
    --------
    conv_nnz : The same for :func:`conv_matrix`.
    conv_transpose_matrix : The matrix whose entries are counted.

    Examples
    --------
    >>> conv_transpose_nnz((3,), (4,), stride=2)   # each of the 4 inputs spreads 3 taps
    12
    """
    ks = V.input_shape_tuple(kernel_shape, "kernel_shape")
    return conv_transpose_geometry(ks, input_shape, stride=stride, padding=padding, output_padding=output_padding,
                                   dilation=dilation, groups=groups, output_shape=output_shape).nnz


