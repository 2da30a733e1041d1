"""``frozen``: ``@dataclass(frozen=True)`` that costs less at import.

Why: the CLI's start-up was dominated by creating ~60 frozen dataclasses.
``dataclasses`` compiles the source of six methods per class (``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``),
one ``exec`` each. Here the standard decorator still does all the field
processing (``__dataclass_fields__``, ``__match_args__``, defaults,
validation) but with every generated method turned off, so it compiles
nothing; ``__init__`` is then compiled once from the same source
``dataclasses`` would write (same signature, annotations, defaults, error
messages and speed), and the other five methods are closures with the
semantics of the generated ones (tuple equality and hash over the compared
fields, the same repr text, ``FrozenInstanceError`` on assignment and
deletion). ``__dataclass_params__`` is that of a real
``@dataclass(frozen=True)`` class, so ``dataclasses.fields``, ``replace``,
``asdict``, ``astuple``, ``is_dataclass``, pickling, copying and ``match``
all behave as with the standard decorator.

Anything unusual (a dataclass base class, ``InitVar``, ``KW_ONLY``,
``kw_only`` or ``init=False`` fields, ``__slots__``, a class defining
``__setattr__``/``__delattr__``) goes to ``@dataclass(frozen=True)`` itself.
No process-wide state is touched: nothing in ``dataclasses`` is patched.
"""

import inspect
import sys
from dataclasses import MISSING, Field, FrozenInstanceError, dataclass, fields
from operator import attrgetter
from reprlib import recursive_repr
from typing import Any, Callable, TypeVar

# No "from __future__ import annotations" here: the generated __init__ must hold the
# annotation objects themselves, as dataclasses' does.
T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class _Prototype:
    """Only its ``__dataclass_params__`` is used: those of ``@dataclass(frozen=True)``."""


_PARAMS = _Prototype.__dataclass_params__


class _HasDefaultFactory:
    """The default of a parameter whose field has a ``default_factory`` (shown as ``<factory>``, as in dataclasses)."""

    def __repr__(self) -> str:
        return "<factory>"


_HAS_DEFAULT_FACTORY = _HasDefaultFactory()


def _standard(cls: type) -> bool:
    """True when ``cls`` needs features this module does not reproduce (so the real decorator runs)."""
    if any("__dataclass_fields__" in b.__dict__ for b in cls.__mro__[1:]):
        return True
    d = cls.__dict__
    if "__setattr__" in d or "__delattr__" in d or "__slots__" in d:
        return True
    for name, ann in d.get("__annotations__", {}).items():
        text = ann if isinstance(ann, str) else repr(ann)
        if "InitVar" in text or "KW_ONLY" in text:
            return True
        value = d.get(name)
        if isinstance(value, Field) and (not value.init or value.kw_only is True):
            return True
    return False


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple]:
    """A function giving ``(obj.a, obj.b, ...)``: the tuple dataclasses compare and hash."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)


def _name(cls: type, fn: Any, name: str) -> Any:
    fn.__name__ = name
    fn.__qualname__ = f"{cls.__qualname__}.{name}"
    fn.__module__ = cls.__module__
    return fn


def _init_fn(cls: type, flds: tuple[Field, ...], globals_: dict) -> Any:
    """``__init__`` compiled from the source ``dataclasses`` generates for a frozen class."""
    locals_: dict[str, Any] = {f"_type_{f.name}": f.type for f in flds}
    locals_.update({"MISSING": MISSING, "_HAS_DEFAULT_FACTORY": _HAS_DEFAULT_FACTORY,
                    "__dataclass_builtins_object__": object, "_return_type": None})
    params, body, seen_default = ["self"], [], False
    for f in flds:
        if f.default_factory is not MISSING:
            locals_[f"_dflt_{f.name}"] = f.default_factory
            params.append(f"{f.name}:_type_{f.name}=_HAS_DEFAULT_FACTORY")
            value = f"_dflt_{f.name}() if {f.name} is _HAS_DEFAULT_FACTORY else {f.name}"
            seen_default = True
        elif f.default is not MISSING:
            locals_[f"_dflt_{f.name}"] = f.default
            params.append(f"{f.name}:_type_{f.name}=_dflt_{f.name}")
            value = f.name
            seen_default = True
        else:
            if seen_default:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
            params.append(f"{f.name}:_type_{f.name}")
            value = f.name
        body.append(f"  __dataclass_builtins_object__.__setattr__(self,{f.name!r},{value})")
    if hasattr(cls, "__post_init__"):
        body.append("  self.__post_init__()")
    txt = (f"def __create_fn__({', '.join(locals_)}):\n def __init__({','.join(params)})->_return_type:\n"
           + ("\n".join(body) or "  pass") + "\n return __init__")
    ns: dict[str, Any] = {}
    exec(compile(txt, "<string>", "exec", dont_inherit=True), globals_, ns)  # no __future__ flags: real annotations
    fn = ns["__create_fn__"](**locals_)
    fn.__qualname__ = f"{cls.__qualname__}.__init__"
    return fn


def frozen(cls: T) -> T:
    """Make ``cls`` a frozen dataclass, exactly as ``@dataclass(frozen=True)`` would, but faster to create."""
    if _standard(cls):
        return dataclass(frozen=True)(cls)
    d = cls.__dict__
    class_hash = d.get("__hash__", MISSING)
    explicit_hash = not (class_hash is MISSING or (class_hash is None and "__eq__" in d))
    had_doc = bool(d.get("__doc__"))
    if not had_doc:
        cls.__doc__ = "-"  # computed below, once __init__ exists (dataclasses would use object's signature now)
    # Field processing only: no method is generated, so nothing is compiled.
    dataclass(init=False, repr=False, eq=False)(cls)
    cls.__dataclass_params__ = _PARAMS
    flds = fields(cls)
    names = tuple(f.name for f in flds)
    globals_ = sys.modules[cls.__module__].__dict__ if cls.__module__ in sys.modules else {}

    if "__init__" not in d:
        cls.__init__ = _init_fn(cls, flds, globals_)

    if "__repr__" not in d:
        repr_names = tuple(f.name for f in flds if f.repr)

        def __repr__(self: Any) -> str:
            return (self.__class__.__qualname__ + "("
                    + ", ".join([f"{n}={getattr(self, n)!r}" for n in repr_names]) + ")")

        cls.__repr__ = _name(cls, recursive_repr()(__repr__), "__repr__")

    if "__eq__" not in d:
        compared = _tuple_getter(tuple(f.name for f in flds if f.compare))

        def __eq__(self: Any, other: Any) -> Any:
            if other.__class__ is self.__class__:
                return compared(self) == compared(other)
            return NotImplemented

        cls.__eq__ = _name(cls, __eq__, "__eq__")

    if not explicit_hash:
        hashed = _tuple_getter(tuple(f.name for f in flds if (f.compare if f.hash is None else f.hash)))

        def __hash__(self: Any) -> int:
            return hash(hashed(self))

        cls.__hash__ = _name(cls, __hash__, "__hash__")

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    cls.__setattr__ = _name(cls, __setattr__, "__setattr__")
    cls.__delattr__ = _name(cls, __delattr__, "__delattr__")

    if not had_doc:
        cls.__doc__ = cls.__name__ + _text_signature(cls, flds)
    return cls


def _text_signature(cls: type, flds: tuple[Field, ...]) -> str:
    """What ``str(inspect.signature(cls))`` gives (without `` -> None``), the text of the docstring
    dataclasses writes; built directly when every annotation is a string (``from __future__ import
    annotations``), which is the common case and spares ``inspect`` its work."""
    if not all(isinstance(f.type, str) for f in flds):
        try:
            return str(inspect.signature(cls)).replace(" -> None", "")
        except (TypeError, ValueError):
            return ""
    parts = []
    for f in flds:
        if f.default_factory is not MISSING:
            parts.append(f"{f.name}: {f.type!r} = <factory>")
        elif f.default is not MISSING:
            parts.append(f"{f.name}: {f.type!r} = {f.default!r}")
        else:
            parts.append(f"{f.name}: {f.type!r}")
    return "(" + ", ".join(parts) + ")"
