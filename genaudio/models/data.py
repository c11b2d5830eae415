"""Training data for the models: code sequences, a split by file, and fast window batches.

The models see fixed-length windows of code frames cut from each segment's ``(time, dim)``
code matrix. All frames of a split live in one contiguous float32 tensor; a batch is gathered
with a single vectorised index (``frames[starts[:, None] + arange(window)]``), so loading a
batch costs microseconds and the loader is never the bottleneck (see
``benchmarks/train_throughput.py``, ``data_wait_fraction``).

The train/validation split is by ``file_id``: every segment of a recording is on the same side.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from genaudio.errors import ModelError


@dataclasses.dataclass
class SequenceData:
    """Code sequences of many segments, with the identity needed to split them by file.

    Attributes
    ----------
    codes : list of ndarray, each (time, dim) float32
        One code matrix per segment (lengths may differ).
    file_ids : ndarray (n,) of str
        The recording each segment comes from.
    code_rate_hz : float
        Code frames per second.
    labels, segments : ndarray (n,), optional
        Label and within-file segment index, carried along for reports.
    enc_dir : str, optional
        The encoded store the codes came from (needed to decode generated codes and to score).
    splits : ndarray (n,) of str, optional
        ``"train"`` / ``"test"`` per segment when the encoded store records which files the
        encoder was fitted on; :func:`train` then holds out the encoder's test files, so neither
        the encoder nor the model has seen the validation recordings.
    """

    codes: list
    file_ids: np.ndarray
    code_rate_hz: float
    labels: np.ndarray | None = None
    segments: np.ndarray | None = None
    enc_dir: str | None = None
    splits: np.ndarray | None = None

    def __post_init__(self):
        self.codes = [np.asarray(c, dtype=np.float32) for c in self.codes]
        self.file_ids = np.asarray(self.file_ids).astype(str)
        if len(self.codes) != len(self.file_ids):
            raise ModelError(f"{len(self.codes)} code matrices but {len(self.file_ids)} file ids")
        if not self.codes:
            raise ModelError("no code sequences to train on")
        dims = {c.shape[1] if c.ndim == 2 else -1 for c in self.codes}
        if len(dims) != 1 or -1 in dims:
            raise ModelError(f"code matrices must all be (time, dim) with one dim; got dims {sorted(dims)}")
        if not self.code_rate_hz or self.code_rate_hz <= 0:
            raise ModelError(f"code_rate_hz must be positive, got {self.code_rate_hz}")

    @property
    def dim(self) -> int:
        return int(self.codes[0].shape[1])

    def __len__(self) -> int:
        return len(self.codes)

    def subset(self, idx: Sequence[int]) -> "SequenceData":
        idx = np.asarray(idx, dtype=int)
        pick = lambda a: None if a is None else np.asarray(a)[idx]  # noqa: E731
        return SequenceData([self.codes[i] for i in idx], self.file_ids[idx], self.code_rate_hz,
                            pick(self.labels), pick(self.segments), self.enc_dir, pick(self.splits))


def as_sequence_data(data: Any) -> SequenceData:
    """Accept a :class:`SequenceData`, an encoded-store folder, or the encoders' ``CodesData``.

    ``CodesData`` (from :func:`genaudio.encoders.store.read_codes`) provides ``codes`` (one
    ``(time, dim)`` array per segment), ``ids`` (a DataFrame with ``file_id``, ``label``,
    ``segment`` and optionally ``split``), the fitted ``encoder`` (for ``code_rate_hz``) and
    ``encoder_path`` (``ENC/encoder``, whose parent is the encoded store).
    """
    if isinstance(data, SequenceData):
        return data
    if isinstance(data, (str, Path)):
        from genaudio.encoders.store import read_codes

        data = read_codes(data)
    codes = getattr(data, "codes", None)
    ids = getattr(data, "ids", None)
    if codes is None or ids is None:
        raise ModelError(f"cannot train on {type(data).__name__}: expected SequenceData, CodesData or an encoded store")
    enc = getattr(data, "encoder", None)
    rate = getattr(data, "code_rate_hz", None) or (enc.code_rate_hz if enc is not None else None)
    if rate is None:
        raise ModelError("the codes do not say their frame rate (no encoder loaded with them)")
    enc_path = getattr(data, "encoder_path", None)
    enc_dir = str(Path(enc_path).parent) if enc_path else None
    col = lambda name: np.asarray(ids[name]) if name in ids else None  # noqa: E731
    return SequenceData(list(codes), col("file_id"), float(rate), col("label"), col("segment"), enc_dir,
                        col("split"))


def split_by_file(file_ids: Sequence[str], *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation segments, grouped by recording.

    Parameters
    ----------
    file_ids : sequence of str, (n,)
        The recording of each segment.
    val_fraction : float
        Target fraction of *files* held out (at least one file when there are two or more).
    seed : int
        Seeds the shuffle of files.

    Returns
    -------
    train_idx, val_idx : ndarray of int
        Segment indices; no ``file_id`` appears in both.
    """
    file_ids = np.asarray(file_ids).astype(str)
    files = np.unique(file_ids)
    if len(files) < 2:
        raise ModelError(
            f"need segments from at least 2 files to hold out validation files, got {len(files)}; "
            "the split is by file so that one recording is never on both sides"
        )
    rng = np.random.default_rng(seed)
    files = files[rng.permutation(len(files))]
    n_val = min(len(files) - 1, max(1, int(round(val_fraction * len(files)))))
    val_files = set(files[:n_val])
    is_val = np.array([f in val_files for f in file_ids])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


@dataclasses.dataclass
class Normalizer:
    """Per-dimension standardisation of codes, fitted on training frames only.

    Models work on ``(codes - mean) / std``; generated codes are mapped back with :meth:`inverse`.
    """

    mean: np.ndarray  # (dim,)
    std: np.ndarray  # (dim,)

    @classmethod
    def fit(cls, codes: list) -> "Normalizer":
        allf = np.concatenate(codes, axis=0).astype(np.float64)
        std = allf.std(axis=0)
        # constant dimensions keep scale 1 instead of dividing by ~0
        std = np.where(std < 1e-6, 1.0, std)
        return cls(allf.mean(axis=0).astype(np.float32), std.astype(np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        return (x * self.std + self.mean).astype(np.float32)

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state(cls, s: dict) -> "Normalizer":
        return cls(np.asarray(s["mean"], np.float32), np.asarray(s["std"], np.float32))


class WindowSet(torch.utils.data.Dataset):
    """All windows of ``window`` frames in a set of segments, as one frame tensor plus start offsets.

    Indexing with a *list* of window indices returns the whole batch ``(B, window, dim)`` with one
    gather, which is how :func:`make_loader` uses it.
    """

    def __init__(self, codes: list, *, window: int, hop: int):
        usable = [c for c in codes if len(c) >= window]
        if not usable:
            longest = max((len(c) for c in codes), default=0)
            raise ModelError(
                f"no segment has {window} code frames (longest has {longest}); use a shorter "
                "lstm.context / gan.patch or longer segments"
            )
        self.frames = torch.from_numpy(np.ascontiguousarray(np.concatenate(usable, axis=0), dtype=np.float32))
        starts, offset = [], 0
        for c in usable:
            starts.append(offset + np.arange(0, len(c) - window + 1, hop))
            offset += len(c)
        self.starts = torch.from_numpy(np.concatenate(starts).astype(np.int64))
        self.window = window
        self._ar = torch.arange(window)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, idx):
        idx = torch.as_tensor(idx, dtype=torch.int64)
        return self.frames[self.starts[idx].unsqueeze(-1) + self._ar]


class _EpochBatches(torch.utils.data.Sampler):
    """Yields index batches of one epoch: a seeded permutation (seed, epoch), cut into global
    batches, of which this data-parallel rank takes its contiguous share."""

    def __init__(self, n: int, *, batch_size: int, seed: int, epoch: int, rank: int, world: int,
                 shuffle: bool, max_steps: int | None, drop_last: bool):
        self.n, self.bs, self.seed, self.epoch = n, batch_size, seed, epoch
        self.rank, self.world, self.shuffle, self.max_steps, self.drop_last = rank, world, shuffle, max_steps, drop_last

    def _batches(self) -> list:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        out = []
        for b in range(0, self.n, self.bs):
            batch = order[b:b + self.bs]
            if len(batch) < self.bs and self.drop_last and b > 0:
                break
            per = len(batch) // self.world
            if per == 0:
                break
            out.append(batch[self.rank * per:(self.rank + 1) * per].tolist())
            if self.max_steps is not None and len(out) >= self.max_steps:
                break
        return out

    def __iter__(self) -> Iterator[list]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def make_loader(ds: WindowSet, *, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                shuffle: bool = True, max_steps: int | None = None, drop_last: bool = True,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader over ``ds`` whose items are whole batches ``(B / world, window, dim)``.

    ``batch_size`` is the global batch; each of ``world`` ranks gets an equal contiguous slice of
    it, so data-parallel training sees the same samples per step as one process would.
    """
    sampler = _EpochBatches(len(ds), batch_size=batch_size, seed=seed, epoch=epoch, rank=rank, world=world,
                            shuffle=shuffle, max_steps=max_steps, drop_last=drop_last)
    # batch_size=None: the sampler yields index lists and the dataset gathers them in one go.
    return torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=None, num_workers=0,
                                       pin_memory=pin_memory)


def train_val_split(data: SequenceData, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation segment indices of ``data``, by file.

    The encoder's own held-out files when the store records them (``data.splits``), so that no
    validation recording was seen by the encoder or the model; else :func:`split_by_file` with
    ``val_fraction`` and ``seed``.
    """
    if data.splits is not None:
        is_test = np.asarray(data.splits).astype(str) == "test"
        tr, va = np.flatnonzero(~is_test), np.flatnonzero(is_test)
        if len(tr) and len(va) and not set(data.file_ids[tr]) & set(data.file_ids[va]):
            return tr, va
    return split_by_file(data.file_ids, val_fraction=val_fraction, seed=seed)


#: Real training windows kept (normalised, ``PRIME_FRAMES`` frames each) to start LSTM generation.
N_PRIMES, PRIME_FRAMES = 64, 16


@dataclasses.dataclass
class TrainingWindows:
    """What the training loop reads: windows of normalised codes, split by file.

    Attributes
    ----------
    train, val : WindowSet
    normalizer : Normalizer
        Fitted on the training segments' frames only.
    val_files : list of str
        The held-out recordings (sorted), also the judge's real reference.
    primes : Tensor (n, t0, dim)
        Up to :data:`N_PRIMES` seeded training windows, their first ``t0 = min(16, window - 1)``
        frames.
    """

    train: WindowSet
    val: WindowSet
    normalizer: Normalizer
    val_files: list
    primes: torch.Tensor


def training_windows(data: SequenceData, *, window: int, hop: int, batch_size: int, val_fraction: float,
                     seed: int) -> TrainingWindows:
    """Split ``data`` by file (:func:`train_val_split`), fit the normaliser on the training
    files, cut both sides into windows of ``window`` frames every ``hop`` frames.

    Raises :class:`~genaudio.errors.ModelError` when the training side has no full window or
    fewer than ``batch_size``, or the validation side fewer than 2 (its code-space distance
    compares two sets of windows).
    """
    train_idx, val_idx = train_val_split(data, val_fraction=val_fraction, seed=seed)
    norm = Normalizer.fit([data.codes[i] for i in train_idx])
    train = WindowSet([norm.apply(data.codes[i]) for i in train_idx], window=window, hop=hop)
    try:
        val = WindowSet([norm.apply(data.codes[i]) for i in val_idx], window=window, hop=hop)
    except ModelError as e:
        raise ModelError(f"validation files: {e}") from None
    if len(val) < 2:
        raise ModelError(f"validation files: only {len(val)} window of {window} frames (2 needed); use more or "
                         "longer files, a larger val_fraction or a shorter window (lstm.context / gan.patch)")
    if len(train) < batch_size:
        raise ModelError(
            f"only {len(train)} training windows of {window} frames for batch_size {batch_size}; "
            "lower batch_size or the window (lstm.context / gan.patch)"
        )
    # primes come from their own generator: the global RNG (initialisation, dropout) is untouched
    g = torch.Generator().manual_seed(seed + 1)
    pick = torch.randperm(len(train), generator=g)[:min(N_PRIMES, len(train))]
    primes = train[pick.tolist()][:, :min(PRIME_FRAMES, window - 1)].clone()
    return TrainingWindows(train, val, norm, sorted(set(data.file_ids[val_idx].tolist())), primes)
