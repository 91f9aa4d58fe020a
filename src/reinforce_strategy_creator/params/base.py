"""The one way a parameter block is declared and validated: a frozen pydantic model.

Every block under ``conf/base/parameters_*.yml`` (``environment``, ``data_ingestion``,
``training``, ...) is one subclass of :class:`Params`: a frozen pydantic v2 model whose fields
carry their documentation as attribute docstrings (like CleanRL's ``Args``), and whose
``PATH`` is the block's dotted path in the parameters. Validation happens once per run
(Kedro builds typed node parameters when the run starts; library callers use
:meth:`Params.parse`); nodes receive the typed object.

Errors: a bad value becomes one :class:`ParameterError` (an :class:`~..errors.InputError`)
whose lines name the parameter by its real dotted path (``deployment.feed.min_rows``, not the
field of some inner class), what was given, what is allowed and where to fix it. Pydantic's
own report is never shown to the user.

Why pydantic and not hand-written checks: typed fields, bounds, unions and nested blocks are
declared once, the docs table is generated from the same declarations (``docs_rows``), and
Kedro 1.7 validates pydantic-typed node parameters itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, PrivateAttr, StrictBool, ValidationError

from ..errors import InputError

__all__ = ["Flag", "Number", "ParameterError", "Params", "PositiveInt", "NonNegativeInt", "reject_bool"]

#: true or false, nothing else ("yes" and 1 are refused).
Flag = StrictBool


class ParameterError(InputError):
    """One or more parameters are missing, unknown or out of range; each line names one."""


def reject_bool(value: Any) -> Any:
    """``True`` is not the number 1 here: a boolean where a number belongs is a mistake."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


def _finite(value: Any) -> Any:
    value = reject_bool(value)
    if isinstance(value, str):
        raise ValueError("must be a number, not text")
    if isinstance(value, (int, float)) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


#: A finite float; ints are accepted, booleans, text and NaN/inf are not.
Number = Annotated[float, BeforeValidator(_finite)]


def _strict_int(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError("must be an integer")
    return value


def _positive_int(value: Any) -> Any:
    value = _strict_int(value)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(value: Any) -> Any:
    value = _strict_int(value)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


PositiveInt = Annotated[int, BeforeValidator(_positive_int)]
NonNegativeInt = Annotated[int, BeforeValidator(_non_negative_int)]


def _loc(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        elif str(p).startswith(("function-", "constrained-")):
            continue  # pydantic's name for an annotated validator, not a parameter
        else:
            parts.append(str(p))
    return ".".join(parts)


def _model_type(ann: Any) -> type | None:
    """The pydantic model in an annotation (``Block``, ``Block | None``), or None."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in get_args(ann):
        found = _model_type(arg)
        if found is not None:
            return found
    return None


def _model_at(model: type, loc: tuple) -> type | None:
    """The Params class that owns the last key of ``loc`` (for listing the allowed keys)."""
    for p in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(p) if isinstance(p, str) else None
        model = _model_type(getattr(field, "annotation", None))
        if model is None:
            return None
    return model


def _message(err: Mapping[str, Any], model: type | None = None) -> str:
    msg = str(err.get("msg", "is invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if err.get("type") == "extra_forbidden":
        loc = tuple(err.get("loc", ()))
        owner = _model_at(model, loc) if model is not None else None
        moved = getattr(owner, "MOVED", {}).get(loc[-1]) if loc else None
        if moved:
            return f"no longer a parameter here: {moved}"
        allowed = sorted(owner.model_fields) if owner is not None else None
        return "unknown parameter" + (f"; allowed parameters are {allowed}" if allowed else "")
    if err.get("type") == "missing":
        return "missing parameter"
    return msg


def _fix(err: Mapping[str, Any], where: str, file: str, model: type) -> str:
    """What to do about one error, a hint the user can follow as written: ``--params`` sets one
    parameter to a value; it can neither remove a key nor set a whole block."""
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "extra_forbidden":
        return f"Remove {where} from {file} (or from the command's --params)."
    owner = _model_at(model, loc) if loc else None
    field = getattr(owner, "model_fields", {}).get(loc[-1]) if loc else None
    if field is None or _model_type(field.annotation) is not None:  # a rule across a block's keys
        return f"Fix it in {file}."
    return f"Fix it in {file} or with --params {where}=<value>."


class Params(BaseModel):
    """Base of every parameter block; see the module docstring."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        arbitrary_types_allowed=False,
        validate_default=True,
    )

    #: Dotted path of the block in the parameters (``"environment"``, ``"training.ppo"``...).
    PATH: ClassVar[str] = ""
    #: The file that holds the block, named in error messages.
    FILE: ClassVar[str] = "conf/base/parameters.yml"
    #: Keys that used to be parameters of the block, and where their value lives now: such a key
    #: is refused like an unknown one, with that place named.
    MOVED: ClassVar[dict[str, str]] = {}

    _path: str | None = PrivateAttr(default=None)

    @property
    def path(self) -> str:
        """Where this block lives in the parameters (``deployment.feed`` for a nested block)."""
        return self._path or self.PATH

    def _set_paths(self, path: str) -> None:
        self._path = path
        for name in type(self).model_fields:
            child = getattr(self, name)
            if isinstance(child, Params):
                child._set_paths(f"{path}.{name}" if path else name)

    @classmethod
    def parse(cls, raw: Any, path: str | None = None):
        """Validate ``raw`` (a mapping, or already an instance) into the model, or raise one
        :class:`ParameterError` naming every bad parameter by its dotted path."""
        if isinstance(raw, cls):
            return raw
        path = cls.PATH if path is None else path
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ParameterError(
                f"{path}: expected a mapping of parameters, got {type(raw).__name__} {raw!r}. "
                f"Fix it in {cls.FILE}."
            )
        try:
            obj = super().model_validate(dict(raw))
        except ValidationError as exc:
            raise cls.error_from(exc, path, raw) from None
        obj._set_paths(path)
        return obj

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any):  # Kedro builds typed parameters with this
        if args or kwargs:
            return super().model_validate(obj, *args, **kwargs)
        return cls.parse(obj)

    @classmethod
    def error_from(cls, exc: ValidationError, path: str, raw: Any = None) -> ParameterError:
        file = cls.FILE
        if path.split(".")[0] != cls.PATH.split(".")[0] and path:  # a block reused elsewhere
            file = f"conf/base/parameters_{path.split('.')[0]}.yml"
        errors = exc.errors(include_url=False)
        wheres = [".".join(p for p in (path, _loc(err.get("loc", ()))) if p) for err in errors]
        lines = []
        for err, where in zip(errors, wheres):
            value = err.get("input")
            got = (
                ""
                if err.get("type") in ("missing", "extra_forbidden") or isinstance(value, Mapping)
                else (f" (got {value!r})")
            )
            lines.append(f"{where}: {_message(err, cls)}{got}")
        return ParameterError("; ".join(lines) + f". {_fix(errors[0], wheres[0], file, cls)}")

    def replace(self, **changes: Any):
        """A validated copy with ``changes`` applied (like ``dataclasses.replace``)."""
        return type(self).parse({**self.to_params(), **changes}, self.path)

    def to_params(self) -> dict[str, Any]:
        """Plain JSON-able dict that :meth:`parse` accepts back (tuples as lists)."""
        return _plain(self.model_dump(mode="python"))

    @classmethod
    def docs_rows(cls, path: str | None = None) -> Iterator[tuple[str, Any, str]]:
        """``(dotted name, default, description)`` of every field, nested blocks expanded."""
        path = cls.PATH if path is None else path
        for name, field in cls.model_fields.items():
            ann = field.annotation
            dotted = f"{path}.{name}" if path else name
            if isinstance(ann, type) and issubclass(ann, Params):
                yield from ann.docs_rows(dotted)
                continue
            default = field.get_default(call_default_factory=True)
            if isinstance(default, Params):
                default = default.to_params()
            yield dotted, _plain(default), " ".join((field.description or "").split())


def _plain(obj: Any) -> Any:
    if isinstance(obj, Params):
        return obj.to_params()
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
