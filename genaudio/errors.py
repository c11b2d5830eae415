"""The project's exception types.

Every error genaudio raises on purpose is a :class:`GenaudioError`; its message is written for the
user (what went wrong, with which file or option, and what to do). The CLI prints it on one line
and exits non-zero; pipelines record it in their errors table. Subclasses exist so that code and
tests can tell the cases apart; ``reason`` is a short stable code stored in errors tables.
"""
from __future__ import annotations


class GenaudioError(Exception):
    """Base class of every error genaudio raises on purpose."""

    reason = "error"

    def __init__(self, message: str, *, path: str | None = None):
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{self.path}: {msg}" if self.path else msg


class ConfigError(GenaudioError):
    """An option or configuration file is invalid."""

    reason = "config"


class AudioError(GenaudioError):
    """An audio file cannot be used. Subclasses say why."""

    reason = "audio"


class FileMissingError(AudioError):
    reason = "missing"


class EmptyFileError(AudioError):
    reason = "empty"


class NotAudioError(AudioError):
    """The file is not in a format the decoder reads (text, MIDI, tracker module, random bytes)."""

    reason = "not_audio"


class TruncatedAudioError(AudioError):
    """The header promises more audio than the file holds, or decoding stopped mid-stream."""

    reason = "truncated"


class FileTooLargeError(AudioError):
    reason = "too_large"


class AudioTooLongError(AudioError):
    reason = "too_long"


class AudioTooShortError(AudioError):
    reason = "too_short"


class InvalidSamplesError(AudioError):
    """Decoded samples contain NaN or infinity."""

    reason = "invalid_samples"


class StoreError(GenaudioError):
    """A features store, encoded store or run folder is missing, incomplete or of the wrong kind."""

    reason = "store"


class EncoderError(GenaudioError):
    """An encoder cannot be fitted, loaded or applied as asked."""

    reason = "encoder"


class ModelError(GenaudioError):
    """A model cannot be built, trained, resumed or sampled as asked."""

    reason = "model"


class SearchError(GenaudioError):
    """A search cannot start or resume as asked."""

    reason = "search"


class QualityError(GenaudioError):
    """Clips cannot be judged: too few, too short, unreadable, or not comparable with the reference."""

    reason = "quality"


class Interrupted(KeyboardInterrupt):
    """The user interrupted a run (Ctrl-C) that a library below genaudio caught and ended cleanly
    (Ray Tune saves its experiment and returns): raised again so that the run is not taken for
    finished, with what to do next as its message. The CLI prints it and exits with 130."""
