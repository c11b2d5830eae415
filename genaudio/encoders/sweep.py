"""Rate-distortion sweeps: every encoder over its sizes, as a table and a plot."""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genaudio.encoders.base import EncoderConfig, encoder_class, make_encoder
from genaudio.encoders.metrics import evaluate
from genaudio.errors import ConfigError, EncoderError

SWEEP_KEYS = ("dims", "precisions", "downsample")


def parse_sweep(spec: str | None) -> dict[str, list]:
    """``"dims=4,8,16;precisions=float16,uint8"`` -> ``{"dims": [4, 8, 16], "precisions": [...]}``.

    Keys: ``dims`` (ints), ``precisions`` (float16/float32/uint8), ``downsample`` (ints).
    Separate keys with ``;`` or spaces.
    """
    out: dict[str, list] = {}
    if not spec:
        return out
    for part in spec.replace(";", " ").split():
        if "=" not in part:
            raise ConfigError(f"--sweep: expected key=v1,v2,... got {part!r} (keys: {', '.join(SWEEP_KEYS)})")
        key, _, values = part.partition("=")
        key = key.strip()
        if key not in SWEEP_KEYS:
            raise ConfigError(f"--sweep: unknown key {key!r}; valid keys are {', '.join(SWEEP_KEYS)}")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items:
            raise ConfigError(f"--sweep: {key} has no values")
        if key in ("dims", "downsample"):
            try:
                vals = [int(v) for v in items]
            except ValueError:
                raise ConfigError(f"--sweep: {key} must be integers, got {values!r}") from None
            if min(vals) < 1:
                raise ConfigError(f"--sweep: {key} must be >= 1")
            out[key] = vals
        else:
            out[key] = items
    return out


def label_of(cfg: EncoderConfig) -> str:
    """A line label: kind, core (if not the kind's only one), downsample, precision."""
    kind = encoder_class(cfg.kind)
    parts = [cfg.kind]
    if kind.fixed_core is None:
        parts.append(cfg.core)
    if cfg.groups:
        parts.append("+".join(cfg.groups))
    if cfg.downsample > 1 and not kind.takes_waveform:
        parts.append(f"ds{cfg.downsample}")
    parts.append({"float16": "f16", "float32": "f32", "uint8": "u8"}[kind.precision_of(cfg)])
    return "-".join(parts)


def sweep_configs(base: EncoderConfig, *, encoders: Sequence[str], dims: Sequence[int],
                  precisions: Sequence[str] | None = None, downsample: Sequence[int] | None = None
                  ) -> list[EncoderConfig]:
    """The grid of configs: ``encoders x dims x precisions x downsample`` (mulaw once)."""
    out = []
    for kind in encoders:
        if encoder_class(kind).takes_waveform:
            # a waveform coder has one configuration: a code frame per hop of samples
            out.append(make_encoder(kind, dim=base.hop_length, config=base).config)
            continue
        for p in precisions or [base.precision]:
            for f in downsample or [base.downsample]:
                for d in dims:
                    if kind == "mel" and d < 2:
                        continue
                    opts = {"precision": p, "downsample": f}
                    out.append(make_encoder(kind, dim=d, config=base, **opts).config)
    return out


def rate_distortion(train: Sequence, test: Sequence[np.ndarray], configs: Sequence[EncoderConfig], *,
                    progress: bool = True, decoders: dict | None = None) -> pd.DataFrame:
    """Fit each config on ``train`` and measure it on the held-out waveforms ``test``.

    Parameters
    ----------
    train : sequence
        Training inputs (waveforms, or frame mappings for encoders that do not need audio).
    test : sequence of np.ndarray
        Held-out waveforms ``(samples,)`` at the encoders' sample rate.
    decoders : dict, optional
        ``{core: LearnedDecoder}``: encoders on that core decode with it (else Griffin-Lim).

    Returns
    -------
    pandas.DataFrame
        One row per config: ``label, encoder, dim, precision, downsample, core, decoder,
        code_rate_hz, bitrate, compression_ratio, sc, lsd_db, mrstft, snr_db, fit_s, eval_s, error``.
        A config that cannot be fitted (e.g. a dim larger than the data allows) gets its
        ``error`` and NaN metrics instead of stopping the sweep.
    """
    rows = []
    it = list(configs)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="rate-distortion", unit="encoder")
    for cfg in it:
        kind = encoder_class(cfg.kind)
        row = {"label": label_of(cfg), "encoder": cfg.kind, "dim": cfg.dim, "precision": kind.precision_of(cfg),
               "downsample": cfg.downsample, "core": kind.core_of(cfg), "error": ""}
        try:
            t0 = time.perf_counter()
            enc = make_encoder(config=cfg).fit(train)
            if (decoders or {}).get(cfg.core) is not None and enc.can_learn_decoder:
                enc.set_decoder(decoders[cfg.core])
            row["decoder"] = enc.decoder_name
            t1 = time.perf_counter()
            m = evaluate(enc, test)
            row.update({k: m[k] for k in ("code_rate_hz", "bitrate", "compression_ratio", "sc", "lsd_db",
                                          "mrstft")})
            row["snr_db"] = m.get("snr_db", float("nan"))
            row["fit_s"], row["eval_s"] = t1 - t0, time.perf_counter() - t1
        except EncoderError as e:
            row["error"] = str(e)
        rows.append(row)
    cols = ["label", "encoder", "dim", "precision", "downsample", "core", "decoder", "code_rate_hz", "bitrate",
            "compression_ratio", "sc", "lsd_db", "mrstft", "snr_db", "fit_s", "eval_s", "error"]
    return pd.DataFrame(rows).reindex(columns=cols)


def value_at_ratio(df: pd.DataFrame, label: str, ratio: float, *, metric: str = "lsd_db",
                   tolerance: float = 0.15) -> float | None:
    """``metric`` of line ``label`` at compression ``ratio``: interpolated in log-ratio between the
    nearest measured points, or the nearest point within ``tolerance`` (relative); None if the
    line does not reach that ratio."""
    d = df[(df.label == label) & df[metric].notna()].sort_values("compression_ratio")
    if d.empty:
        return None
    x = np.log(d.compression_ratio.to_numpy(float))
    y = d[metric].to_numpy(float)
    lx = math.log(ratio)
    exact = np.abs(x - lx) < 1e-9
    if exact.any():
        return float(y[exact][0])
    if x.min() <= lx <= x.max() and len(x) > 1:
        return float(np.interp(lx, x, y))
    near = int(np.argmin(np.abs(x - lx)))
    if abs(math.exp(x[near]) / ratio - 1) <= tolerance:
        return float(y[near])
    return None


#: y-axis label of each metric :func:`plot_rate_distortion` can draw
METRIC_LABELS = {"lsd_db": "log-spectral distance (dB, lower is better)",
                 "sc": "spectral convergence (lower is better)",
                 "mrstft": "multi-resolution STFT distance (lower is better)"}


def plot_rate_distortion(df: pd.DataFrame, path: str | Path, *, title: str | None = None,
                         metrics: Sequence[str] = ("lsd_db", "sc"), labels: dict | None = None,
                         errors: dict | None = None, references: dict | None = None) -> Path:
    """PNG: each metric vs compression ratio, one panel per metric, one line per ``label``.

    ``metrics`` are columns of ``df``; ``labels`` adds or overrides y-axis labels
    (:data:`METRIC_LABELS` has the standard ones); ``errors`` maps a metric to the column of its
    standard error, drawn as +-1 SE bars; ``references`` maps a metric to ``(value, text)`` pairs
    drawn as labelled horizontal lines (e.g. the score of the originals themselves).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    ylabels = {**METRIC_LABELS, **(labels or {})}
    d = df[df[metrics[0]].notna()]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.8), squeeze=False)
    axes = axes[0]
    for label, g in d.groupby("label", sort=True):
        g = g.sort_values("compression_ratio")
        marker = "s" if (g.core == "waveform").all() else "o"
        for ax, metric in zip(axes, metrics):
            err = (errors or {}).get(metric)
            ax.errorbar(g.compression_ratio, g[metric], yerr=g[err] if err else None, marker=marker, label=label,
                        capsize=3 if err else 0)
            if ax is axes[0]:
                for _, r in g.iterrows():
                    ax.annotate(str(int(r.dim)), (r.compression_ratio, r[metric]), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
    for ax, metric in zip(axes, metrics):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("compression ratio vs 16-bit PCM (x, log scale)")
        ax.set_ylabel(ylabels.get(metric, metric))
        ax.grid(True, which="both", alpha=0.3)
        for r in (16, 32):
            ax.axvline(r, color="grey", lw=0.8, ls=":")
        for value, text in (references or {}).get(metric, ()):
            reference_line(ax, value, text)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or "Rate-distortion on held-out clips (numbers: code dims)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reference_line(ax, value: float, text: str = "") -> None:
    """A dashed horizontal line at ``value`` on matplotlib axes ``ax``, labelled ``text`` at the left."""
    ax.axhline(value, color="black", lw=0.8, ls="--")
    if text:
        ax.annotate(text, (0.01, value), xycoords=("axes fraction", "data"), fontsize=7,
                    textcoords="offset points", xytext=(0, 3))


def summary(df: pd.DataFrame, ratios: Sequence[float] = (16.0, 32.0)) -> dict:
    """``{label: {"lsd_at_16x": ..., "lsd_at_32x": ...}}`` plus the best label per ratio."""
    out: dict = {"per_encoder": {}}
    for label in sorted(df.label.unique()):
        out["per_encoder"][label] = {f"lsd_at_{int(r)}x": value_at_ratio(df, label, r) for r in ratios}
    for r in ratios:
        vals = {k: v[f"lsd_at_{int(r)}x"] for k, v in out["per_encoder"].items()
                if v[f"lsd_at_{int(r)}x"] is not None}
        best = min(vals, key=vals.get) if vals else None
        out[f"best_at_{int(r)}x"] = {"label": best, "lsd_db": vals.get(best)} if best else None
    return out


__all__ = ["parse_sweep", "label_of", "sweep_configs", "rate_distortion", "value_at_ratio",
           "plot_rate_distortion", "reference_line", "summary"]
