"""The self-contained HTML report of a search (``genaudio review RUN --report OUT``).

OUT/
  report.html          opens from disk (plots embedded as base64 PNG; no server, no network)
  configs/rankNN_<trial>.yaml   each top trial's TrainConfig (``genaudio train ENC --config ...``)
  clips/<trial>/       generated clips of each top trial: clip_XX.wav + clip_XX.png (spectrogram),
                       meta.json (what they were generated from: rebuilding reuses them)
  clips/real/          held-out real clips (the validation files the models never trained on)
  trials.csv           every trial (the table the report summarises)
"""
from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genaudio.quality import read_reference_summary
from genaudio.search.layout import REFERENCE_FILE, STUDY_FILE, STUDY_NAME, cache_dir
from genaudio import __version__, html_report
from genaudio.errors import GenaudioError, StoreError
from genaudio.review import plots
from genaudio.review.table import (Run, _fmt, _fmt_time, _num, group_names, read_history,
                                   view_rows)
from genaudio.store import atomic_write_bytes, atomic_write_json

MIN_IMPORTANCE_TRIALS = 4


# ---------------------------------------------------------------------------------------------
# pieces computed from the run


def histories(run: Run) -> dict[str, pd.DataFrame]:
    """Per-epoch history of every trial that has a folder (``result.json``)."""
    out = {}
    for _, r in run.trials.iterrows():
        p = _trial_dir(run, r.get("trial_path"))
        if p is not None:
            h = read_history(p)
            if len(h):
                out[str(r["trial_id"])] = h
    return out


def _trial_dir(run: Run, path) -> Path | None:
    if not path or (isinstance(path, float) and math.isnan(path)):
        return None
    p = Path(str(path))
    if p.is_dir():
        return p
    q = run.tune_dir() / p.name  # the RUN folder was moved or copied
    return q if q.is_dir() else None


def trial_times(hists: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``trial_id, start_s, end_s``: seconds since the first trial started (from Tune's timestamps)."""
    rows = []
    for tid, h in hists.items():
        if "timestamp" not in h:
            continue
        ts = pd.to_numeric(h["timestamp"], errors="coerce")
        tot = pd.to_numeric(h.get("time_total_s", pd.Series([0.0] * len(h))), errors="coerce").fillna(0.0)
        if ts.notna().any():
            end = float(ts.dropna().iloc[-1])
            start = float(ts.dropna().iloc[0]) - float(tot.iloc[0])
            rows.append((tid, start, end))
    df = pd.DataFrame(rows, columns=["trial_id", "start_s", "end_s"])
    if len(df):
        t0 = df["start_s"].min()
        df["start_s"] -= t0
        df["end_s"] -= t0
    return df


def param_importances(run_dir: Path) -> dict[str, Any]:
    """PED-ANOVA and fANOVA importances of the persisted Optuna study.

    Returns ``{"values": {evaluator: {param: importance}}, "notes": [str], "n_trials": int}``;
    with too few finished trials (or a missing study) ``values`` is empty and ``notes`` say why.
    """
    out: dict[str, Any] = {"values": {}, "notes": [], "n_trials": 0}
    db = run_dir / STUDY_FILE
    if not db.is_file():
        out["notes"].append(f"no Optuna study ({STUDY_FILE}) in the run")
        return out
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{db}")
        done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if t.value is not None and math.isfinite(t.value)]
    except Exception as e:  # locked/foreign database: the rest of the report still builds
        out["notes"].append(f"could not open the Optuna study: {type(e).__name__}: {e}")
        return out
    out["n_trials"] = len(done)
    if len(done) < MIN_IMPORTANCE_TRIALS:
        out["notes"].append(f"only {len(done)} finished trial(s) with a finite score in the study; "
                            f"importances need at least {MIN_IMPORTANCE_TRIALS}")
        return out
    # a copy holding only finite finished trials: +inf (NaN trials) would break the regressors
    clean = optuna.create_study(direction=study.direction)
    clean.add_trials(done)
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    for name, ev in (("PED-ANOVA", PedAnovaImportanceEvaluator()), ("fANOVA", FanovaImportanceEvaluator(seed=0))):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                vals = optuna.importance.get_param_importances(clean, evaluator=ev)
            for w in caught:  # e.g. "some regimes have less than 2 trials": shown, not printed
                note = f"{name}: {w.message}"
                if note not in out["notes"]:
                    out["notes"].append(note)
        except Exception as e:
            out["notes"].append(f"{name}: {type(e).__name__}: {e}")
            continue
        if vals:
            out["values"][name] = {k: float(v) for k, v in vals.items()}
        else:
            out["notes"].append(f"{name}: no parameter was sampled in every trial")
    out["notes"].append(f"computed on {len(done)} finished study trials (value: the judge's quality at the last judged epoch; "
                        "conditional parameters such as lstm.* / gan.* are left out as they are not in every trial)")
    return out


def group_effects(run: Run, top_ids: list[str]) -> pd.DataFrame:
    """Per optional feature group: how many top trials use it, median quality with vs without it
    (the judge's score of every trial that trained at least one epoch)."""
    df = run.trials[run.trials["rank"].notna()]
    rows = []
    for g in group_names(run.trials):
        on = df[f"param.features.{g}"].map(lambda v: v is True or v in ("True", "true", 1) or bool(v) is True
                                           if not (v is None or (isinstance(v, float) and math.isnan(v))) else False)
        rows.append((g, on))
    col, label = "quality", "quality (KID vs held-out real clips)"
    out = []
    for g, on in rows:
        s = pd.to_numeric(df[col], errors="coerce").replace([np.inf, -np.inf], np.nan)
        w, wo = s[on].dropna(), s[~on].dropna()
        out.append({"group": g, "in_top": int(df[df["trial_id"].astype(str).isin(top_ids)][f"param.features.{g}"]
                                                 .map(lambda v: v is True or v in ("True", "true", 1)).sum()),
                    "n_with": len(w), "n_without": len(wo),
                    "median_with": float(w.median()) if len(w) else np.nan,
                    "median_without": float(wo.median()) if len(wo) else np.nan,
                    "best_with": float(w.min()) if len(w) else np.nan,
                    "best_without": float(wo.min()) if len(wo) else np.nan})
    res = pd.DataFrame(out, columns=["group", "in_top", "n_with", "n_without", "median_with", "median_without",
                                     "best_with", "best_without"])
    res["effect"] = res["median_with"] - res["median_without"]
    res.attrs["score_label"] = label
    return res


def read_analyze(report_dir: str | Path) -> pd.DataFrame:
    """``groups.csv`` of a ``genaudio analyze`` report folder (or the file itself)."""
    p = Path(report_dir)
    f = p / "groups.csv" if p.is_dir() else p
    if not f.is_file():
        raise StoreError(f"{p}: no groups.csv here; --analyze takes the --out folder of `genaudio analyze`")
    try:
        df = pd.read_csv(f)
    except Exception as e:
        raise StoreError(f"{f}: cannot read ({type(e).__name__}: {e})") from None
    if "group" not in df:
        raise StoreError(f"{f}: has no `group` column; is it from `genaudio analyze`?")
    return df


# ---------------------------------------------------------------------------------------------
# per-trial files: configs and clips


def _checkpoint_file(run: Run, row: pd.Series) -> Path | None:
    from genaudio.search.layout import trial_checkpoint

    ck = row.get("checkpoint")
    recorded = None if not ck or (isinstance(ck, float) and math.isnan(ck)) else str(ck)
    tdir = _trial_dir(run, row.get("trial_path"))
    if tdir is None:
        return trial_checkpoint(Path(recorded).parent, recorded) if recorded else None
    return trial_checkpoint(tdir, recorded)


def _enc_dir(run: Run, ckpt: Path) -> Path | None:
    from genaudio.models.run import load_checkpoint

    enc = load_checkpoint(ckpt).get("enc_dir")
    if not enc:
        return None
    p = Path(enc)
    if p.is_dir():
        return p
    q = cache_dir(run.path) / p.name  # the RUN folder was moved
    return q if q.is_dir() else None


def write_config(run: Run, row: pd.Series, out: Path, rank: int) -> dict:
    """``OUT/configs/rankNN_<trial>.yaml`` and the command line that trains it for real."""
    import yaml

    from genaudio.search.trainable import best_config

    params = {k[len("param."):]: v for k, v in row.items() if str(k).startswith("param.")
              and v is not None and not (isinstance(v, float) and math.isnan(v))}
    params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
    cfg = (run.state.get("config") or {})
    params.update(epochs=int(cfg.get("epochs") or row.get("epochs") or 10), seed=int(cfg.get("seed") or 0))
    name = f"rank{rank:02d}_{row['trial_id']}.yaml"
    path = out / "configs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        doc = best_config(params)
    except GenaudioError as e:
        return {"path": None, "error": str(e), "command": ""}
    ckpt = _checkpoint_file(run, row)
    enc = None
    try:
        enc = _enc_dir(run, ckpt) if ckpt else None
    except Exception:  # unreadable checkpoint: the command names the placeholder
        enc = None
    enc_s = str(enc) if enc else "ENCODED_STORE"
    header = (f"# trial {row['trial_id']} (rank {rank}) of {run.path}: quality {_fmt(row.get('quality'))} "
              f"+- {_fmt(row.get('quality_se'))}, status {row.get('status')}, feature groups {row.get('groups')}\n"
              f"# encoder: {row.get('param.encoder.kind')} dim {row.get('param.encoder.dim')}; codes: {enc_s}\n")
    atomic_write_bytes(path, (header + yaml.safe_dump(doc, sort_keys=False)).encode())
    cmd = f"genaudio train {enc_s} --config {path} --out runs/{row['trial_id']}"
    return {"path": path, "error": None, "command": cmd, "enc_dir": enc}


def _meta_matches(folder: Path, meta: dict) -> bool:
    f = folder / "meta.json"
    if not f.is_file():
        return False
    try:
        old = json.loads(f.read_text())
    except ValueError:
        return False
    return old.get("key") == meta["key"] and all((folder / Path(c["wav"]).name).is_file() or
                                                 (folder / Path(c.get("png", "")).name).is_file()
                                                 for c in old.get("clips", []))


def trial_clips(run: Run, row: pd.Series, out: Path, *, n: int, seconds: float, seed: int = 0) -> dict:
    """Generated clips of one trial in ``OUT/clips/<trial>/`` (reused when already there).

    Returns ``{"clips": [{"wav", "png"}], "cached": bool, "error": str | None}``.
    """
    from genaudio.models.generate import write_clips

    folder = out / "clips" / str(row["trial_id"])
    ckpt = _checkpoint_file(run, row)
    if ckpt is None:
        return {"clips": [], "cached": False, "error": "no checkpoint in the trial folder"}
    st = ckpt.stat()
    meta = {"key": {"checkpoint": str(ckpt), "mtime": st.st_mtime, "size": st.st_size, "n": n, "seconds": seconds,
                    "seed": seed}}
    if _meta_matches(folder, meta):
        return {"clips": json.loads((folder / "meta.json").read_text())["clips"], "cached": True, "error": None}
    try:
        enc = _enc_dir(run, ckpt)
        written = write_clips(ckpt, folder, n=n, seconds=seconds, seed=seed, encoder=enc)
    except Exception as e:  # one trial's broken checkpoint must not stop the report
        msg = str(e) if isinstance(e, GenaudioError) else f"{type(e).__name__}: {e}"
        return {"clips": [], "cached": False, "error": msg[:300]}
    clips = [{"wav": Path(c["wav"]).name if c.get("wav") else None, "png": Path(c["png"]).name,
              "npy": Path(c["npy"]).name if c.get("npy") else None} for c in written]
    atomic_write_json(folder / "meta.json", {**meta, "clips": clips})
    return {"clips": clips, "cached": False, "error": None}


def real_clips(run: Run, row: pd.Series, out: Path, *, n: int, seconds: float, seed: int = 0) -> dict:
    """Held-out real clips (validation files of the trial's split) in ``OUT/clips/real/``, each
    with its reconstruction by the trial's encoder: what the decoder alone loses.

    Returns ``{"clips": [{"wav", "png", "recon_wav", "recon_png"}], "cached", "error"}``.
    """
    from genaudio.encoders.store import read_codes
    from genaudio.models.generate import load_run, load_run_encoder
    from genaudio.models.score import store_windows
    from genaudio.quality import read_window

    folder = out / "clips" / "real"
    ckpt = _checkpoint_file(run, row)
    if ckpt is None:
        return {"clips": [], "cached": False, "error": "no checkpoint to find the held-out files"}
    meta = {"key": {"checkpoint_trial": str(row["trial_id"]), "n": n, "seconds": seconds, "seed": seed}}
    if _meta_matches(folder, meta):
        return {"clips": json.loads((folder / "meta.json").read_text())["clips"], "cached": True, "error": None}
    try:
        model = load_run(ckpt)
        enc_dir = _enc_dir(run, ckpt)
        enc = load_run_encoder(model, enc_dir)
        if not enc.has_audio_decoder:
            return {"clips": [], "cached": False, "error": "the encoder has no audio decoder"}
        windows = store_windows(read_codes(enc_dir).ids, seconds=seconds, files=model.val_files)
        rng = np.random.default_rng(seed)
        picked = [windows[i] for i in sorted(rng.choice(len(windows), min(n, len(windows)), replace=False))]
        audio = [read_window(w, seconds=seconds, sample_rate=int(enc.sample_rate)) for w in picked]
        recon = [enc.reconstruct(y) for y in audio]
    except Exception as e:
        msg = str(e) if isinstance(e, GenaudioError) else f"{type(e).__name__}: {e}"
        return {"clips": [], "cached": False, "error": msg[:300]}
    folder.mkdir(parents=True, exist_ok=True)
    sr = int(enc.sample_rate)
    clips = []
    for i, (y, r) in enumerate(zip(audio, recon)):
        real = _write_clip(y, sr, folder / f"real_{i:02d}", title=f"held-out real clip {i}")
        rec = _write_clip(r, sr, folder / f"recon_{i:02d}", title=f"real clip {i} through the encoder and decoder")
        clips.append({**real, "recon_wav": rec["wav"], "recon_png": rec["png"], "npy": None})
    atomic_write_json(folder / "meta.json", {**meta, "clips": clips})
    return {"clips": clips, "cached": False, "error": None}


def _write_clip(y: np.ndarray, sr: int, stem: Path, *, title: str) -> dict:
    """``stem.wav`` (peak-normalised when louder than full scale) and ``stem.png`` (spectrogram)."""
    import soundfile as sf

    from genaudio.models.generate import plot_spectrogram

    y = np.asarray(y, np.float32)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    wav, png = stem.with_suffix(".wav"), stem.with_suffix(".png")
    sf.write(wav, y / peak * 0.99 if peak > 0.99 else y, sr, subtype="PCM_16")
    plot_spectrogram(y, sr, png, title=title)
    return {"wav": wav.name, "png": png.name}


# ---------------------------------------------------------------------------------------------
# HTML (markup and prose in genaudio/templates/review.html.j2)


def _card(row: pd.Series, rank: int, conf: dict, i: int) -> dict:
    """One top trial's card: its score, model, encoder, every sampled parameter and its config."""
    items = [("quality", f"{_fmt(row.get('quality'))} ± {_fmt(row.get('quality_se'))}"
                          + (f" (judged at epoch {int(row['quality_epoch'])})" if _num(row.get("quality_epoch")) else "")),
             ("decoder alone", f"{_fmt(row.get('decoder_quality'))} ± {_fmt(row.get('decoder_quality_se'))}"),
             ("model", row.get("param.model.family")),
             ("encoder", f"{row.get('param.encoder.kind')} dim {row.get('param.encoder.dim')}"),
             ("feature groups", row.get("groups")),
             ("epochs", row.get("epochs")), ("wall time", _fmt_time(row.get("wall_time_s"))),
             ("status", row.get("status"))]
    for k in sorted(row.index):
        if k.startswith("param.") and not k.startswith("param.features.") and k not in (
                "param.model.family", "param.encoder.kind", "param.encoder.dim"):
            v = row[k]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            items.append((k[len("param."):], _fmt(v) if isinstance(v, float) else v))
    for k in ("final.val_loss", "final.code_score", "judge_fraction"):
        if _num(row.get(k)) is not None:
            items.append((k, _fmt(row.get(k))))
    return {"rank": rank, "trial_id": str(row["trial_id"]), "items": [(k, "" if v is None else v) for k, v in items],
            "conf": conf, "i": i}


def _start_times(trials: pd.DataFrame, hists: dict[str, pd.DataFrame]) -> pd.DataFrame:
    times = trial_times(hists)
    if times.empty and len(trials):
        # no trial folders (a RUN copied without tune/): table order and summed trial wall times
        w = pd.to_numeric(trials["wall_time_s"], errors="coerce").fillna(0.0).to_numpy(float)
        order = np.argsort(trials["trial_id"].astype(str).to_numpy(), kind="stable")
        end = np.empty(len(w))
        end[order] = np.cumsum(w[order])
        times = pd.DataFrame({"trial_id": trials["trial_id"].astype(str), "start_s": end - w, "end_s": end})
    return times


def _groups_context(run: Run, top_ids: list[str], analyze_df: pd.DataFrame | None, plot_dir: Path) -> dict:
    ge = group_effects(run, top_ids)
    if ge.empty:
        return {"groups": None, "groups_score_label": "", "groups_plot": None}
    show = ge.copy()
    if analyze_df is not None:
        keep = [c for c in ("group", "accuracy_only", "accuracy_without", "accuracy_drop", "permutation",
                            "in_subset") if c in analyze_df]
        a = analyze_df[keep].rename(columns={c: f"analyze: {c}" for c in keep if c != "group"})
        show = show.merge(a, on="group", how="left")
    plot = None
    if ge["median_with"].notna().any() or ge["median_without"].notna().any():
        plot = html_report.try_plot(plots.group_effects, ge, plot_dir / "groups.png", alt="feature groups")
    return {"groups": show, "groups_score_label": ge.attrs["score_label"], "groups_plot": plot}


def _listen_context(run: Run, topdf: pd.DataFrame, out: Path, *, clips: int, seconds: float, say) -> dict:
    listen = []
    for _, r in topdf.iterrows():
        tid = str(r["trial_id"])
        say(f"clips of trial {tid} ...")
        res = trial_clips(run, r, out, n=clips, seconds=seconds)
        listen.append({"rank": int(r["rank"]), "trial_id": tid, "family": r.get("param.model.family"),
                       "kind": r.get("param.encoder.kind"), "dim": r.get("param.encoder.dim"),
                       "groups": r.get("groups"), **res})
    say("held-out real clips ...")
    return {"listen": listen, "real": real_clips(run, topdf.iloc[0], out, n=clips, seconds=seconds)}


def _trials_context(trials: pd.DataFrame, top_ids: list[str]) -> dict:
    bad = trials[trials["status"].isin(["error", "nan"])]
    failures = None
    if len(bad):
        failures = (bad.assign(reason=bad["reason"].fillna("").astype(str))
                    .groupby(["status", "reason"]).agg(trials=("trial_id", "count"),
                                                        examples=("trial_id", lambda s: ", ".join(s.astype(str).head(5))))
                    .reset_index().sort_values("trials", ascending=False))
    rest = trials[~trials["trial_id"].astype(str).isin(top_ids)]
    beyond = None
    if len(rest):
        fam = rest.groupby(rest.get("param.model.family", pd.Series("-", index=rest.index)).fillna("-"))
        beyond = fam.agg(trials=("trial_id", "count"), best=("quality", "min"), median=("quality", "median")).reset_index()
        beyond.columns = ["model", "trials", "best quality", "median quality"]
    return {"n_failed": len(bad), "failures": failures, "beyond_top": beyond, "n_beyond_top": len(rest),
            "n_trials": len(trials), "all_trials": pd.DataFrame(view_rows(trials))}


def build_report(run: Run, out: str | Path, *, top: int = 5, clips: int = 2, seconds: float = 4.0,
                 analyze: str | Path | None = None, progress=None) -> Path:
    """Write ``OUT/report.html`` (and configs, clips, plots) for ``run``; return its path.

    Parameters
    ----------
    top : int
        Trials shown in detail (cards, clips, learning curves); the rest are summarised.
    clips : int
        Generated clips per top trial (0: no audio); the same number of real held-out clips.
    seconds : float
        Length of each clip (s).
    analyze : path, optional
        A ``genaudio analyze`` report folder; its group ablation is shown next to the search's.
    """
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pdir = out / "plots"
    pdir.mkdir(exist_ok=True)
    analyze_df = read_analyze(analyze) if analyze else None
    trials = run.trials
    if trials.empty:
        raise StoreError(f"{run.path}: the search has no trials yet (nothing to report); "
                         "wait for the first trial to start, or check the search's log")
    topdf = run.top(top)
    top_ids = topdf["trial_id"].astype(str).tolist()
    say(f"reading per-epoch histories of {len(trials)} trials ...")
    hists = histories(run)
    times = _start_times(trials, hists)
    cards = [_card(r, int(r["rank"]), write_config(run, r, out, int(r["rank"])), i)
             for i, (_, r) in enumerate(topdf.iterrows())]
    groups = topdf["tie_group"].tolist() if "tie_group" in topdf else [None] * len(cards)
    for i, c in enumerate(cards):  # '=': the judge cannot tell this trial from the one above
        c["rank"] = f"{c['rank']}=" if i and _num(groups[i]) is not None and groups[i] == groups[i - 1] else c["rank"]

    say("plotting ...")
    figs = {"history": html_report.try_plot(plots.history, trials, times, pdir / "history.png",
                                            alt="optimisation history"),
            "curves": html_report.try_plot(plots.learning_curves, hists, trials, top_ids, pdir / "curves.png",
                                           alt="learning curves")}
    params = [c for c in trials.columns if c.startswith("param.") and c != "param.features.core"
              and trials[c].dropna().astype(str).nunique() > 1]
    figs["parallel"] = html_report.try_plot(plots.parallel_coordinates, trials, params, pdir / "parallel.png",
                                            top_ids=top_ids, alt="parallel coordinates")
    say("parameter importance (PED-ANOVA, fANOVA) ...")
    imp = param_importances(run.path)
    figs["importance"] = None
    importance = None
    if imp["values"]:
        figs["importance"] = html_report.try_plot(plots.importance_bars, imp["values"], pdir / "importance.png",
                                                  alt="importance")
        importance = pd.DataFrame(imp["values"]).reset_index().rename(columns={"index": "parameter"})
    ctx = {"run_name": run.path.name, "run_path": str(run.path), "status_line": run.status_line(),
           "version": __version__, "built": time.strftime("%Y-%m-%d %H:%M:%S"), "finished": run.finished,
           "cards": cards, "n_stopped": int((trials["status"] == "stopped").sum()),
           "importance": importance, "importance_notes": imp["notes"], "analyze": analyze_df,
           "listen": [], "real": None, "reference": read_reference_summary(run.path / REFERENCE_FILE)}
    ctx.update(_groups_context(run, top_ids, analyze_df, pdir))
    figs["groups"] = ctx.pop("groups_plot")
    if clips > 0 and len(topdf):
        ctx.update(_listen_context(run, topdf, out, clips=clips, seconds=seconds, say=say))
    ctx.update(_trials_context(trials, top_ids))
    trials.drop(columns=[c for c in ("source",) if c in trials]).to_csv(out / "trials.csv", index=False)
    path = out / "report.html"
    html = html_report.render("review.html.j2", plots=figs, build_seconds=time.perf_counter() - t0, **ctx)
    atomic_write_bytes(path, html.encode())
    return path
