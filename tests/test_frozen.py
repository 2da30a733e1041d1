"""``converge_rules._frozen.frozen`` must behave exactly as ``@dataclass(frozen=True)``.

Each class is built twice from the same body, once by each decorator, and every
behaviour the code relies on is compared: fields, defaults and factories,
``__init__`` signature and errors, repr, equality, hash, frozenness, replace,
asdict, astuple, pickling, copying, ``match``, the class docstring and params.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import sys
from dataclasses import dataclass, field
from typing import ClassVar  # noqa: F401 - lets dataclasses see "ClassVar[int]" below as a class variable

import pytest

from converge_rules import _frozen
from converge_rules._frozen import frozen
from converge_rules.syntax import ast


def _bodies() -> dict[str, dict]:
    """Class bodies (fresh for each build, as a class statement would make them)."""
    return {
        "Plain": {"__annotations__": {"a": "int", "b": "str"}},
        "Empty": {"__annotations__": {}},
        "One": {"__annotations__": {"x": "float"}},
        "WithSpan": {"__annotations__": {"name": "str", "span": "tuple"},
                     "span": field(default=(0, 0), compare=False, repr=False)},
        "Defaults": {"__annotations__": {"a": "int", "b": "int", "c": "list"},
                     "b": 7, "c": field(default_factory=list, compare=False)},
        "HashOpt": {"__annotations__": {"a": "int", "b": "int", "c": "int"},
                    "b": field(default=0, hash=False), "c": field(default=1, compare=False, hash=True)},
        "Documented": {"__annotations__": {"a": "int"}, "__doc__": "A documented class."},
        "ClassVarToo": {"__annotations__": {"a": "int", "K": "ClassVar[int]"}, "K": 3},
        "OwnEq": {"__annotations__": {"v": "object"},
                  "__eq__": lambda self, other: isinstance(other, type(self)) and type(other.v) is type(self.v)
                  and other.v == self.v},
        "OwnEqHash": {"__annotations__": {"v": "object"},
                      "__eq__": lambda self, other: isinstance(other, type(self)) and other.v == self.v,
                      "__hash__": lambda self: 42},
        "OwnRepr": {"__annotations__": {"v": "int"}, "__repr__": lambda self: "custom"},
        "PostInit": {"__annotations__": {"v": "int"},
                     "__post_init__": lambda self: object.__setattr__(self, "seen", self.v * 2)},
    }


def _build(name: str, deco) -> type:
    body = dict(_bodies()[name], __module__=__name__, __qualname__=name)
    if body.get("__eq__") is not None and "__hash__" not in body:
        body["__hash__"] = None  # what a class statement does when __eq__ is defined
    return deco(type(name, (), body))


ARGS = {"Plain": ((1, "x"), {}), "Empty": ((), {}), "One": ((2.5,), {}), "WithSpan": (("n",), {"span": (3, 4)}),
        "Defaults": ((1,), {}), "HashOpt": ((1, 2, 3), {}), "Documented": ((1,), {}), "ClassVarToo": ((5,), {}),
        "OwnEq": ((1,), {}), "OwnEqHash": ((1,), {}), "OwnRepr": ((1,), {}), "PostInit": ((4,), {})}


def _describe(cls: type) -> dict:
    args, kwargs = ARGS[cls.__name__]
    obj, same = cls(*args, **kwargs), cls(*args, **kwargs)
    out = {
        "fields": [(f.name, f.type, f.default, f.default_factory, f.init, f.repr, f.hash, f.compare, f.kw_only)
                   for f in dataclasses.fields(cls)],
        "params": repr(cls.__dataclass_params__),
        "match_args": cls.__match_args__,
        "signature": str(inspect.signature(cls)),
        "init_annotations": cls.__init__.__annotations__,
        "init_qualname": cls.__init__.__qualname__,
        "doc": cls.__doc__.replace(cls.__qualname__, "X") if cls.__doc__ else None,
        "repr": repr(obj).replace(cls.__qualname__, "X"),
        "eq": (obj == same, obj != same, obj == object(), obj.__eq__(object())),
        "hash": cls.__hash__ is None or hash(obj) == hash(same),
        "hash_value": None if cls.__hash__ is None else hash(obj),
        "astuple": dataclasses.astuple(obj),
        "asdict": dataclasses.asdict(obj),
        "is_dataclass": (dataclasses.is_dataclass(cls), dataclasses.is_dataclass(obj)),
        "replace": repr(dataclasses.replace(obj)).replace(cls.__qualname__, "X"),
        "copy": copy.copy(obj) == obj and copy.deepcopy(obj) == obj,
        "dict": dict(vars(obj)),
    }
    for attr in ("a", "zzz"):
        try:
            setattr(obj, attr, 1)
            out[f"set_{attr}"] = "ok"
        except Exception as exc:  # noqa: BLE001 - the exception itself is compared
            out[f"set_{attr}"] = (type(exc).__name__, str(exc))
        try:
            delattr(obj, attr)
            out[f"del_{attr}"] = "ok"
        except Exception as exc:  # noqa: BLE001
            out[f"del_{attr}"] = (type(exc).__name__, str(exc))
    try:
        cls(*args, *range(9))
    except TypeError as exc:
        out["too_many"] = str(exc).replace(cls.__qualname__, "X")
    if dataclasses.fields(cls):
        try:
            cls()
            out["missing"] = "ok"
        except TypeError as exc:
            out["missing"] = str(exc).replace(cls.__qualname__, "X")
    return out


@pytest.mark.parametrize("name", sorted(_bodies()))
def test_same_as_dataclass(name: str) -> None:
    assert _describe(_build(name, frozen)) == _describe(_build(name, dataclass(frozen=True)))


def test_pickle_and_match() -> None:
    v = ast.Var("x")
    assert pickle.loads(pickle.dumps(v)) == v
    atom = ast.Atom("edge", (ast.Var("x"), ast.Const(1)))
    assert pickle.loads(pickle.dumps(atom, protocol=pickle.HIGHEST_PROTOCOL)) == atom
    match atom:
        case ast.Atom(rel, (ast.Var(name), ast.Const(value))):
            assert (rel, name, value) == ("edge", "x", 1)
        case _:
            raise AssertionError("no match")


def test_ast_const_keeps_its_own_eq_and_hash() -> None:
    assert ast.Const(1) != ast.Const(True)
    assert hash(ast.Const(1)) == hash(("int", 1))
    assert ast.Var("x", ast.NO_SPAN if hasattr(ast, "NO_SPAN") else ast.Var("x").span) == ast.Var("x")


def test_frozen_assignment_raises() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ast.Var("x").name = "y"  # type: ignore[misc]


def test_unusual_classes_use_the_real_decorator() -> None:
    base = frozen(type("Base", (), {"__annotations__": {"a": "int"}, "__module__": __name__}))
    sub = frozen(type("Sub", (base,), {"__annotations__": {"b": "int"}, "__module__": __name__}))
    assert [f.name for f in dataclasses.fields(sub)] == ["a", "b"]
    assert sub(1, 2) == sub(1, 2) and sub(1, 2) != sub(1, 3)
    kw = frozen(type("Kw", (), {"__annotations__": {"a": "int"}, "a": field(kw_only=True), "__module__": __name__}))
    assert kw(a=1).a == 1
    with pytest.raises(TypeError):
        kw(1)


def test_no_process_wide_state() -> None:
    assert "dataclasses" in sys.modules and dataclasses.dataclass is dataclass
    assert _frozen._PARAMS.frozen and _frozen._PARAMS.eq and not _frozen._PARAMS.order
