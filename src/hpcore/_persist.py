"""Samplers and pruners as JSON: class + constructor arguments, stored with a study.

A stored study records ``{"class": "module:QualName", "params": {...}}`` for its sampler
and pruner, so :func:`hpcore.load_study` rebuilds the same algorithm.  ``params`` come
from the object's ``get_params()`` (by default: every constructor argument read back
from the attribute of the same name) and must survive a JSON round trip.
"""
from __future__ import annotations

import importlib
import inspect
import json
from typing import Any

__all__ = ["constructor_params", "to_config", "from_config", "same_config"]


def constructor_params(obj: Any) -> dict[str, Any]:
    """Every named argument of ``type(obj).__init__``, read from ``obj.<name>``.

    Raises ``NotImplementedError`` naming the argument when the object does not keep it
    under that name (the class must then override ``get_params``).
    """
    sig = inspect.signature(type(obj).__init__)
    out: dict[str, Any] = {}
    for name, p in sig.parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not hasattr(obj, name):
            raise NotImplementedError(
                f"{type(obj).__name__}.get_params: constructor argument {name!r} is not kept as "
                f"attribute {name!r}; override get_params()")
        out[name] = getattr(obj, name)
    return out


def _jsonable(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: not JSON-serializable ({exc})") from None


def to_config(obj: Any) -> dict[str, Any]:
    """``{"class": "module:QualName", "params": obj.get_params()}`` (JSON-ready)."""
    cls = type(obj)
    where = f"{cls.__name__}.get_params()"
    params = obj.get_params()
    if not isinstance(params, dict):
        raise TypeError(f"{where} must return a dict, got {type(params).__name__}")
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "params": _jsonable(params, where)}


def from_config(config: dict[str, Any], base: type) -> Any:
    """Rebuild an object from :func:`to_config`'s output; it must be a ``base``.

    Raises ``ValueError`` when the class cannot be imported or refuses its arguments.
    """
    if not isinstance(config, dict) or "class" not in config:
        raise ValueError(f"not a stored {base.__name__} config: {config!r}")
    path = config["class"]
    mod_name, _, qual = str(path).partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"stored {base.__name__} {path!r} cannot be imported: {exc}") from None
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise ValueError(f"stored {base.__name__} {path!r} is not a {base.__name__}")
    try:
        return obj(**dict(config.get("params") or {}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"stored {base.__name__} {path!r} refused its arguments: {exc}") from None


def same_config(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two configs (as stored: JSON round-tripped) describe the same object."""
    return json.dumps(a, sort_keys=True, allow_nan=True) == json.dumps(b, sort_keys=True,
                                                                       allow_nan=True)


def resolve_algorithms(storage: Any, study_id: int, name: str, sampler: Any, pruner: Any,
                       seed: int | None) -> tuple[Any, Any]:
    """The sampler and pruner a study runs with, reconciled with the stored ones.

    - none given: rebuild the stored one (a study that stored none -- new, or written
      before samplers were stored -- gets ``RandomSampler(seed=seed)`` / ``NopPruner()``);
    - one given that differs from the stored one: use it, with a ``UserWarning`` naming
      both (the stored record is kept: it describes how the study was created);
    - nothing stored yet: store the one in use (unless the storage is read-only).
    """
    import warnings

    from hpcore.pruners.base import BasePruner, NopPruner
    from hpcore.samplers.base import BaseSampler
    from hpcore.samplers.random import RandomSampler

    stored_s, stored_p = storage.get_study_algorithms(study_id)
    out = []
    new_cfg: list[dict | None] = [None, None]
    for i, (given, stored, base, default, what) in enumerate((
            (sampler, stored_s, BaseSampler, lambda: RandomSampler(seed=seed), "sampler"),
            (pruner, stored_p, BasePruner, NopPruner, "pruner"))):
        obj = given
        if given is None and stored is not None:
            try:
                obj = from_config(stored, base)
            except ValueError as exc:
                warnings.warn(f"study {name!r}: {exc}; using {default()!r} instead",
                              UserWarning, stacklevel=4)
            else:
                if i == 0 and seed is not None and getattr(obj, "seed", seed) != seed:
                    warnings.warn(f"study {name!r}: seed={seed} is ignored: the stored sampler "
                                  f"{obj!r} is rebuilt with its own seed (pass sampler= to "
                                  "change it)", UserWarning, stacklevel=4)
        if obj is None:
            obj = default()
        try:
            cfg = to_config(obj)
        except (NotImplementedError, TypeError) as exc:
            warnings.warn(f"study {name!r}: the {what} {type(obj).__name__} cannot be stored, so "
                          f"a resumed study will not rebuild it: {exc}", UserWarning, stacklevel=4)
            cfg = None
        if given is not None and stored is not None and cfg is not None and not same_config(cfg, stored):
            warnings.warn(f"study {name!r} was created with {what} {_describe(stored)}; running it "
                          f"with the {what} given, {_describe(cfg)}", UserWarning, stacklevel=4)
        if stored is None:
            new_cfg[i] = cfg
        out.append(obj)
    if (new_cfg[0] is not None or new_cfg[1] is not None) and not storage.read_only:
        storage.set_study_algorithms(study_id, new_cfg[0], new_cfg[1])
    return out[0], out[1]


def _describe(cfg: dict[str, Any]) -> str:
    cls = str(cfg.get("class", "?")).rpartition(":")[2]
    args = ", ".join(f"{k}={v!r}" for k, v in (cfg.get("params") or {}).items())
    return f"{cls}({args})"
