"""``frozen``: ``@dataclass(frozen=True)`` that costs less at import.

Why: the CLI's start-up was dominated by creating ~60 frozen dataclasses.
``dataclasses`` compiles the source of six methods per class (``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``),
one ``compile``/``exec`` each. Here the standard decorator still does all the
field processing (``__dataclass_fields__``, ``__match_args__``, defaults,
validation) but with every generated method turned off, so it compiles
nothing; then ``__init__``, ``__repr__``, ``__eq__`` and ``__hash__`` are
compiled in ONE go from the same source ``dataclasses`` would write (same
signatures, annotations, defaults, error messages and speed), and
``__setattr__``/``__delattr__`` (error paths only: ``__init__`` assigns with
``object.__setattr__``) are closures with the generated ones' behaviour
(``FrozenInstanceError``). ``__dataclass_params__`` is that of a real
``@dataclass(frozen=True)`` class, so ``dataclasses.fields``, ``replace``,
``asdict``, ``astuple``, ``is_dataclass``, pickling, copying and ``match``
all behave as with the standard decorator. Class docstrings (for classes
without one) are the same text dataclasses writes.

Anything unusual (a dataclass base class, ``InitVar``, ``KW_ONLY``,
``kw_only`` or ``init=False`` fields, ``__slots__``, a class defining
``__setattr__``/``__delattr__``) goes to ``@dataclass(frozen=True)`` itself.
No process-wide state is touched: nothing in ``dataclasses`` is patched.
"""

import inspect
import sys
from dataclasses import MISSING, Field, FrozenInstanceError, dataclass, fields
from reprlib import recursive_repr
from typing import Any, TypeVar

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


def _name(cls: type, fn: Any, name: str) -> Any:
    fn.__name__ = name
    fn.__qualname__ = f"{cls.__qualname__}.{name}"
    fn.__module__ = cls.__module__
    return fn


def _tuple_str(obj: str, names: list[str]) -> str:
    """``(obj.a,obj.b,)``, as dataclasses writes it (``()`` for no fields)."""
    return f"({','.join(f'{obj}.{n}' for n in names)},)" if names else "()"


def _methods(cls: type, flds: tuple[Field, ...], globals_: dict, wanted: tuple[str, ...]) -> dict[str, Any]:
    """The ``wanted`` methods among ``__init__``, ``__repr__``, ``__eq__`` and ``__hash__``, from the
    source ``dataclasses`` generates for a frozen class, compiled in one go (it compiles one per method)."""
    locals_: dict[str, Any] = {f"_type_{f.name}": f.type for f in flds}
    locals_.update({"MISSING": MISSING, "_HAS_DEFAULT_FACTORY": _HAS_DEFAULT_FACTORY,
                    "__dataclass_builtins_object__": object, "_return_type": None})
    src: list[str] = []
    if "__init__" in wanted:
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
        src.append(f" def __init__({','.join(params)})->_return_type:\n" + ("\n".join(body) or "  pass"))
    if "__repr__" in wanted:
        shown = ", ".join(f"{f.name}={{self.{f.name}!r}}" for f in flds if f.repr)
        src.append(f' def __repr__(self):\n  return self.__class__.__qualname__ + f"({shown})"')
    if "__eq__" in wanted:
        compared = [f.name for f in flds if f.compare]
        src.append(" def __eq__(self,other):\n  if other.__class__ is self.__class__:\n"
                   f"   return {_tuple_str('self', compared)}=={_tuple_str('other', compared)}\n  return NotImplemented")
    if "__hash__" in wanted:
        hashed = [f.name for f in flds if (f.compare if f.hash is None else f.hash)]
        src.append(f" def __hash__(self):\n  return hash({_tuple_str('self', hashed)})")
    txt = (f"def __create_fn__({', '.join(locals_)}):\n" + "\n".join(src)
           + f"\n return ({''.join(name + ',' for name in wanted)})")
    ns: dict[str, Any] = {}
    exec(compile(txt, "<string>", "exec", dont_inherit=True), globals_, ns)  # no __future__ flags: real annotations
    out = dict(zip(wanted, ns["__create_fn__"](**locals_)))
    for name, fn in out.items():
        fn.__qualname__ = f"{cls.__qualname__}.{name}"
    if "__repr__" in out:
        out["__repr__"] = recursive_repr()(out["__repr__"])
    return out


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

    wanted = tuple(name for name in ("__init__", "__repr__", "__eq__") if name not in d)
    if not explicit_hash:
        wanted += ("__hash__",)
    for name, fn in _methods(cls, flds, globals_, wanted).items():
        setattr(cls, name, fn)

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
