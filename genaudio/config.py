"""Validated, hashable configuration objects, and YAML at the edge.

Every stage's options are a frozen dataclass with defaults: the dataclasses are the schema. Stages
never read YAML or the command line themselves. ONE loader, :func:`load`, turns YAML files,
mappings and dotted overrides (``section.field=value``, as ``--set`` takes them) into these
objects, with one error style (``search.trials: expected an integer, got 'x'``); the CLI's
``--config`` and ``--set``, the pipeline file and the search's trial parameters all go through it.
:func:`config_hash` keys caches and resume, so two configs that compute the same thing hash the
same and any change that alters results changes the hash.

A field may carry ``metadata={"parse": fn}``: ``fn`` turns what a user writes (e.g. ``"4h"``) into
the field's type before it is checked.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from pathlib import Path
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import yaml

from genaudio.errors import ConfigError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """How audio is decoded, and the limits that protect a shared machine.

    Attributes
    ----------
    sample_rate : int or None
        Target rate in Hz; ``None`` keeps each file's own rate.
    mono : bool
        Downmix to one channel (mean of channels).
    res_type : str
        Resampler passed to :func:`librosa.resample` (``soxr_hq`` by default).
    max_duration_s : float
        Files longer than this are refused (:class:`~genaudio.errors.AudioTooLongError`).
    max_file_mb : float
        Files larger than this on disk are refused before decoding.
    min_duration_s : float
        Files shorter than this are refused (:class:`~genaudio.errors.AudioTooShortError`).
    """

    sample_rate: int | None = 22050
    mono: bool = True
    res_type: str = "soxr_hq"
    max_duration_s: float = 4 * 3600.0
    max_file_mb: float = 2048.0
    min_duration_s: float = 0.05

    def __post_init__(self):
        if self.sample_rate is not None and not 1000 <= self.sample_rate <= 384_000:
            raise ConfigError(f"sample_rate must be between 1000 and 384000 Hz, got {self.sample_rate}")
        if self.max_duration_s <= 0 or self.max_file_mb <= 0:
            raise ConfigError("max_duration_s and max_file_mb must be positive")
        if self.min_duration_s < 0:
            raise ConfigError("min_duration_s must be >= 0")


@dataclasses.dataclass(frozen=True)
class SegmentConfig:
    """Fixed-length segmentation: segments are the rows later stages train on.

    Attributes
    ----------
    seconds : float
        Segment length in seconds.
    hop_seconds : float or None
        Distance between segment starts; ``None`` means ``seconds`` (no overlap).
    last : {"pad", "drop"}
        Policy for a final segment shorter than ``seconds``: ``"pad"`` zero-pads it to full length
        when it holds at least ``min_last_fraction`` of a segment (its true ``duration_s`` is kept
        in the row), otherwise drops it; ``"drop"`` always drops it. A file shorter than one
        segment still yields one padded segment under ``"pad"``.
    min_last_fraction : float
        See ``last``.
    """

    seconds: float = 5.0
    hop_seconds: float | None = None
    last: str = "pad"
    min_last_fraction: float = 0.5

    def __post_init__(self):
        if self.seconds <= 0:
            raise ConfigError(f"segment seconds must be positive, got {self.seconds}")
        if self.hop_seconds is not None and self.hop_seconds <= 0:
            raise ConfigError(f"segment hop_seconds must be positive, got {self.hop_seconds}")
        if self.last not in ("pad", "drop"):
            raise ConfigError(f"segment last must be 'pad' or 'drop', got {self.last!r}")
        if not 0.0 <= self.min_last_fraction <= 1.0:
            raise ConfigError("min_last_fraction must be between 0 and 1")

    @property
    def hop(self) -> float:
        return self.seconds if self.hop_seconds is None else self.hop_seconds


# ---------------------------------------------------------------------------------------------
# Generic helpers


def to_dict(cfg: Any) -> dict:
    """A plain, JSON/YAML-serialisable dict of a (nested) config dataclass."""
    def convert(v):
        if dataclasses.is_dataclass(v):
            return {f.name: convert(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {str(k): convert(x) for k, x in v.items()}
        return v

    return convert(cfg)


def config_hash(cfg: Any, length: int = 12) -> str:
    """A short stable hash of a config (sha256 of its canonical JSON).

    Dataclass configs are first normalised through :func:`from_dict`, so ``seconds=5`` and
    ``seconds=5.0`` hash the same.
    """
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        cfg = from_dict(type(cfg), to_dict(cfg))
    blob = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where=where)
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        seq = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(seq) if origin is tuple else seq
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            return float(value)  # PyYAML reads 3e-4 (no dot) as a string: YAML 1.1
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict | None, *, where: str | None = None) -> T:
    """Build config dataclass ``cls`` from a plain dict, with clear errors.

    Unknown keys are refused (a misspelt option must not be silently ignored); missing keys take
    their defaults; values are checked against the field types; nested dataclasses recurse.
    """
    where = cls.__name__ if where is None else where
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown option(s) {', '.join(map(str, unknown))}; "
                          f"valid options are {', '.join(sorted(fields))}")
    kwargs = {}
    for k, v in data.items():
        name = f"{where}.{k}" if where else k
        parse = fields[k].metadata.get("parse")
        if parse is not None and v is not None:
            v = parse(v)
        kwargs[k] = _coerce(hints[k], v, name)
    try:
        return cls(**kwargs)
    except TypeError as e:  # pragma: no cover - defensive
        raise ConfigError(f"{where or 'config'}: {e}") from None


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` with the same validation as :func:`from_dict`."""
    merged = to_dict(cfg)
    merged.update(changes)
    return from_dict(type(cfg), merged)


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config file into a dict (empty file -> empty dict)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# ---------------------------------------------------------------------------------------------
# The one loader: YAML files, mappings and dotted overrides -> a config dataclass


def parse_overrides(items: Iterable[str]) -> dict:
    """``["lstm.hidden=64", "trials=3"]`` -> ``{"lstm.hidden": 64, "trials": 3}``.

    Values are read as YAML (``3`` is an int, ``[a, b]`` a list, ``null`` None, ``4h`` a string).
    """
    out: dict = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set lstm.hidden=64")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML: {e}") from None
    return out


def nest(flat: Mapping[str, Any]) -> dict:
    """Dotted keys to nested mappings: ``{"lstm.hidden": 64}`` -> ``{"lstm": {"hidden": 64}}``.

    Keys without a dot are kept; a dotted key and a nested mapping of the same section merge.
    """
    out: dict = {}
    for key, value in flat.items():
        parts = str(key).split(".")
        node = out
        for i, p in enumerate(parts[:-1]):
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(parts[:i + 1])} is an option, not a section; cannot set {key}")
            node = child
        leaf = parts[-1]
        node[leaf] = merge(node[leaf], value) if isinstance(node.get(leaf), dict) and isinstance(value, dict) \
            else value
    return out


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict:
    """A deep merge: mappings merge key by key, anything else in ``extra`` replaces ``base``."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def load(cls: type[T], *sources: str | Path | Mapping[str, Any] | None,
         overrides: Iterable[str] | Mapping[str, Any] = ()) -> T:
    """The config dataclass ``cls`` from YAML files, mappings and dotted overrides.

    Parameters
    ----------
    cls : type
        A config dataclass (nested dataclass fields are sections).
    *sources : path, mapping or None
        Merged in order (later wins, sections merge key by key): a path is a YAML file, a mapping
        may use dotted keys (``{"segment.seconds": 2}``); ``None`` is skipped.
    overrides : iterable of str or mapping
        Applied last: ``"section.field=value"`` strings (``--set``) or a mapping of dotted keys.

    Unknown keys, wrong types and invalid values raise :class:`~genaudio.errors.ConfigError`
    naming the dotted key, e.g. ``search.trials: expected an integer, got 'x'``.
    """
    data: dict = {}
    for src in sources:
        if src is None:
            continue
        data = merge(data, nest(src if isinstance(src, Mapping) else load_yaml(src)))
    extra = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    data = merge(data, nest(extra))
    return from_dict(cls, data, where="")


# ---------------------------------------------------------------------------------------------
# Feature analysis parameters (the catalog itself lives in genaudio.features)

#: Summary functionals computed per feature dimension over a segment's frames.
DEFAULT_STATS = ("mean", "std", "min", "max", "median", "skew", "kurtosis", "delta_mean", "delta_std")


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the shared analysis and which features to compute.

    Attributes
    ----------
    n_fft, hop_length, win_length : int
        STFT frame size, hop and window in samples (librosa defaults).
    n_mels, n_mfcc, n_chroma : int
        Mel bands, MFCC coefficients, chroma bins.
    fmin : float
        Lowest frequency (Hz) of the CQT-based features.
    features : tuple of str
        Catalog names to compute (``genaudio features list``); empty means the catalog default set.
    frame_features : tuple of str
        Features whose frame-level matrices (dims, time) are stored with each segment, for
        encoders and models; must be a subset of ``features``.
    stats : tuple of str
        Summary functionals per dimension.
    bins_per_octave, n_octaves : int
        Resolution and range of the shared CQT (chroma_cqt, chroma_cens, tonnetz, cqt); librosa's
        chroma_cqt defaults (36 bins per octave over 7 octaves from ``fmin``).
    n_bands : int
        Octave sub-bands of spectral_contrast (it returns ``n_bands + 1`` rows).
    poly_order : int
        Order of poly_features (it returns ``poly_order + 1`` coefficients).
    roll_percent : float
        Energy fraction of spectral_rolloff.
    tempogram_win_length : int
        Onset frames per tempogram window (autocorrelation lags; librosa default 384).
    vqt_intervals : str
        Interval system of chroma_vqt (``"ji5"``, ``"ji3"``, ``"equal"``, ...).
    pitch_fmin, pitch_fmax : float
        Search range (Hz) of the pYIN / YIN pitch trackers (C2 to C7 by default).
    clip_threshold : float
        A sample with ``|y| >= clip_threshold`` counts as clipped (clipping_ratio).
    """

    n_fft: int = 2048
    hop_length: int = 512
    win_length: int | None = None
    n_mels: int = 128
    n_mfcc: int = 20
    n_chroma: int = 12
    fmin: float = 32.70319566257483  # C1, librosa's default for CQT features
    features: tuple[str, ...] = ()
    frame_features: tuple[str, ...] = ("log_mel", "mfcc", "chroma_stft", "spectral_centroid",
                                       "spectral_bandwidth", "spectral_rolloff", "spectral_flatness",
                                       "spectral_contrast", "rms", "zero_crossing_rate",
                                       "onset_strength", "tonnetz")
    stats: tuple[str, ...] = DEFAULT_STATS
    bins_per_octave: int = 36
    n_octaves: int = 7
    n_bands: int = 6
    poly_order: int = 1
    roll_percent: float = 0.85
    tempogram_win_length: int = 384
    vqt_intervals: str = "ji5"
    pitch_fmin: float = 65.40639132514966  # C2
    pitch_fmax: float = 2093.004522404789  # C7
    clip_threshold: float = 0.999

    def __post_init__(self):
        for name in ("n_fft", "hop_length", "n_mels", "n_mfcc", "n_chroma", "bins_per_octave",
                     "n_octaves", "n_bands", "poly_order", "tempogram_win_length"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.hop_length > self.n_fft:
            raise ConfigError(f"hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft})")
        if self.bins_per_octave % self.n_chroma:
            raise ConfigError(f"bins_per_octave ({self.bins_per_octave}) must be a multiple of "
                              f"n_chroma ({self.n_chroma})")
        if not 0.0 < self.roll_percent < 1.0:
            raise ConfigError(f"roll_percent must be between 0 and 1, got {self.roll_percent}")
        if not 0.0 < self.pitch_fmin < self.pitch_fmax:
            raise ConfigError("pitch_fmin must be positive and below pitch_fmax")
        if not 0.0 < self.clip_threshold <= 1.0:
            raise ConfigError(f"clip_threshold must be in (0, 1], got {self.clip_threshold}")
        unknown = sorted(set(self.stats) - set(DEFAULT_STATS))
        if unknown:
            raise ConfigError(f"unknown stats {unknown}; valid: {', '.join(DEFAULT_STATS)}")


# ---------------------------------------------------------------------------------------------
# A commented YAML of defaults (``genaudio config --print-defaults``)


def attribute_docs(cls: type) -> dict[str, str]:
    """Field descriptions from the numpydoc ``Attributes`` section of a dataclass docstring."""
    import inspect

    doc = inspect.getdoc(cls) or ""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes") + 2
    except StopIteration:
        return {}
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            if " : " in line or line.rstrip().endswith(":"):
                names = [n.strip() for n in line.split(" : ")[0].split(",")]
                for n in names:
                    docs[n] = ""
                continue
            if set(line.strip()) <= {"-"}:  # the next section's underline: stop
                break
            break
        text = line.strip()
        for n in names:
            docs[n] = (docs[n] + " " + text).strip()
    return docs


def commented_yaml(sections: dict[str, Any], *, width: int = 96) -> str:
    """YAML of config dataclasses, each option preceded by its description as a comment."""
    import textwrap

    out: list[str] = []

    def plain(text: str) -> str:  # reST markup reads badly in a YAML comment
        text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([\w]+)`", r"\1", text)
        return text.replace("``", "`")

    def scalar(value: Any) -> str:
        if isinstance(value, (list, tuple, dict)):
            return yaml.safe_dump(to_dict(value), default_flow_style=True, width=10_000).strip()
        return json.dumps(value)

    def emit(obj: Any, indent: int) -> None:
        docs = attribute_docs(type(obj))
        pad = "  " * indent
        previous = None
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            text = plain(docs.get(f.name, ""))
            if text and text != previous:  # one comment for "a, b, c : int" groups
                for line in textwrap.wrap(text, width - len(pad) - 2):
                    out.append(f"{pad}# {line}")
            previous = text
            if dataclasses.is_dataclass(value):
                out.append(f"{pad}{f.name}:")
                emit(value, indent + 1)
                previous = None
            else:
                out.append(f"{pad}{f.name}: {scalar(value)}")

    for name, obj in sections.items():
        doc = (type(obj).__doc__ or "").strip().splitlines()
        out.append(f"# {name}: {plain(doc[0]) if doc else ''}")
        out.append(f"{name}:")
        emit(obj, 1)
        out.append("")
    return "\n".join(out)
