"""The search space: declared once, here, as plain data; overridable from YAML; sampled by Optuna.

The space is a mapping of *sections* to *parameters*. Each parameter is one of

- a list: a categorical choice, e.g. ``[lstm, gan]`` or ``[16, 32, 64]``;
- a mapping ``{low, high, log?, step?}``: an integer range when ``low``/``high`` are integers,
  otherwise a float range (``log: true`` samples on a log scale);
- a scalar: a fixed value (recorded in every trial's config, not searched).

Sections and their meaning:

``features``
    ``core``: the spectral core (a frame feature such as ``log_mel``, what the encoder decodes
    back to audio); ``optional``: the catalog groups whose frame features may join it, one boolean
    per group (``auto`` = every group with frame matrices in DIR, the core itself excluded).
``encoder``
    ``kind`` and ``dim`` (code dimensions per frame), plus fixed encoder options.
``model``
    ``family``: ``lstm`` and/or ``gan``.
``lstm``, ``gan``
    The family's own parameters; a section is sampled only in trials of that family
    (conditional parameters: a GAN trial has no ``lstm.*`` keys at all).
``train``
    Optimiser and loop parameters common to both families (``lr``, ``batch_size``, ...).
``score``
    Options of :class:`~genaudio.models.config.ScoreConfig` (``n_clips``, ``seconds``), usually
    fixed; a search judges its trials with its own ``judge_clips``/``judge_seconds`` instead.

A trial's config is a flat dict ``{"section.param": value}``, e.g. ``{"model.family": "gan",
"gan.latent": 32, "features.tonal": True, ...}``. :func:`define_by_run` is the function handed to
``OptunaSearch``; it only draws values (no computation), as Ray requires.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Iterable

from genaudio.errors import ConfigError

#: The default space. This is the one readable place where the search is declared; a YAML file's
#: ``space:`` mapping is merged over it section by section (see :func:`merge_space`).
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "features": {
        "core": "log_mel",             # the spectral core every encoder input starts from
        "optional": "auto",            # one boolean per other feature group with frames in DIR
    },
    "encoder": {
        "kind": ["pca", "autoencoder"],
        "dim": {"low": 8, "high": 64, "log": True},
        # each encoder's learned decoder, trained by the trial that fits the encoder on its codes
        # with noise (a model's generated codes carry its sampling noise): 200 steps, ~1 min
        "decoder": "learned",
        "decoder_epochs": 4,
        "decoder_code_noise": 0.4,
    },
    "autoencoder": {                   # the autoencoder kind's options (EncoderConfig.autoencoder)
        "epochs": 30,                  # training epochs (fixed)
    },
    "model": {
        "family": ["lstm", "gan"],
    },
    "lstm": {
        "layers": {"low": 1, "high": 3},
        "hidden": {"low": 32, "high": 256, "log": True},
        "context": {"low": 8, "high": 64, "log": True},     # code frames seen per prediction
    },
    "gan": {
        "family": ["conv", "rnn"],     # generator/discriminator architecture family
        "latent": {"low": 8, "high": 128, "log": True},
        "loss": ["ns", "wgan-gp"],
        "channels": {"low": 16, "high": 128, "log": True},
        "patch": [16, 32],             # frames per generated patch
    },
    "train": {
        "lr": {"low": 1e-4, "high": 3e-3, "log": True},
        "batch_size": [16, 32, 64],
    },
}

#: Sections sampled only when another parameter has a given value.
CONDITIONAL_SECTIONS: dict[str, tuple[str, str]] = {
    "autoencoder": ("encoder.kind", "autoencoder"),
    "lstm": ("model.family", "lstm"),
    "gan": ("model.family", "gan"),
}

SECTIONS = ("features", "encoder", "autoencoder", "model", "lstm", "gan", "train", "score")
FAMILIES = ("lstm", "gan")


# ---------------------------------------------------------------------------------------------
# Parameter domains


@dataclass(frozen=True)
class Choice:
    values: tuple

    def describe(self) -> str:
        return "choice " + ", ".join(str(v) for v in self.values)


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False
    step: int = 1

    def describe(self) -> str:
        return f"int [{self.low}, {self.high}]" + (" log" if self.log else "") + (
            f" step {self.step}" if self.step != 1 else "")


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False

    def describe(self) -> str:
        return f"float [{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Fixed:
    value: Any

    def describe(self) -> str:
        return f"fixed {self.value}"


Domain = Choice | IntRange | FloatRange | Fixed


def parse_domain(value: Any, where: str) -> Domain:
    """Turn one YAML value into a domain, with a clear error for anything else."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(f"search space {where}: a choice needs at least one value")
        if len(set(map(repr, value))) != len(value):
            raise ConfigError(f"search space {where}: repeated values in {list(value)}")
        if not all(isinstance(v, (str, int, float, bool)) or v is None for v in value):
            raise ConfigError(f"search space {where}: choices must be plain values, got {list(value)}")
        return Choice(tuple(value))
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"low", "high", "log", "step"})
        if unknown or "low" not in value or "high" not in value:
            raise ConfigError(
                f"search space {where}: a range is {{low, high, log?, step?}}, got {value!r}")
        low, high = value["low"], value["high"]
        log = value.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"search space {where}: log must be true or false")
        for v in (low, high):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"search space {where}: low and high must be finite numbers, got {value!r}")
        if low > high:
            raise ConfigError(f"search space {where}: low ({low}) is above high ({high})")
        if log and low <= 0:
            raise ConfigError(f"search space {where}: a log range needs low > 0, got {low}")
        if isinstance(low, int) and isinstance(high, int):
            step = value.get("step", 1)
            if not isinstance(step, int) or isinstance(step, bool) or step < 1:
                raise ConfigError(f"search space {where}: step must be a positive integer")
            if log and step != 1:
                raise ConfigError(f"search space {where}: a log integer range cannot have a step")
            return IntRange(low, high, log, step)
        if "step" in value:
            raise ConfigError(f"search space {where}: step is for integer ranges only")
        return FloatRange(float(low), float(high), log)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return Fixed(value)
    raise ConfigError(f"search space {where}: cannot read {value!r} as a choice, range or value")


# ---------------------------------------------------------------------------------------------
# The space object


def merge_space(overrides: dict | None, base: dict | None = None) -> dict:
    """``base`` (default :data:`DEFAULT_SPACE`) with ``overrides`` merged section by section.

    A parameter given in the override replaces the default one; a section set to ``null`` is
    removed (e.g. ``gan: null`` together with ``model: {family: [lstm]}``).
    """
    space = copy.deepcopy(DEFAULT_SPACE if base is None else base)
    if overrides is None:
        return space
    if not isinstance(overrides, dict):
        raise ConfigError(f"search space: expected a mapping of sections, got {overrides!r}")
    for section, params in overrides.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"search space: unknown section {section!r}; sections are {', '.join(SECTIONS)}")
        if params is None:
            space.pop(section, None)
            continue
        if not isinstance(params, dict):
            raise ConfigError(f"search space: section {section!r} must be a mapping, got {params!r}")
        space.setdefault(section, {}).update(copy.deepcopy(params))
    return space


@dataclass(frozen=True)
class SearchSpace:
    """A validated space: domains per ``section.param`` and the resolved feature groups.

    Build it with :func:`build_space`; sample it with :func:`define_by_run`.
    """

    core: str
    optional_groups: tuple[str, ...]
    params: tuple[tuple[str, Domain], ...]          # ("encoder.kind", Choice(...)), in order
    group_features: tuple[tuple[str, tuple[str, ...]], ...] = ()   # group -> its frame features in DIR

    def domain(self, name: str) -> Domain:
        for n, d in self.params:
            if n == name:
                return d
        raise KeyError(name)

    @property
    def families(self) -> tuple[str, ...]:
        d = self.domain("model.family")
        return d.values if isinstance(d, Choice) else (d.value,)

    def condition(self, name: str) -> tuple[str, str] | None:
        return CONDITIONAL_SECTIONS.get(name.split(".", 1)[0])

    def names(self) -> list[str]:
        return [f"features.{g}" for g in self.optional_groups] + [n for n, _ in self.params]

    def to_dict(self) -> dict:
        """The space in the same YAML form it is written in (groups resolved)."""
        out: dict[str, dict] = {"features": {"core": self.core,
                                             "optional": list(self.optional_groups)}}
        for name, d in self.params:
            section, param = name.split(".", 1)
            if isinstance(d, Choice):
                v: Any = list(d.values)
            elif isinstance(d, IntRange):
                v = {"low": d.low, "high": d.high, "log": d.log} | ({"step": d.step} if d.step != 1 else {})
            elif isinstance(d, FloatRange):
                v = {"low": d.low, "high": d.high, "log": d.log}
            else:
                v = d.value
            out.setdefault(section, {})[param] = v
        for section in SECTIONS[1:]:
            out.setdefault(section, None)       # removed sections stay removed when read back
        return out

    def describe(self) -> str:
        """A readable table: one line per parameter with its domain and condition."""
        rows = [("features.core", f"fixed {self.core} (spectral core, always on)", "")]
        feats = dict(self.group_features)
        for g in self.optional_groups:
            names = list(feats.get(g, ()))
            members = (": " + ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")) if names else ""
            rows.append((f"features.{g}", f"bool (group joins the core{members})", ""))
        for name, d in self.params:
            cond = self.condition(name)
            rows.append((name, d.describe(), f"if {cond[0]} == {cond[1]}" if cond else ""))
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [f"{'parameter':<{w0}}  {'domain':<{w1}}  condition", "-" * (w0 + w1 + 13)]
        lines += [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]
        n_free = sum(not isinstance(d, Fixed) for _, d in self.params) + len(self.optional_groups)
        lines.append(f"({n_free} searched parameters; conditional sections are sampled only when "
                     "their condition holds)")
        return "\n".join(lines)


def build_space(space: dict | None = None, *, frame_features: dict[str, str] | None = None,
                encoder_kinds: Iterable[str] | None = None) -> SearchSpace:
    """Validate a space mapping (defaults merged) and resolve its feature groups.

    Parameters
    ----------
    space : dict, optional
        Overrides merged over :data:`DEFAULT_SPACE` (the ``space:`` mapping of a YAML file).
    frame_features : dict, optional
        ``{feature: group}`` of the features with frame matrices in DIR. When given, the core must
        be one of them, ``optional: auto`` becomes every group of the others, and groups without
        frames in DIR are refused.
    encoder_kinds : iterable of str, optional
        Encoder kinds that exist; ``encoder.kind`` values outside it are refused.

    Raises
    ------
    ConfigError
        On any invalid section, parameter or value, before a trial starts.
    """
    merged = merge_space(space)
    for required in ("encoder", "model", "train"):
        if required not in merged:
            raise ConfigError(f"search space: section {required!r} cannot be removed")

    feats = dict(merged.get("features") or {})
    unknown = sorted(set(feats) - {"core", "optional"})
    if unknown:
        raise ConfigError(f"search space features: unknown key(s) {unknown}; use core and optional")
    core = feats.get("core", "log_mel")
    if not isinstance(core, str) or not core:
        raise ConfigError(f"search space features.core: one spectral core feature (e.g. log_mel), got {core!r}")
    optional = feats.get("optional", "auto")
    groups: dict[str, list[str]] = {}
    if frame_features is not None:
        if core not in frame_features:
            raise ConfigError(
                f"search space features.core: {core!r} has no frame matrices in DIR (frame features: "
                f"{', '.join(sorted(frame_features)) or 'none'}); extract it as a frame feature")
        for f, g in sorted(frame_features.items()):
            if f != core:
                groups.setdefault(g, []).append(f)
    avail = None if frame_features is None else sorted(groups)
    if optional == "auto":
        optional = list(avail or [])
    elif isinstance(optional, str):
        optional = [optional]
    optional = list(optional or [])
    if not all(isinstance(g, str) for g in optional):
        raise ConfigError(f"search space features.optional: group names expected, got {optional!r}")
    if len(set(optional)) != len(optional):
        raise ConfigError(f"search space features.optional: repeated groups in {optional}")
    if avail is not None:
        missing = [g for g in optional if g not in avail]
        if missing:
            raise ConfigError(
                f"search space features.optional: group(s) {missing} have no frame matrices in DIR "
                f"(available: {', '.join(avail) or 'none'})")

    params: list[tuple[str, Domain]] = []
    for section in SECTIONS[1:]:
        for param, value in (merged.get(section) or {}).items():
            if not isinstance(param, str) or not param.isidentifier():
                raise ConfigError(f"search space {section}: bad parameter name {param!r}")
            params.append((f"{section}.{param}", parse_domain(value, f"{section}.{param}")))
    names = {n for n, _ in params}
    for required in ("encoder.kind", "encoder.dim", "model.family"):
        if required not in names:
            raise ConfigError(f"search space: {required} is required")
    result = SearchSpace(core, tuple(optional), tuple(params),
                         tuple((g, tuple(groups.get(g, ()))) for g in optional))

    fam = result.domain("model.family")
    families = fam.values if isinstance(fam, Choice) else (fam.value,)
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        raise ConfigError(f"search space model.family: unknown famil(ies) {bad}; valid: {', '.join(FAMILIES)}")
    kinds = result.domain("encoder.kind")
    kinds = kinds.values if isinstance(kinds, Choice) else (kinds.value,)
    if encoder_kinds is not None:
        bad = [k for k in kinds if k not in set(encoder_kinds)]
        if bad:
            raise ConfigError(
                f"search space encoder.kind: unknown kind(s) {bad}; valid: {', '.join(encoder_kinds)}")
    dim = result.domain("encoder.dim")
    lows = ([dim.low] if isinstance(dim, (IntRange, FloatRange)) else
            list(dim.values) if isinstance(dim, Choice) else [dim.value])
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in lows):
        raise ConfigError("search space encoder.dim: must be positive integers")
    return result


class DefineByRun:
    """The define-by-run function for ``OptunaSearch``: draws one trial's values, nothing else.

    Calling it with an Optuna trial returns the fixed values (Optuna records the drawn ones).
    Conditional sections are drawn only when their condition holds, so Optuna's TPE sees a
    conditional space and GAN trials carry no LSTM parameters. A class, not a closure, because
    Tune pickles the searcher (with this function) into the experiment state for ``--resume``.
    """

    def __init__(self, space: SearchSpace):
        self.space = space

    def __call__(self, trial) -> dict:
        space = self.space
        drawn: dict[str, Any] = {}
        # the core groups travel in every config so that a trial's config says all it used
        fixed: dict[str, Any] = {"features.core": space.core}
        for g in space.optional_groups:
            drawn[f"features.{g}"] = trial.suggest_categorical(f"features.{g}", [True, False])
        for name, d in space.params:
            cond = space.condition(name)
            if cond is not None:
                key, want = cond
                if drawn.get(key, fixed.get(key)) != want:
                    continue
            if isinstance(d, Fixed):
                fixed[name] = d.value
            elif isinstance(d, Choice):
                drawn[name] = trial.suggest_categorical(name, list(d.values))
            elif isinstance(d, IntRange):
                drawn[name] = trial.suggest_int(name, d.low, d.high, log=d.log, step=d.step)
            else:
                drawn[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
        return fixed


def define_by_run(space: SearchSpace) -> DefineByRun:
    """The define-by-run callable of ``space`` (see :class:`DefineByRun`)."""
    return DefineByRun(space)


def selected_groups(config: dict) -> list[str]:
    """The optional feature groups a trial switched on (sorted)."""
    return sorted(k.split(".", 1)[1] for k, v in config.items()
                  if k.startswith("features.") and k != "features.core" and v is True)
