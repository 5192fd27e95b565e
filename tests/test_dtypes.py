"""DType objects (tensorlite.float32 ...), PyTorch's dtype names, the legacy typed constructors and type().

A DType prints as PyTorch's dtype does and stands for a NumPy dtype everywhere else: it compares and
hashes equal to it, and NumPy takes it as a dtype.
"""
import copy
import pickle

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.dtypes import DType, as_dtype

NAMES = {  # tensorlite name: (NumPy dtype, itemsize, floating, signed)
    "float16": ("float16", 2, True, True), "float32": ("float32", 4, True, True),
    "float64": ("float64", 8, True, True), "int8": ("int8", 1, False, True), "int16": ("int16", 2, False, True),
    "int32": ("int32", 4, False, True), "int64": ("int64", 8, False, True), "uint8": ("uint8", 1, False, False),
    "bool": ("bool", 1, False, False),
}
ALIASES = {"half": "float16", "float": "float32", "double": "float64", "short": "int16", "int": "int32",
           "long": "int64", "bool_": "bool"}


@pytest.mark.parametrize("name", sorted(NAMES))
def test_dtype_prints_as_pytorch_and_stands_for_numpys(name):
    np_name, itemsize, floating, signed = NAMES[name]
    d = getattr(tl, name)
    assert isinstance(d, DType) and isinstance(d, tl.dtype)
    assert repr(d) == str(d) == f"tensorlite.{name}" and f"{d}" == f"tensorlite.{name}"
    assert d == np.dtype(np_name) and np.dtype(np_name) == d and d == getattr(np, np_name if name != "bool" else "bool_")
    assert hash(d) == hash(np.dtype(np_name)) and {np.dtype(np_name): 1}[d] == 1 and {d: 1}[np.dtype(np_name)] == 1
    assert d.itemsize == itemsize and d.is_floating_point == floating and d.is_signed == signed and not d.is_complex
    assert d.kind == np.dtype(np_name).kind and d.type is np.dtype(np_name).type  # NumPy's attributes, forwarded
    # NumPy accepts it wherever a dtype goes
    assert np.dtype(d) == np_name and np.zeros(2, dtype=d).dtype == np_name and np.zeros(2, d).dtype == np_name
    assert np.arange(3).astype(d).dtype == np_name and np.asarray([1], dtype=d).dtype == np_name
    assert np.empty(0, d).dtype == np_name and np.promote_types(d, np.int8) == np.promote_types(np_name, np.int8)
    assert np.issubdtype(d, np.floating) == floating
    assert pickle.loads(pickle.dumps(d)) is d and copy.deepcopy(d) is d


@pytest.mark.parametrize("alias, name", sorted(ALIASES.items()))
def test_pytorch_aliases(alias, name):
    assert getattr(tl, alias) is getattr(tl, name)


def test_comparisons_that_are_not_equal():
    assert tl.float32 != tl.float64 and tl.float32 != np.float64 and tl.int64 != tl.int32
    assert tl.float64 != None  # noqa: E711 (np.dtype(None) would be float64)
    assert tl.float32 != "no such dtype" and tl.float32 != 3.5
    assert tl.float32 in (np.float32, np.float64) and tl.int64 not in (tl.float32, tl.bool)


def test_builtins_are_not_shadowed_outside_the_package():
    assert tl.int is tl.int32 and tl.float is tl.float32 and tl.bool is tl.bool_
    assert int("3") == 3 and float("2.5") == 2.5 and bool(1) is True  # this module's builtins are intact


def test_no_bfloat16_and_default_dtype():
    with pytest.raises(AttributeError, match="bfloat16"):
        tl.bfloat16  # NumPy has no bfloat16: absent rather than a float32 in disguise
    assert tl.get_default_dtype() is tl.float32


def test_tensor_dtype_is_the_dtype_object():
    t = tl.ones(2, 3)
    assert t.dtype is tl.float32 and t.dtype == np.float32 and t.dtype == t.data.dtype
    assert tl.tensor([1, 2]).dtype is tl.int64 and tl.tensor([True]).dtype is tl.bool
    assert tl.tensor(np.zeros(2, np.uint16)).dtype is tl.uint16
    odd = tl.Tensor(np.zeros(2, ">f4"))  # a NumPy dtype without a PyTorch name still gets a DType
    assert odd.dtype == np.dtype(">f4") and isinstance(odd.dtype, DType)
    assert as_dtype("float32") is tl.float32 and as_dtype(np.int64) is tl.int64
    for d in (tl.float16, tl.float64, tl.int8, tl.int32, tl.uint8):
        assert tl.zeros(2, dtype=d).dtype is d and tl.ones(2).to(d).dtype is d
    assert tl.ones(2).double().dtype is tl.float64 and tl.ones(2).long().dtype is tl.long


def test_dtype_objects_work_through_the_library():
    x = tl.randn(3, 4, dtype=tl.float64, requires_grad=True)
    y = (x * 2 + tl.ones(3, 4, dtype=tl.float64)).sum()
    y.backward()
    assert x.grad.dtype is tl.float64 and y.dtype is tl.float64
    assert (tl.arange(4) * 2.5).dtype is tl.float32 and (tl.arange(4) + 1).dtype is tl.int64
    assert tl.full((2,), 3, dtype=tl.int16).dtype is tl.int16
    model = tl.nn.Linear(4, 2).to(dtype=tl.float64)
    assert model.weight.dtype is tl.float64 and model(x).dtype is tl.float64


def test_tensor_methods():
    assert tl.ones(2).is_floating_point() and not tl.ones(2, dtype=tl.int64).is_floating_point()
    assert tl.ones(2).element_size() == 4 and tl.ones(2, dtype=tl.float16).element_size() == 2
    assert tl.ones(2).type() == "tensorlite.FloatTensor" and tl.tensor([1]).type() == "tensorlite.LongTensor"
    assert tl.tensor([True]).type() == "tensorlite.BoolTensor" and tl.ones(1).half().type() == "tensorlite.HalfTensor"
    assert tl.tensor([1.7]).type("tensorlite.LongTensor").tolist() == [1]
    assert tl.tensor([1.7]).type("torch.IntTensor").dtype is tl.int32  # PyTorch's spelling is accepted too
    assert tl.tensor([1.7]).type(tl.LongTensor).dtype is tl.int64 and tl.tensor([1.5]).type(tl.float64).dtype is tl.float64
    with pytest.raises(ValueError, match="invalid type"):
        tl.ones(2).type("foo")


def test_tensor_constructor_makes_python_data_float32_as_pytorch():
    assert tl.Tensor([1, 2]).dtype is tl.float32 and repr(tl.Tensor([1, 2])) == "tensor([1., 2.])"
    assert tl.Tensor([True, False]).dtype is tl.float32
    assert tl.tensor([1, 2]).dtype is tl.int64  # tensorlite.tensor() infers, as torch.tensor()
    assert tl.Tensor(np.arange(3)).dtype is tl.int64  # arrays keep their dtype (and memory): see Tensor.__init__
    assert tl.Tensor([1, 2], dtype=tl.int32).dtype is tl.int32


@pytest.mark.parametrize("ctor, dtype", [("FloatTensor", "float32"), ("DoubleTensor", "float64"),
                                         ("HalfTensor", "float16"), ("LongTensor", "int64"), ("IntTensor", "int32"),
                                         ("ShortTensor", "int16"), ("CharTensor", "int8"), ("ByteTensor", "uint8"),
                                         ("BoolTensor", "bool")])
def test_typed_constructors(ctor, dtype):
    make, d = getattr(tl, ctor), getattr(tl, dtype)
    t = make([1, 0, 2])
    assert type(t) is tl.Tensor and isinstance(t, tl.Tensor) and isinstance(t, make) and t.dtype is d
    assert make(2, 3).shape == (2, 3) and make(2, 3).dtype is d and make().shape == (0,)
    assert make(tl.tensor([1, 0])).dtype is d and t.type() == f"tensorlite.{ctor}"
    assert repr(make) == f"<class 'tensorlite.{ctor}'>"


def test_typed_constructor_values_and_isinstance():
    assert tl.LongTensor([1.7, -2.5]).tolist() == [1, -2]  # truncates, as PyTorch
    assert tl.BoolTensor([2, 0]).tolist() == [True, False]
    assert repr(tl.LongTensor([1, 5, 3, 2])) == "tensor([1, 5, 3, 2])"
    assert isinstance(tl.tensor([1]), tl.LongTensor) and not isinstance(tl.tensor([1.0]), tl.LongTensor)
    with pytest.raises(TypeError, match="LongTensor"):
        tl.LongTensor([1], [2])


def test_backends():
    assert tl.backends.mps.is_available() is False and tl.backends.mps.is_built() is False
    assert tl.backends.cudnn.is_available() is False
    tl.backends.cudnn.benchmark = True  # tutorials set it; it changes nothing here
    tl.backends.cudnn.benchmark = False


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    for name in list(NAMES) + list(ALIASES):
        if name == "bool_":
            continue
        td, ld = getattr(torch, name), getattr(tl, name)
        assert str(td).replace("torch.", "tensorlite.") == str(ld), name
        assert (td.itemsize, td.is_floating_point, td.is_signed) == (ld.itemsize, ld.is_floating_point, ld.is_signed)
    for data in ([1, 2], [1.5], [True]):
        assert torch.Tensor(data).dtype.itemsize == tl.Tensor(data).dtype.itemsize == 4
        assert str(torch.tensor(data).dtype).replace("torch", "tensorlite") == str(tl.tensor(data).dtype)
        assert torch.tensor(data).type().replace("torch", "tensorlite") == tl.tensor(data).type()
    assert repr(torch.Size([4, 3, 2])).replace("torch", "tensorlite") == repr(tl.zeros(4, 3, 2).shape)
