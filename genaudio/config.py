"""Validated, hashable configuration objects, and YAML at the edge.

Every stage's options are a frozen dataclass with defaults. Stages never read YAML or the command
line themselves: the CLI and jobs turn those into these objects with :func:`from_dict`.
:func:`config_hash` keys caches and resume, so two configs that compute the same thing hash the
same and any change that alters results changes the hash.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
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
    where = where or cls.__name__
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown option(s) {', '.join(unknown)}; valid options are {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:  # pragma: no cover - defensive
        raise ConfigError(f"{where}: {e}") from None


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

    import re

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
