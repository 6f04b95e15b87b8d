"""convmatrix.models: from_torch, from_onnx and AffineMap against independent references.

References: ``module.double()(x)`` for PyTorch, ``onnx.reference.ReferenceEvaluator`` (fed float64)
for ONNX, the naive loops of tests/reference.py, and the node conformance cases that ship with the
``onnx`` package (``onnx/backend/test/case/node/*.py``: their inputs and expected outputs).
Everything is compared to 1e-12 relative in float64 (the conformance cases' float32 outputs to
float32 precision).
"""

from __future__ import annotations

import importlib
import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from reference import conv_transpose_zero_insertion

import convmatrix as cm

torch = pytest.importorskip("torch")
nn = torch.nn
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

RTOL = 1e-12


def _close(got, want, rtol=RTOL, terms=None):
    """``got == want`` to ``rtol`` relative to the largest entry of ``want`` (or of ``terms``: the magnitudes of the
    summands, ``|M| |x| + |b|``, where an affine map's evaluation cancels)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-300)
    if terms is not None:
        scale = max(scale, float(np.max(terms, initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0)) / scale
    assert err <= rtol, f"relative error {err:.3g} > {rtol:g}"


def _terms(A, x):
    """Magnitude of the summands of ``A(x)``: ``|M| @ |x| + |b|`` (the scale of its rounding errors)."""
    return abs(A.matrix) @ np.abs(np.asarray(x, np.float64)).ravel() + np.abs(A.offset)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _randomize(module, seed=0):
    """Random parameters and running statistics (BatchNorm's defaults would hide the mean and variance)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) * 2 - 1)
        for name, b in module.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.rand(b.shape, generator=g) - 0.5)
    return module


def _check_torch(module, shape, batch=2, seed=0):
    """from_torch(module) against the module itself, in float64, on a batch and on one sample."""
    module = module.eval()
    A = cm.from_torch(module, shape)
    x = _rng(seed).standard_normal((batch, *shape))
    want = module.double()(torch.from_numpy(x)).detach().numpy()
    _close(A(x), want)
    _close(A(x[0]), want[0])
    assert A.matrix.shape == (math.prod(A.output_shape), math.prod(shape))
    assert A.offset.shape == (A.matrix.shape[0],)
    return A


# ============================================================================ PyTorch: every layer type
LAYERS = [
    (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), (4, 11)),
    (lambda: nn.Conv1d(2, 3, 4, padding="same", padding_mode="circular", bias=False), (2, 7)),
    (lambda: nn.Conv2d(3, 4, 3, stride=(2, 1), padding=1, padding_mode="reflect"), (3, 7, 6)),
    (lambda: nn.Conv2d(2, 2, (2, 3), padding="valid", padding_mode="replicate"), (2, 5, 5)),
    (lambda: nn.Conv3d(2, 2, 2, padding=1, padding_mode="circular", groups=2), (2, 3, 4, 3)),
    (lambda: nn.ConvTranspose1d(2, 4, 3, stride=3, padding=1, output_padding=2, groups=2), (2, 5)),
    (lambda: nn.ConvTranspose2d(3, 8, 4, stride=2, padding=1, output_padding=1), (3, 5, 5)),
    (lambda: nn.ConvTranspose3d(2, 3, 2, stride=2, dilation=2, output_padding=1, bias=False), (2, 2, 3, 2)),
    (lambda: nn.AvgPool1d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), (2, 8)),
    (lambda: nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True), (2, 6, 7)),
    (lambda: nn.AvgPool2d((2, 3), stride=(1, 2), divisor_override=5), (1, 4, 7)),
    (lambda: nn.AvgPool3d(2, padding=1, ceil_mode=True, count_include_pad=False), (1, 3, 4, 5)),
    (lambda: nn.AdaptiveAvgPool1d(4), (2, 9)),
    (lambda: nn.AdaptiveAvgPool2d((3, None)), (2, 7, 5)),
    (lambda: nn.AdaptiveAvgPool3d((2, 3, 1)), (1, 5, 4, 3)),
    (lambda: nn.ZeroPad1d((2, -1)), (2, 5)),
    (lambda: nn.ZeroPad2d((1, 2, 0, 3)), (1, 4, 5)),
    (lambda: nn.ZeroPad3d((1, 0, 0, 2, 1, 1)), (1, 2, 3, 2)),
    (lambda: nn.ConstantPad1d((3, 1), 0.75), (2, 4)),
    (lambda: nn.ConstantPad2d((1, 2, -1, 3), 2.5), (2, 4, 5)),
    (lambda: nn.ConstantPad3d((1, 0, 2, 1, 0, 1), -1.5), (1, 2, 3, 4)),
    (lambda: nn.ReflectionPad1d((2, 3)), (2, 5)),
    (lambda: nn.ReflectionPad2d((1, 2, 3, 0)), (1, 4, 5)),
    (lambda: nn.ReflectionPad3d(1), (1, 2, 3, 4)),
    (lambda: nn.ReplicationPad1d((3, 1)), (2, 4)),
    (lambda: nn.ReplicationPad2d((0, 4, 2, 1)), (1, 3, 2)),
    (lambda: nn.ReplicationPad3d((1, 0, 2, 1, 0, 3)), (1, 2, 3, 4)),
    (lambda: nn.CircularPad1d((2, 1)), (2, 4)),
    (lambda: nn.CircularPad2d((1, 2, 3, 0)), (1, 4, 5)),
    (lambda: nn.CircularPad3d(1), (1, 2, 3, 4)),
    (lambda: nn.Upsample(scale_factor=2.5, mode="nearest"), (2, 3, 4)),
    (lambda: nn.Upsample(scale_factor=2, mode="nearest"), (1, 5)),
    (lambda: nn.Upsample(size=(7, 3), mode="nearest-exact"), (2, 3, 4)),
    (lambda: nn.Upsample(scale_factor=1.5, mode="linear", recompute_scale_factor=True), (2, 5)),
    (lambda: nn.Upsample(scale_factor=0.7, mode="linear", align_corners=True), (2, 9)),
    (lambda: nn.Upsample(scale_factor=1.7, mode="bilinear"), (2, 3, 4)),
    (lambda: nn.UpsamplingBilinear2d(size=(7, 5)), (2, 3, 4)),
    (lambda: nn.UpsamplingNearest2d(scale_factor=3), (1, 2, 3)),
    (lambda: nn.Upsample(scale_factor=(1.5, 0.6, 2), mode="trilinear"), (1, 3, 4, 5)),
    (lambda: nn.Upsample(size=(3, 2, 5), mode="nearest"), (1, 4, 3, 2)),
    (lambda: nn.Upsample(size=3, mode="area"), (2, 7)),
    (lambda: nn.PixelShuffle(2), (8, 3, 2)),
    (lambda: nn.PixelUnshuffle(2), (2, 4, 6)),
    (lambda: nn.BatchNorm1d(3), (3,)),
    (lambda: nn.BatchNorm1d(3, affine=False), (3, 5)),
    (lambda: nn.BatchNorm2d(3), (3, 4, 4)),
    (lambda: nn.BatchNorm3d(2), (2, 2, 3, 2)),
    (lambda: nn.Linear(5, 3), (5,)),
    (lambda: nn.Linear(5, 3, bias=False), (2, 5)),
    (lambda: nn.Flatten(), (2, 3, 4)),
    (lambda: nn.Flatten(2, 3), (2, 3, 4, 5)),
    (lambda: nn.Unflatten(1, (3, -1)), (12,)),
    (lambda: nn.Identity(), (3, 2)),
    (lambda: nn.Dropout(0.3), (3, 2)),
    (lambda: nn.Dropout2d(0.3), (3, 2, 2)),
]


@pytest.mark.parametrize(("make", "shape"), LAYERS, ids=[f"{i}" for i in range(len(LAYERS))])
def test_layer_equals_module(make, shape):
    _check_torch(_randomize(make()), shape)


def test_conv_layer_is_conv_matrix():
    """The layer goes through the library's builder: the same matrix, and the bias in the offset."""
    layer = _randomize(nn.ConvTranspose2d(3, 8, 4, stride=2, padding=1, output_padding=1))
    A = cm.from_torch(layer, (3, 5, 5))
    w = layer.weight.detach().double().numpy()
    M = cm.conv_transpose_matrix(w, (5, 5), stride=2, padding=1, output_padding=1)
    assert (A.matrix != M).nnz == 0
    assert A.output_shape == (8, 11, 11)
    _close(A.offset, np.repeat(layer.bias.detach().double().numpy(), 121))


def test_stack_is_one_map():
    """A conv autoencoder (nested Sequential, no nonlinearity) is one matrix: that of the product of its layers."""
    enc = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 8, 3, stride=2,
                                                                                               padding=1))
    dec = nn.Sequential(nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1),
                        nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1))
    net = _randomize(nn.Sequential(enc, nn.Identity(), dec))
    A = _check_torch(net, (1, 8, 8))
    E = cm.from_torch(enc.eval(), (1, 8, 8))
    D = cm.from_torch(dec.eval(), E.output_shape)
    ED = E.then(D)
    _close(ED.matrix.toarray(), A.matrix.toarray())
    _close(ED.offset, A.offset)


def test_stack_of_every_kind():
    net = _randomize(nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(2, 4, 3), nn.AvgPool2d(2, ceil_mode=True), nn.Upsample(scale_factor=2,
                                                                                                mode="bilinear"),
        nn.PixelUnshuffle(2), nn.BatchNorm2d(16), nn.ConstantPad2d(1, 0.5), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Dropout(), nn.Linear(64, 6), nn.Unflatten(1, (2, 3)), nn.Linear(3, 2)))
    _check_torch(net, (2, 7, 7))


def test_same_module_twice_counts_twice():
    conv = _randomize(nn.Conv2d(2, 2, 3, padding=1))
    _check_torch(nn.Sequential(conv, nn.Sequential(conv)), (2, 4, 4))


def test_float32_module_mapped_exactly_in_float64():
    layer = _randomize(nn.Conv2d(1, 2, 3)).float()
    A = cm.from_torch(layer, (1, 5, 5))
    assert A.dtype == np.float64
    w = layer.weight.detach().numpy()
    assert set(A.matrix.data.tolist()) == set(w.astype(np.float64).ravel().tolist())
    B = cm.from_torch(layer, (1, 5, 5), dtype="float32")
    assert B.dtype == np.float32 and B.offset.dtype == np.float32
    x = _rng().standard_normal((1, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(B(x), layer(torch.from_numpy(x[None]))[0].detach().numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- randomized geometries (Hypothesis)
@st.composite
def conv_layers(draw, transposed):
    nd = draw(st.integers(1, 3))
    n = tuple(draw(st.lists(st.integers(1, 6 if nd < 3 else 4), min_size=nd, max_size=nd)))
    k = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    s = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    d = tuple(draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd)))
    groups = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    bias = draw(st.booleans())
    if transposed:
        p = tuple(draw(st.lists(st.integers(0, 2), min_size=nd, max_size=nd)))
        a = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
        assume(all((ni - 1) * si - 2 * pi + di * (ki - 1) + ai + 1 >= 1 for ni, si, pi, di, ki, ai in zip(n, s, p, d, k,
                                                                                                          a)))
        layer = getattr(nn, f"ConvTranspose{nd}d")(cin, cout, k, stride=s, padding=p, output_padding=a, dilation=d,
                                                   groups=groups, bias=bias)
    else:
        mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        padding = draw(st.sampled_from(["int", "same", "valid"]))
        if padding == "same":
            s = (1,) * nd
            p = "same"
            pads = [(di * (ki - 1)) // 2 + 1 for di, ki in zip(d, k)]
        elif padding == "valid":
            p, pads = "valid", [0] * nd
        else:
            p = tuple(draw(st.lists(st.integers(0, 2), min_size=nd, max_size=nd)))
            pads = list(p)
        if mode == "reflect":
            assume(all(q < ni for q, ni in zip(pads, n)))
        if mode == "circular":
            assume(all(q <= ni for q, ni in zip(pads, n)))
        if p != "same":
            pp = [0] * nd if p == "valid" else p
            assume(all(ni + 2 * q - di * (ki - 1) - 1 >= 0 for ni, q, di, ki in zip(n, pp, d, k)))
        layer = getattr(nn, f"Conv{nd}d")(cin, cout, k, stride=s, padding=p, dilation=d, groups=groups, bias=bias,
                                          padding_mode=mode)
    return _randomize(layer, draw(st.integers(0, 99))), (cin, *n)


@settings(max_examples=25)
@given(conv_layers(transposed=False))
def test_random_conv_layers(case):
    _check_torch(*case)


@settings(max_examples=25)
@given(conv_layers(transposed=True))
def test_random_conv_transpose_layers(case):
    _check_torch(*case)


@settings(max_examples=25)
@given(st.data())
def test_random_pooling_and_resizing(data):
    nd = data.draw(st.integers(1, 3))
    n = tuple(data.draw(st.lists(st.integers(1, 7 if nd < 3 else 4), min_size=nd, max_size=nd)))
    kind = data.draw(st.sampled_from(["avg", "adaptive", "nearest", "nearest-exact", "linear", "pad"]))
    if kind == "avg":
        k = tuple(data.draw(st.integers(1, 3)) for _ in n)
        assume(all(ki <= ni for ki, ni in zip(k, n)))
        s = tuple(data.draw(st.integers(1, 3)) for _ in n)
        p = tuple(data.draw(st.integers(0, ki // 2)) for ki in k)
        layer = getattr(nn, f"AvgPool{nd}d")(k, s, p, ceil_mode=data.draw(st.booleans()),
                                             count_include_pad=data.draw(st.booleans()),
                                             **({} if nd == 1 else {"divisor_override": data.draw(
                                                 st.sampled_from([None, None, 2, 7]))}))
    elif kind == "adaptive":
        layer = getattr(nn, f"AdaptiveAvgPool{nd}d")(tuple(data.draw(st.integers(1, 6)) for _ in n))
    elif kind == "pad":
        mode = data.draw(st.sampled_from(["Zero", "Constant", "Reflection", "Replication", "Circular"]))
        limit = {"Reflection": lambda m: m - 1, "Circular": lambda m: m}.get(mode, lambda m: 3)
        pads = tuple(data.draw(st.integers(0, min(3, limit(m)))) for m in reversed(n) for _ in range(2))
        if mode == "Zero" and nd > 1:
            layer = nn.ZeroPad2d(pads[:4]) if nd == 2 else nn.ZeroPad3d(pads)
        elif mode == "Zero":
            layer = nn.ZeroPad1d(pads)
        elif mode == "Constant":
            layer = getattr(nn, f"ConstantPad{nd}d")(pads, data.draw(st.sampled_from([0.0, 1.25, -3.0])))
        else:
            layer = getattr(nn, f"{mode}Pad{nd}d")(pads)
    else:
        if data.draw(st.booleans()):
            size = tuple(data.draw(st.integers(1, 9)) for _ in n)
            kw = {"size": size}
        else:
            factors = tuple(data.draw(st.sampled_from([0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 1 / 3])) for _ in n)
            assume(all(math.floor(ni * f) >= 1 for ni, f in zip(n, factors)))
            kw = {"scale_factor": factors, "recompute_scale_factor": data.draw(st.sampled_from([None, True]))}
        if kind == "linear":
            mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[nd]
            layer = nn.Upsample(mode=mode, align_corners=data.draw(st.booleans()), **kw)
        else:
            layer = nn.Upsample(mode=kind, **kw)
    _check_torch(layer, (2, *n))


# ----------------------------------------------------------------------------- PyTorch: errors
@pytest.mark.parametrize(("net", "match"), [
    (lambda: nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU()), r"layer 1 \('1': ReLU\) is not affine"),
    (lambda: nn.Sequential(nn.Sequential(nn.Identity(), nn.MaxPool2d(2))), r"layer 1 \('0\.1': MaxPool2d\).*max"),
    (lambda: nn.Sequential(nn.Conv2d(1, 1, 1), nn.GELU()), r"GELU is a nonlinear activation"),
    (lambda: nn.LayerNorm(5), r"layer 0 \(LayerNorm\) is not affine: it divides"),
    (lambda: nn.Sequential(nn.Bilinear(2, 2, 2)), r"Bilinear.*product"),
    (lambda: nn.Sequential(nn.Conv2d(1, 1, 1), nn.Embedding(3, 2)), r"layer 1 \('1': Embedding\) is not a supported"),
    (lambda: nn.Upsample(scale_factor=2, mode="bicubic"), r"mode 'bicubic' is not supported"),
])
def test_not_affine_is_named(net, match):
    with pytest.raises(TypeError, match=match):
        cm.from_torch(net().eval(), (1, 5, 5))


def test_training_mode_is_refused_where_it_matters():
    with pytest.raises(ValueError, match=r"layer 1 \('1': BatchNorm2d\) is in training mode"):
        cm.from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train(), (1, 5, 5))
    with pytest.raises(ValueError, match=r"layer 0 \(Dropout\) is in training mode"):
        cm.from_torch(nn.Dropout(0.5).train(), (3,))
    with pytest.raises(ValueError, match="track_running_stats=False"):
        cm.from_torch(nn.BatchNorm1d(3, track_running_stats=False).eval(), (3,))
    _check_torch(nn.Sequential(nn.Conv1d(1, 1, 2), nn.Dropout(0.0)).train(), (1, 4))  # training changes nothing here
    cm.from_torch(nn.Conv1d(1, 1, 2).train(), (1, 4))


@pytest.mark.parametrize(("net", "shape", "match"), [
    (lambda: nn.Conv2d(3, 1, 3), (2, 5, 5), r"layer 0 \(Conv2d\) expects 3 channels"),
    (lambda: nn.Conv2d(1, 1, 3), (1, 5), r"needs a sample of shape \(C, \*spatial\) \(3 dims"),
    (lambda: nn.Conv2d(1, 1, 3), (1, 2, 2), r"kernel is larger than the padded input"),
    (lambda: nn.Linear(4, 2), (3,), r"expects 4 features"),
    (lambda: nn.Flatten(0), (3, 2), r"flattens the batch dimension"),
    (lambda: nn.Unflatten(1, (2, 2)), (5,), r"do not multiply to 5"),
    (lambda: nn.PixelShuffle(2), (3, 2, 2), r"divisible by upscale_factor"),
    (lambda: nn.LazyLinear(3), (4,), r"lazy module"),
])
def test_shape_errors_are_named(net, shape, match):
    with pytest.raises(ValueError, match=match):
        cm.from_torch(net().eval(), shape)


def test_argument_errors():
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module"):
        cm.from_torch(lambda x: x, (3,))
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        cm.from_torch(nn.Identity(), (3,), dtype=np.int64)
    with pytest.raises(ValueError, match="input_shape must have at least one"):
        cm.from_torch(nn.Identity(), ())
    with pytest.raises(ValueError, match="max_bytes must be"):
        cm.from_torch(nn.Identity(), (3,), max_bytes="lots")


def test_budget_is_checked_before_products():
    """Each layer's build and each product is refused before it is computed when it would exceed max_bytes."""
    net = nn.Sequential(nn.Linear(100, 100), nn.Linear(100, 100))  # 10,000 entries each: 120 kB as CSR
    with pytest.raises(cm.MatrixTooLargeError, match=r"the product with layer 1 \('1': Linear\)"):
        cm.from_torch(net, (100,), max_bytes=200_000)
    with pytest.raises(cm.MatrixTooLargeError, match=r"layer 0 \('0': Linear\)"):
        cm.from_torch(net, (100,), max_bytes=100_000)
    with pytest.raises(cm.MatrixTooLargeError, match="conv_matrix"):
        cm.from_torch(nn.Conv2d(1, 4, 3, padding=1), (1, 12, 12), max_bytes=10_000)
    assert cm.from_torch(net, (100,), max_bytes=None).matrix.shape == (100, 100)


def test_missing_extra_names_it(monkeypatch):
    real = importlib.import_module

    def no(name, *a, **k):
        if name in ("torch", "onnx"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", no)
    with pytest.raises(ImportError, match=r'pip install "convmatrix\[torch\]"'):
        cm.from_torch(None, (3,))
    with pytest.raises(ImportError, match=r'pip install "convmatrix\[onnx\]"'):
        cm.from_onnx(None)


# ============================================================================ AffineMap
def test_affine_map_refuses_a_tensor_that_requires_grad_by_name():
    """numpy cannot read a torch tensor that requires grad: a TypeError naming the argument (was torch's
    RuntimeError)."""
    torch = pytest.importorskip("torch")
    t = torch.ones(2, 2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(TypeError, match=r"^matrix must be an array of numbers; got .*requires grad"):
        cm.AffineMap(t, input_shape=(2,), output_shape=(2,))
    with pytest.raises(TypeError, match=r"^offset must be an array of numbers"):
        cm.AffineMap(np.eye(2), t[0], input_shape=(2,), output_shape=(2,))
    with pytest.raises(TypeError, match=r"^x must be an array of numbers"):
        cm.AffineMap(np.eye(2), input_shape=(2,), output_shape=(2,))(t[0])


@pytest.mark.parametrize("call, exc, rule", [
    (lambda: cm.AffineMap(np.array([["a", "b"]]), input_shape=(2,), output_shape=(1,)), TypeError,
     r"^matrix must hold numbers .*got dtype <U1"),
    (lambda: cm.AffineMap(None, input_shape=(2,), output_shape=(1,)), TypeError, r"^matrix must hold numbers"),
    (lambda: cm.AffineMap(np.ones((1, 1, 2)), input_shape=(2,), output_shape=(1,)), ValueError,
     r"^matrix must be 2-D; got an array of shape \(1, 1, 2\)"),
    (lambda: cm.AffineMap(np.ones((1, 2), np.float16), input_shape=(2,), output_shape=(1,)), TypeError,
     r"^matrix dtype float16 is not supported"),
    (lambda: cm.AffineMap(np.ma.masked_array(np.ones((2, 2)), mask=[[1, 0], [0, 0]]), input_shape=(2,),
                          output_shape=(2,)), ValueError, r"^matrix is a masked array with 1 masked entries"),
    (lambda: cm.AffineMap(np.eye(2), ["a", "b"], input_shape=(2,), output_shape=(2,)), TypeError,
     r"^offset must hold numbers"),
    (lambda: cm.AffineMap(np.eye(2), input_shape=(2,), output_shape=(2,))(np.array(["a", "b"])), TypeError,
     r"^x must hold numbers"),
    (lambda: cm.AffineMap(np.eye(2), input_shape=(2,), output_shape=(2,)) @ np.ones(2), TypeError,
     r"^an AffineMap is applied by calling it, A\(x\)"),
    (lambda: np.ones(2) @ cm.AffineMap(np.eye(2), input_shape=(2,), output_shape=(2,)), TypeError,
     r"^an AffineMap is applied by calling it"),
])
def test_affine_map_refuses_what_is_not_a_matrix_by_name(call, exc, rule):
    """The matrix, offset and x are checked here (scipy's and numpy's own messages named none of them; a masked
    matrix lost its mask)."""
    with pytest.raises(exc, match=rule):
        call()


def test_affine_map_api():
    M = np.arange(6.0).reshape(2, 3)
    A = cm.AffineMap(M, [1.0, -1.0], input_shape=(3,), output_shape=(2, 1))
    assert A.input_shape == (3,) and A.output_shape == (2, 1) and A.matrix.format == "csr"
    _close(A(np.ones(3)), (M @ np.ones(3) + [1, -1]).reshape(2, 1))
    _close(A(np.ones((4, 3))), np.tile((M @ np.ones(3) + [1, -1]).reshape(1, 2, 1), (4, 1, 1)))
    assert "AffineMap(input_shape=(3,), output_shape=(2, 1)" in repr(A)
    with pytest.raises(ValueError, match=r"x must have shape input_shape \(3,\)"):
        A(np.ones(4))
    with pytest.raises(ValueError, match="matrix must have shape"):
        cm.AffineMap(M, input_shape=(2,), output_shape=(2,))
    with pytest.raises(ValueError, match="offset must be a 1-D array of length"):
        cm.AffineMap(M, [1.0], input_shape=(3,), output_shape=(2,))
    with pytest.raises(AttributeError, match="immutable"):
        A.offset = np.zeros(2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="other must be an AffineMap"):
        A.then(M)
    with pytest.raises(ValueError, match="does not match"):
        A.then(A)
    Z = cm.AffineMap(np.ones((1, 2)), input_shape=(2,), output_shape=(1,))
    _close(A.then(Z)(np.ones(3)), [float(M.sum())])
    assert cm.AffineMap(M, input_shape=(3,), output_shape=(2,)).offset.tolist() == [0.0, 0.0]


# ============================================================================ negative padding of the transposed convolution
@settings(max_examples=40)
@given(st.data())
def test_conv_transpose_negative_padding(data):
    nd = data.draw(st.integers(1, 2))
    n = tuple(data.draw(st.integers(1, 4)) for _ in range(nd))
    k = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(data.draw(st.integers(1, 5)) for _ in range(nd))
    d = tuple(data.draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple((data.draw(st.integers(-4, 2)), data.draw(st.integers(-4, 2))) for _ in range(nd))
    g = data.draw(st.integers(1, 2))
    out = [(ni - 1) * si - b - e + di * (ki - 1) + 1 for ni, si, (b, e), di, ki in zip(n, s, pads, d, k)]
    assume(min(out) >= 1)
    w = _rng(1).standard_normal((g * data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)), *k))
    T = cm.conv_transpose_matrix(w, n, stride=s, padding=pads, dilation=d, groups=g)
    x = _rng(2).standard_normal((w.shape[0], *n))
    want = conv_transpose_zero_insertion(x, w, stride=s, padding=pads, dilation=d, groups=g)
    _close(T @ x.ravel(), want.ravel())
    assert T.nnz == cm.conv_transpose_nnz(w.shape, n, stride=s, padding=pads, dilation=d, groups=g)
    assert cm.conv_transpose_output_shape(n, k, stride=s, padding=pads, dilation=d) == tuple(out)
    _close(cm.ConvTransposeOperator(w, n, stride=s, padding=pads, dilation=d, groups=g) @ x.ravel(), want.ravel())


def test_conv_matrix_still_refuses_negative_padding():
    with pytest.raises(ValueError, match=r"padding\[0\]\[0\] must be a non-negative integer; got -1"):
        cm.conv_matrix(np.ones(3), (5,), padding=[(-1, 0)])
    with pytest.raises(ValueError, match="padding is too large"):
        cm.conv_transpose_matrix(np.ones(3), (2,), padding=[(4, 0)])
    with pytest.raises(ValueError, match="exceeds 2"):
        cm.conv_transpose_matrix(np.ones(3), (2,), padding=[(-(2**62), 0)])
    # one zero row before the data: ONNX's SAME_UPPER with stride 5 > kernel 3
    T = cm.conv_transpose_matrix(np.array([1.0, 2.0, 3.0]), (2,), stride=5, padding=[(-1, -1)])
    assert (T @ np.ones(2)).tolist() == [0, 1, 2, 3, 0, 0, 1, 2, 3, 0]


# ============================================================================ ONNX
def _model(nodes, x_shape, inits=(), *, elem=TensorProto.DOUBLE, opset=None, batch="N"):
    inputs = [helper.make_tensor_value_info("x", elem, [batch, *x_shape])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(nodes[-1].output[0], elem, None)],
                              [numpy_helper.from_array(np.asarray(v), name) for name, v in inits])
    kw = {} if opset is None else {"opset_imports": [helper.make_operatorsetid("", opset)]}
    return helper.make_model(graph, **kw)


def _check_onnx(model, x_shape, seed=0, rtol=RTOL, reference_fails=()):
    """from_onnx(model) against onnx.reference on a batch-1 float64 input (``reference_fails``: errors of the
    reference that reject the example)."""
    A = cm.from_onnx(model)
    x = _rng(seed).standard_normal((1, *x_shape))
    try:
        want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    except reference_fails:
        assume(False)
    got = A(x[0])
    _close(got.reshape(want.shape), want, rtol, terms=_terms(A, x[0]))
    return A


@st.composite
def onnx_conv_transpose(draw):
    nd = draw(st.integers(1, 2))
    n = [draw(st.integers(1, 4)) for _ in range(nd)]
    k = [draw(st.integers(1, 3)) for _ in range(nd)]
    s = [draw(st.integers(1, 4)) for _ in range(nd)]
    d = [draw(st.integers(1, 2)) for _ in range(nd)]
    a = [draw(st.integers(0, si - 1)) for si in s]
    attrs = {"strides": s, "dilations": d}
    how = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID", "pads", "output_shape", "NOTSET"]))
    if how in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        attrs["auto_pad"] = how
    if how == "pads":
        attrs["pads"] = [draw(st.integers(0, 2)) for _ in range(2 * nd)]
    full = [(ni - 1) * si + di * (ki - 1) + 1 for ni, si, di, ki in zip(n, s, d, k)]
    if how == "output_shape":  # onnx.reference (col2im) runs only for an output extended by less than the stride
        attrs["output_shape"] = [f + draw(st.integers(0, si - 1)) for f, si in zip(full, s)]
    elif how.startswith("SAME") and draw(st.booleans()):
        attrs["output_shape"] = [max(1, f + draw(st.integers(-2, 2))) for f in full]
    if draw(st.booleans()) and how != "output_shape":
        attrs["output_padding"] = a
    if "pads" in attrs:
        assume(all(f + ai - attrs["pads"][i] - attrs["pads"][i + nd] >= 1
                   for i, (f, ai) in enumerate(zip(full, attrs.get("output_padding", [0] * nd)))))
    cin, cout = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    w = _rng(draw(st.integers(0, 9))).standard_normal((cin, cout, *k))
    bias = draw(st.booleans())
    inits = [("w", w)] + ([("b", _rng(3).standard_normal(cout))] if bias else [])
    node = helper.make_node("ConvTranspose", ["x", "w"] + (["b"] if bias else []), ["y"], **attrs)
    return _model([node], (cin, *n), inits), (cin, *n)


@settings(max_examples=40)
@given(onnx_conv_transpose())
def test_onnx_conv_transpose_random(case):
    """Every auto_pad, output_shape and output_padding, including the negative begin padding."""
    _check_onnx(*case)


@settings(max_examples=20)
@given(st.data())
def test_onnx_conv_random(data):
    nd = data.draw(st.integers(1, 3))
    n = [data.draw(st.integers(3, 5 if nd < 3 else 4)) for _ in range(nd)]
    k = [data.draw(st.integers(1, 2)) for _ in range(nd)]
    attrs = {"strides": [data.draw(st.integers(1, 3)) for _ in range(nd)],
             "dilations": [data.draw(st.integers(1, 2)) for _ in range(nd)],
             "group": data.draw(st.integers(1, 2))}
    how = data.draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID", "pads"]))
    if how == "pads":
        attrs["pads"] = [data.draw(st.integers(0, 2)) for _ in range(2 * nd)]
    else:
        attrs["auto_pad"] = how
    g = attrs["group"]
    w = _rng(data.draw(st.integers(0, 9))).standard_normal((2 * g, data.draw(st.integers(1, 2)), *k))
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=k, **attrs)
    _check_onnx(_model([node], (w.shape[1] * g, *n), [("w", w), ("b", _rng(1).standard_normal(2 * g))]),
                (w.shape[1] * g, *n))


def test_onnx_grouped_conv_transpose():
    """onnx.reference cannot run a grouped ConvTranspose: the naive zero-insertion reference is used there."""
    w = _rng(0).standard_normal((4, 3, 2, 3))
    b = _rng(1).standard_normal(6)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=2, strides=[2, 3], pads=[1, 0, 0, 2],
                            output_padding=[1, 2], dilations=[2, 1])
    A = cm.from_onnx(_model([node], (4, 3, 3), [("w", w), ("b", b)]))
    x = _rng(2).standard_normal((4, 3, 3))
    want = conv_transpose_zero_insertion(x, w, stride=(2, 3), padding=[(1, 0), (0, 2)], output_padding=(1, 2),
                                         dilation=(2, 1), groups=2) + b[:, None, None]
    _close(A(x), want)


@settings(max_examples=30)
@given(st.data())
def test_onnx_average_pool_random(data):
    nd = data.draw(st.integers(1, 3))
    n = [data.draw(st.integers(1, 6 if nd < 3 else 4)) for _ in range(nd)]
    k = [data.draw(st.integers(1, 3)) for _ in range(nd)]
    s = [data.draw(st.integers(1, 3)) for _ in range(nd)]
    d = [data.draw(st.integers(1, 2)) for _ in range(nd)]
    attrs = {"kernel_shape": k, "strides": s, "dilations": d,
             "count_include_pad": int(data.draw(st.booleans()))}
    how = data.draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID", "pads"]))
    ext = [di * (ki - 1) + 1 for di, ki in zip(d, k)]
    if how == "pads":
        pads = [data.draw(st.integers(0, 2)) for _ in range(2 * nd)]
        ceil = data.draw(st.booleans())
        attrs.update(pads=pads, ceil_mode=int(ceil))
        for i in range(nd):
            span = n[i] + pads[i] + pads[i + nd] - ext[i]
            assume(span >= 0)
            out = (-(-span // s[i]) if ceil else span // s[i]) + 1
            out -= ceil and (out - 1) * s[i] >= n[i] + pads[i]
            # onnx.reference moves the padding when a ceil_mode window reaches 2+ past the padded end
            assume((out - 1) * s[i] + ext[i] - (n[i] + pads[i] + pads[i + nd]) <= 1)
            # and averages an empty window to nan
            assume(all(j * s[i] - pads[i] + t * d[i] in range(n[i]) for j in range(out) for t in [0, k[i] - 1]) or
                   all(any(0 <= j * s[i] - pads[i] + t * d[i] < n[i] for t in range(k[i])) for j in range(out)))
    else:
        attrs["auto_pad"] = how
        if how == "VALID":
            assume(all(ni >= e for ni, e in zip(n, ext)))
        else:  # the reference pads by the undilated kernel and cannot pad negatively
            assume(all(di == 1 for di in d))
            assume(all((-(-ni // si) - 1) * si + e - ni >= 0 for ni, si, e in zip(n, s, ext)))
    node = helper.make_node("AveragePool", ["x"], ["y"], **attrs)
    _check_onnx(_model([node], (2, *n)), (2, *n), reference_fails=IndexError)  # its window loop can overrun


@settings(max_examples=30)
@given(st.data())
def test_onnx_resize_random(data):
    nd = data.draw(st.integers(1, 2))
    n = [data.draw(st.integers(1, 5)) for _ in range(nd)]
    mode = data.draw(st.sampled_from(["nearest", "linear", "cubic"]))
    coord = data.draw(st.sampled_from(["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                       "asymmetric", "tf_crop_and_resize"]))
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if mode == "nearest":
        attrs["nearest_mode"] = data.draw(st.sampled_from(["round_prefer_floor", "round_prefer_ceil", "floor",
                                                           "ceil"]))
    else:
        attrs["antialias"] = int(data.draw(st.booleans()))
        attrs["exclude_outside"] = int(data.draw(st.booleans()))
    if mode == "cubic":
        attrs["cubic_coeff_a"] = data.draw(st.sampled_from([-0.75, -0.5]))
    roi = np.array([0, 0, *[data.draw(st.sampled_from([0.0, 0.2, -0.1])) for _ in n],
                    1, 1, *[data.draw(st.sampled_from([1.0, 0.7, 1.2])) for _ in n]], np.float32)
    if coord == "tf_crop_and_resize":
        attrs["extrapolation_value"] = data.draw(st.sampled_from([0.0, 2.5]))
    inits = [("roi", roi.astype(np.float64) if coord == "tf_crop_and_resize" else np.zeros(0))]
    if data.draw(st.booleans()):
        sizes = np.array([1, 2, *[data.draw(st.integers(1, 8)) for _ in n]], np.int64)
        inits += [("scales", np.zeros(0, np.float32)), ("sizes", sizes)]
        ins = ["x", "roi", "scales", "sizes"]
    else:
        scales = np.array([1, 1, *[data.draw(st.sampled_from([0.5, 0.6, 1.0, 1.5, 2.0, 3.0])) for _ in n]], np.float32)
        assume(all(int(f * m) >= 1 for f, m in zip(scales[2:], n)))
        inits += [("scales", scales)]
        ins = ["x", "roi", "scales"]
    node = helper.make_node("Resize", ins, ["y"], **attrs)
    # onnx.reference computes the cubic coefficients in float32 (cubic_coeff_a is a float32 attribute)
    _check_onnx(_model([node], (2, *n), inits), (2, *n), rtol=1e-5 if mode == "cubic" else RTOL)


@settings(max_examples=20)
@given(st.data())
def test_onnx_pad_random(data):
    nd = data.draw(st.integers(1, 3))
    n = [data.draw(st.integers(1, 4)) for _ in range(nd)]
    mode = data.draw(st.sampled_from(["constant", "reflect", "edge", "wrap"]))
    low = 0  # np.pad (onnx.reference) cannot crop: negative pads are checked in test_onnx_pad_crops
    pads = [0, 0, *[data.draw(st.integers(low, 3)) for _ in n], 0, 0, *[data.draw(st.integers(low, 3)) for _ in n]]
    assume(all(m + pads[2 + i] + pads[4 + nd + i] >= 1 for i, m in enumerate(n)))
    if mode == "reflect":
        assume(all(m > 1 for m in n))
    inits = [("pads", np.array(pads, np.int64)), ("v", np.array(data.draw(st.sampled_from([0.0, 1.5]))))]
    node = helper.make_node("Pad", ["x", "pads", "v"], ["y"], mode=mode)
    _check_onnx(_model([node], (2, *n), inits), (2, *n))


def test_onnx_pad_crops():
    """Negative pads remove entries (onnx.reference's np.pad cannot: the reference is slicing)."""
    pads = np.array([0, 0, -1, 2, 0, 0, 1, -2], np.int64)
    node = helper.make_node("Pad", ["x", "pads", "v"], ["y"], mode="constant")
    A = cm.from_onnx(_model([node], (2, 4, 5), [("pads", pads), ("v", np.array(1.5))]))
    x = _rng().standard_normal((2, 4, 5))
    want = np.pad(x[:, 1:, :3], [(0, 0), (0, 1), (2, 0)], constant_values=1.5)
    _close(A(x), want)
    wrap = helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap")
    pads = np.array([0, 0, 3, 0, 0, 0, 2, 6], np.int64)  # wider than the input: wraps more than once
    _close(cm.from_onnx(_model([wrap], (2, 4, 5), [("pads", pads)]))(x), np.pad(x, [(0, 0), (3, 2), (0, 6)],
                                                                                 mode="wrap"))


def test_onnx_chain_with_constants_and_shape_folding(tmp_path):
    """A chain with a Constant weight, BatchNormalization, arithmetic, Shape -> Reshape, Gemm, from a file."""
    r = _rng(5)
    w = r.standard_normal((3, 2, 3, 3))
    nodes = [
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)),
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"], epsilon=1e-3),
        helper.make_node("Mul", ["bn", "k"], ["m1"]),
        helper.make_node("Sub", ["one", "m1"], ["s1"]),
        helper.make_node("Div", ["s1", "two"], ["d1"]),
        helper.make_node("Pad", ["d1", "pads"], ["p1"], mode="reflect"),
        helper.make_node("GlobalAveragePool", ["p1"], ["gap"]),
        helper.make_node("Shape", ["gap"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Concat", ["n", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["gap", "target"], ["flat"]),
        helper.make_node("Gemm", ["flat", "G", "gb"], ["y"], transB=1, alpha=0.5, beta=2.0),
    ]
    inits = [("g", r.random(3) + 0.5), ("b", r.standard_normal(3)), ("m", r.standard_normal(3)),
             ("v", r.random(3) + 0.5), ("k", r.standard_normal((3, 1, 1))), ("one", np.array(1.0)),
             ("two", np.array([2.0])), ("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)),
             ("zero", np.array([0], np.int64)), ("minus1", np.array([-1], np.int64)),
             ("G", r.standard_normal((4, 3))), ("gb", r.standard_normal(4))]
    model = _model(nodes, (2, 4, 5), inits)
    A = _check_onnx(model, (2, 4, 5))
    assert A.output_shape == (4,)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    B = cm.from_onnx(str(path))
    _close(B.matrix.toarray(), A.matrix.toarray())


def test_onnx_residual_and_shapes():
    r = _rng(6)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], auto_pad="SAME_UPPER"),
        helper.make_node("Add", ["x", "c"], ["res"]),
        helper.make_node("Transpose", ["res"], ["t"], perm=[0, 3, 2, 1]),
        helper.make_node("Flatten", ["t"], ["f"], axis=2),
        helper.make_node("MatMul", ["f", "M"], ["mm"]),
        helper.make_node("MatMul", ["L", "mm"], ["lm"]),
        helper.make_node("Unsqueeze", ["lm", "ax"], ["u"]),
        helper.make_node("Squeeze", ["u", "ax"], ["s"]),
        helper.make_node("Identity", ["s"], ["y"]),
    ]
    inits = [("w", r.standard_normal((2, 2, 3, 3))), ("M", r.standard_normal((8, 3))),
             ("L", r.standard_normal((2, 4))), ("ax", np.array([1], np.int64))]
    A = _check_onnx(_model(nodes, (2, 4, 4), inits), (2, 4, 4))
    assert A.output_shape == (2, 3)


def test_onnx_input_shapes():
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2])
    m = _model([node], ("C", "L"))
    with pytest.raises(ValueError, match=r"unknown sizes: pass input_shape="):
        cm.from_onnx(m)
    A = cm.from_onnx(m, input_shape=(3, 7))
    assert A.input_shape == (3, 7) and A.output_shape == (3, 6)
    fixed = _model([node], (3, 7), batch=1)
    assert cm.from_onnx(fixed).input_shape == (3, 7)
    with pytest.raises(ValueError, match=r"input_shape\[1\] = 8 contradicts"):
        cm.from_onnx(fixed, input_shape=(3, 8))
    with pytest.raises(ValueError, match="batch dimension 4"):
        cm.from_onnx(_model([node], (3, 7), batch=4))
    with pytest.raises(TypeError, match=r"model must be an onnx\.ModelProto, a path"):
        cm.from_onnx(3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_by_layer_and_initializer(bad):
    """A non-finite parameter makes no matrix (as a non-finite kernel): the layer or initializer is named, for
    every layer type (a convolution's was refused without its name, a Linear's went into the matrix)."""
    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(32, 3), nn.BatchNorm1d(3)).eval()
    for param in (m[0].bias, m[2].weight, m[3].running_var):
        with torch.no_grad():
            keep = param.flatten()[0].item()
            param.view(-1)[0] = bad
        with pytest.raises(ValueError, match=r"^layer \d \('\d': \w+\): \w+ must be finite \(no NaN or inf\); "
                                             r"got 1 non-finite entry$"):
            cm.from_torch(m, (1, 4, 4))
        with torch.no_grad():
            param.view(-1)[0] = keep
    assert cm.from_torch(m, (1, 4, 4)).output_shape == (3,)
    w = np.ones((1, 1, 3, 3))
    w[0, 0, 1, 1] = bad
    model = _model([helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])], (1, 5, 5), [("W", w)])
    with pytest.raises(ValueError, match=r"^initializer 'W' must be finite \(no NaN or inf\); got 1"):
        cm.from_onnx(model)


def test_onnx_model_as_bytes_or_a_path_and_their_errors(tmp_path):
    """The serialized bytes are a model too; a path that is not a readable file, or bytes or a file that are not
    a model, are a ValueError naming ``model`` (they were OSError, FileNotFoundError or protobuf's DecodeError)."""
    m = _model([helper.make_node("Identity", ["x"], ["y"])], (3, 7))
    A = cm.from_onnx(m.SerializeToString())
    assert (A.matrix != cm.from_onnx(m).matrix).nnz == 0
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    assert cm.from_onnx(str(path)).input_shape == cm.from_onnx(path).input_shape == (3, 7)
    (tmp_path / "junk.onnx").write_bytes(b"not a model at all")
    for bad, rule in [(tmp_path / "missing.onnx", r"model must be a readable \.onnx file; got .*missing\.onnx"),
                      (tmp_path, r"model must be a readable \.onnx file"),
                      ("x" * 5000, r"model must be a readable \.onnx file"),
                      (tmp_path / "junk.onnx", r"model must be an ONNX model; .*junk\.onnx.* could not be parsed"),
                      (b"\x00\x01garbage", r"model must be an ONNX model; 9 bytes could not be parsed"),
                      (b"", r"model must be an ONNX model with a graph; found none in 0 bytes")]:
        with pytest.raises(ValueError, match=rule):
            cm.from_onnx(bad)
    assert cm.from_onnx(os.fsencode(path)).input_shape == (3, 7)  # a path as bytes (an existing file) is a path


def test_an_uninitialized_lazy_layer_is_named():
    """LazyBatchNorm without affine has uninitialized buffers only (the finite check met torch's own error)."""
    for layer in (nn.LazyBatchNorm2d(affine=False), nn.LazyBatchNorm2d(), nn.LazyConv2d(2, 3)):
        with pytest.raises(ValueError, match=r"is a lazy module that has not been initialized; run one batch"):
            cm.from_torch(nn.Sequential(layer).eval(), (2, 4, 4))


@pytest.mark.parametrize(("nodes", "inits", "error", "match"), [
    ([helper.make_node("Relu", ["x"], ["y"])], [], TypeError, r"node 0 \(Relu\): is not affine: ReLU"),
    ([helper.make_node("Identity", ["x"], ["i"], name="id"), helper.make_node("MaxPool", ["i"], ["y"],
                                                                              kernel_shape=[2])],
     [], TypeError, r"node 1 \(MaxPool\): is not affine"),
    ([helper.make_node("Erf", ["x"], ["y"], name="e")], [], TypeError, r"node 0 \('e': Erf\): op 'Erf' is not "
                                                                       r"supported"),
    ([helper.make_node("Mul", ["x", "x"], ["y"])], [], TypeError, r"product is not affine"),
    ([helper.make_node("Div", ["k", "x"], ["y"])], [("k", np.ones(1))], TypeError, r"divides a constant by"),
    ([helper.make_node("Div", ["x", "k"], ["y"])], [("k", np.zeros(1))], ValueError, r"divides by a constant with "
                                                                                      r"zero"),
    ([helper.make_node("Conv", ["x", "w"], ["y"])], [("w", np.ones((1, 2, 2)))], ValueError, r"the input has 3 "
                                                                                           r"channels"),
    ([helper.make_node("Conv", ["x", "w"], ["y"], strides=[0])], [("w", np.ones((1, 3, 2)))], ValueError,
     r"node 0 \(Conv\): stride\[0\] must be a positive integer"),
    ([helper.make_node("BatchNormalization", ["x", "a", "a", "a", "a"], ["y"], training_mode=1)],
     [("a", np.ones(3))], ValueError, r"training_mode=1"),
    ([helper.make_node("Conv", ["x", "x"], ["y"])], [], TypeError, r"input 1 \('x'\) depends on the graph's input"),
    ([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT32)], [], TypeError, r"rounds: not affine"),
])
def test_onnx_errors_name_the_node(nodes, inits, error, match):
    with pytest.raises(error, match=match):
        cm.from_onnx(_model(nodes, (3, 4), inits))


def test_onnx_graph_shape_errors():
    node = helper.make_node("Identity", ["k"], ["y"])
    with pytest.raises(ValueError, match="does not depend on its input"):
        cm.from_onnx(_model([node], (3,), [("k", np.ones(2))]))
    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "g",
                          [helper.make_tensor_value_info(n, TensorProto.DOUBLE, [1, 2]) for n in "ab"],
                          [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)])
    with pytest.raises(ValueError, match="exactly one input"):
        cm.from_onnx(helper.make_model(g))


def test_torch_onnx_export_round_trip():
    """torch.onnx.export (the TorchScript exporter: the dynamo one needs onnxscript) -> from_onnx == from_torch."""
    net = _randomize(nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3),
                                   nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1), nn.AvgPool2d(2),
                                   nn.Upsample(scale_factor=2, mode="bilinear"), nn.Flatten(),
                                   nn.Linear(2 * 6 * 6, 5))).eval()
    import io

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, (torch.zeros(1, 1, 6, 6),), buf, dynamo=False,
                              dynamic_axes={"input": {0: "N"}}, input_names=["input"])
        except Exception as exc:  # pragma: no cover - depends on the installed exporter
            pytest.skip(f"torch.onnx.export does not work offline here: {exc}")
    A = cm.from_onnx(onnx.load_from_string(buf.getvalue()))
    B = cm.from_torch(net, (1, 6, 6))
    assert A.input_shape == B.input_shape and A.output_shape == B.output_shape
    # the exported weights are float32: compare the maps at float32 precision, and A itself against onnx.reference
    np.testing.assert_allclose(A.matrix.toarray(), B.matrix.toarray(), rtol=1e-5, atol=1e-6)


# ============================================================================ ONNX node conformance cases
#: the onnx package's node test modules whose ops are affine in their first input (the others become constants)
CONFORMANCE = ["conv", "convtranspose", "averagepool", "globalaveragepool", "pad", "batch_normalization", "add", "sub",
               "mul", "div", "flatten", "reshape", "gemm", "matmul", "identity", "resize", "upsample", "dropout",
               "transpose", "depthtospace", "spacetodepth", "squeeze", "unsqueeze"]
#: cases that are not an affine map of one float input, and why
NOT_AFFINE = {
    "test_training_dropout": "random", "test_training_dropout_default": "random",
    "test_training_dropout_mask": "random", "test_training_dropout_default_mask": "random",
    "test_training_dropout_zero_ratio_mask": "mask output",
    "test_dropout_default_mask": "mask output", "test_dropout_default_mask_ratio": "mask output",
}


def _conformance_cases(module):
    import onnx.backend.test.case.node as N

    before = len(N._NodeTestCases)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importlib.import_module(f"onnx.backend.test.case.node.{module}")
    return N._NodeTestCases[before:]


def _as_graph_of_one_input(case):
    """The case's model with every input but the first turned into an initializer, and a batch axis of 1 in front
    when the first input's leading axis is not 1 (a Reshape node: the map is then that of the whole tensor)."""
    inputs, outputs = case.data_sets[0]
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    g = model.graph
    node_inputs = list(g.node[0].input)
    keep32 = {n.input[i] for n in g.node for i in {"Resize": (2,), "Upsample": (1,)}.get(n.op_type, ()) if i < len(n.input)}
    for info, arr in zip(list(g.input)[1:], inputs[1:]):
        arr = np.asarray(arr)  # float weights as float64 (the same values): onnx.reference then computes in float64
        wide = arr.astype(np.float64) if arr.dtype.kind == "f" and info.name not in keep32 else arr
        g.initializer.append(numpy_helper.from_array(wide, info.name))
    del g.input[1:]
    x = np.asarray(inputs[0])
    if x.ndim == 0 or x.shape[0] != 1:
        first = g.input[0].name
        g.node.insert(0, helper.make_node("Reshape", ["__x1", "__shape"], [first]))
        g.initializer.append(numpy_helper.from_array(np.array(x.shape, np.int64), "__shape"))
        g.input[0].CopyFrom(helper.make_tensor_value_info("__x1", g.input[0].type.tensor_type.elem_type,
                                                          [1, *x.shape]))
        x = x[None]
    del node_inputs
    return model, x, outputs


#: ops whose map only moves entries: their integer cases are checked too (exactly)
MOVES = {"Pad", "Transpose", "DepthToSpace", "SpaceToDepth", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


@pytest.mark.parametrize("module", CONFORMANCE)
def test_onnx_conformance_cases(module):
    """Every shipped case of an affine op on real data: its expected output, and onnx.reference fed float64."""
    checked = 0
    for case in _conformance_cases(module):
        inputs, outputs = case.data_sets[0]
        x = np.asarray(inputs[0])
        ops = {n.op_type for n in case.model.graph.node}
        if case.name in NOT_AFFINE or x.size == 0 or len(outputs) != 1 or any(
                not isinstance(a, (np.ndarray, np.generic)) for a in inputs):
            continue
        if x.dtype.kind != "f" and not (x.dtype.kind in "iu" and ops <= MOVES):
            continue
        model, x1, _ = _as_graph_of_one_input(case)
        A = cm.from_onnx(model)
        got = A(x1[0].astype(np.float64))
        want = np.asarray(outputs[0])
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=max(case.rtol, 1e-5), atol=case.atol,
                                   err_msg=case.name)
        if module == "averagepool":  # its reference loops over windows in Python (seconds): the expected
            checked += 1             # outputs above and test_onnx_average_pool_random check it instead
            continue
        # onnx.reference fed float64 (float weights as float64 too): the same map to 1e-12 (it computes the cubic
        # coefficients of Resize in float32)
        ref = ReferenceEvaluator(model).run(None, {model.graph.input[0].name: x1.astype(np.float64)})[0]
        cubic = any(a.name == "mode" and a.s == b"cubic" for n in model.graph.node for a in n.attribute)
        _close(got.reshape(ref.shape), ref, rtol=1e-5 if cubic else RTOL, terms=_terms(A, x1[0]))
        checked += 1
    assert checked, f"no affine case in onnx's {module}.py"
