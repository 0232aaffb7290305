"""A Hydra config node from a class's or function's signature: every keyword argument, its default and its type.

The signature is the one source of truth for a default: the node lists it, ``--cfg job`` shows it, and a plain
``key=value`` sets it (typed: ``data.batch_size=abc`` fails at composition, naming the key). A class whose
``__init__`` forwards ``**kwargs`` to its parent also gets the parent's arguments (walking the MRO while the chain of
``**kwargs`` lasts), minus the ones the subclass fixes itself (``exclude``).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
import typing
from collections.abc import Callable
from typing import Any

from hydra_zen import ZenField, builds, make_config
from omegaconf import MISSING


def signature_parameters(target: Callable, exclude: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """``{name: (type hint, default)}`` of ``target``'s keyword arguments, the ``**kwargs`` chain's included.

    Along the chain, an argument a subclass passes to ``super().__init__`` itself is fixed (not a setting), and a
    ``kwargs.setdefault("key", literal)`` in a subclass is that argument's default there.
    """
    found: dict[str, tuple[Any, Any]] = {}
    fixed, new_defaults = set(exclude), {}
    for function in _signature_chain(target):
        hints = typing.get_type_hints(function)
        for p in inspect.signature(function).parameters.values():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name == "self" or p.name in fixed | set(found):
                continue
            default = MISSING if p.default is p.empty else new_defaults.get(p.name, p.default)
            found[p.name] = (_optional(hints.get(p.name, Any)), default)
        passed, defaults = _forwarding(function)
        fixed |= passed
        new_defaults = {**defaults, **new_defaults}  # the most derived class's setdefault wins
    return found


def _forwarding(function: Callable) -> tuple[set[str], dict[str, Any]]:
    """The keywords ``function`` passes to ``super().__init__`` by name, and its ``kwargs.setdefault`` literals."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError):
        return set(), {}
    passed, defaults = set(), {}
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
        owner = call.func.value
        if call.func.attr == "__init__" and isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "super":
            passed |= {k.arg for k in call.keywords if k.arg is not None}
        elif call.func.attr == "setdefault" and getattr(owner, "id", "") == "kwargs" and len(call.args) == 2:
            defaults[ast.literal_eval(call.args[0])] = ast.literal_eval(call.args[1])
    return passed, defaults


def _signature_chain(target: Callable) -> list[Callable]:
    if not isinstance(target, type):
        return [target]
    chain = []
    for klass in target.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        chain.append(init)
        if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            break
    return chain


def _optional(hint: Any) -> Any:
    """``int | None`` -> ``Optional[int]``, which OmegaConf validates (a bare ``X | Y`` would become ``Any``).

    An optional mapping (``dict[str, Any] | None``, e.g. ``model.lora``) becomes ``Any``: OmegaConf cannot merge a
    command-line dict into a typed dict node whose value is None (``model.lora={r: 8}`` would fail).
    """
    if isinstance(hint, types.UnionType):
        if any(typing.get_origin(arg) is dict or arg is dict for arg in hint.__args__):
            return Any
        return typing.Union[hint.__args__]  # noqa: UP007 - OmegaConf needs typing.Union, not X | Y
    return hint


def node(
    target: Callable,
    exclude: tuple[str, ...] = (),
    partial: bool = False,
    defaults: list[Any] | None = None,
    **bindings: Any,
) -> type:
    """A structured config for ``target`` listing every argument but ``exclude`` (those are passed at run time).

    ``bindings`` are what this config option sets (a group's choice, an interpolation such as ``"${seed}"``); each
    must be an argument of ``target``, so a renamed argument fails here instead of silently adding a key.
    """
    params = signature_parameters(target, exclude)
    unknown = sorted(set(bindings) - set(params))
    if unknown:
        raise TypeError(f"{_name(target)} has no argument(s) {unknown}; it takes {sorted(params)}")
    fields = {name: ZenField(hint=hint, default=bindings.get(name, default))
              for name, (hint, default) in params.items()}
    head = builds(target, zen_partial=True) if partial else builds(target)  # _target_ (and _partial_) first
    return make_config(**fields, bases=(head,), hydra_defaults=defaults, zen_dataclass={"cls_name": _title(target)})

def _name(target: Callable) -> str:
    return f"{target.__module__}.{target.__qualname__}"


def _title(target: Callable) -> str:
    return "".join(part[:1].upper() + part[1:] for part in target.__name__.split("_")) + "Config"
