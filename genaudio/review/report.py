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

import base64
import html
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genaudio import __version__
from genaudio.errors import GenaudioError, StoreError
from genaudio.review import plots
from genaudio.review.table import (STUDY_FILE, Run, _fmt, _fmt_time, _num, group_names, read_history,
                                   view_rows)
from genaudio.store import atomic_write_bytes, atomic_write_json

STUDY_NAME = "genaudio-search"
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
    out["notes"].append(f"computed on {len(done)} finished study trials (value: last per-epoch score; "
                        "conditional parameters such as lstm.* / gan.* are left out as they are not in every trial)")
    return out


def group_effects(run: Run, top_ids: list[str]) -> pd.DataFrame:
    """Per optional feature group: how many top trials use it, median score with vs without it.

    The score is ``final.frechet`` when at least two finished trials exist on each side, else the
    best per-epoch score (available for every ranked trial).
    """
    df = run.trials[run.trials["rank"].notna()]
    groups = group_names(run.trials)
    rows = []
    use_fd = "final.frechet" in df
    for g in groups:
        on = df[f"param.features.{g}"].map(lambda v: v is True or v in ("True", "true", 1) or bool(v) is True
                                           if not (v is None or (isinstance(v, float) and math.isnan(v))) else False)
        fd = pd.to_numeric(df["final.frechet"], errors="coerce") if use_fd else None
        if fd is None or fd[on].notna().sum() < 2 or fd[~on].notna().sum() < 2:
            use_fd = False
        rows.append((g, on))
    col = "final.frechet" if use_fd else "best_score"
    label = "Frechet distance (finished trials)" if use_fd else "best per-epoch score"
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
    cands = []
    ck = row.get("checkpoint")
    if ck and not (isinstance(ck, float) and math.isnan(ck)):
        ck = Path(str(ck))
        tdir = _trial_dir(run, row.get("trial_path"))
        cands += [ck, tdir / ck.name if tdir else ck]
    tdir = _trial_dir(run, row.get("trial_path"))
    if tdir is not None:
        cands += sorted(tdir.glob("checkpoint_*"), reverse=True)
        cands.append(tdir / "model" / "checkpoints")
    for c in cands:
        for name in ("last.pt", "best.pt"):
            if (c / name).is_file():
                return c / name
    return None


def _enc_dir(run: Run, ckpt: Path) -> Path | None:
    from genaudio.models.train import load_checkpoint

    enc = load_checkpoint(ckpt).get("enc_dir")
    if not enc:
        return None
    p = Path(enc)
    if p.is_dir():
        return p
    q = run.path / "cache" / "encoders" / p.name  # the RUN folder was moved
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
    header = (f"# trial {row['trial_id']} (rank {rank}) of {run.path}: score {_fmt(row.get('score'))} "
              f"({row.get('score_kind') or '-'}), status {row.get('status')}, feature groups {row.get('groups')}\n"
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
    """Held-out real clips (validation files of the best trial's split) in ``OUT/clips/real/``."""
    import soundfile as sf

    from genaudio.models.generate import load_run, load_run_encoder, plot_spectrogram
    from genaudio.models.score import _held_out

    folder = out / "clips" / "real"
    ckpt = _checkpoint_file(run, row)
    if ckpt is None:
        return {"clips": [], "cached": False, "error": "no checkpoint to find the held-out files", "reference": ""}
    meta_key = {"checkpoint_trial": str(row["trial_id"]), "n": n, "seconds": seconds, "seed": seed}
    meta = {"key": meta_key}
    if _meta_matches(folder, meta):
        d = json.loads((folder / "meta.json").read_text())
        return {"clips": d["clips"], "cached": True, "error": None, "reference": d.get("reference", "")}
    try:
        model = load_run(ckpt)
        enc = load_run_encoder(model, _enc_dir(run, ckpt))
        if not enc.has_audio_decoder:
            return {"clips": [], "cached": False, "error": "the encoder has no audio decoder", "reference": ""}
        if not model.enc_dir or not Path(model.enc_dir).is_dir():
            model.enc_dir = str(_enc_dir(run, ckpt))
        _, audio, reference = _held_out(model, enc, n=n, seed=seed)
    except Exception as e:
        msg = str(e) if isinstance(e, GenaudioError) else f"{type(e).__name__}: {e}"
        return {"clips": [], "cached": False, "error": msg[:300], "reference": ""}
    folder.mkdir(parents=True, exist_ok=True)
    sr = int(enc.sample_rate)
    clips = []
    for i, y in enumerate(audio or []):
        y = np.asarray(y, np.float32)[: int(round(seconds * sr))]
        wav, png = folder / f"real_{i:02d}.wav", folder / f"real_{i:02d}.png"
        peak = float(np.max(np.abs(y))) if len(y) else 0.0
        sf.write(wav, y / peak * 0.99 if peak > 0.99 else y, sr, subtype="PCM_16")
        plot_spectrogram(y, sr, png, title=f"held-out real clip {i} ({reference})")
        clips.append({"wav": wav.name, "png": png.name, "npy": None})
    atomic_write_json(folder / "meta.json", {**meta, "clips": clips, "reference": reference})
    return {"clips": clips, "cached": False, "error": None, "reference": reference}


# ---------------------------------------------------------------------------------------------
# HTML


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1400px;padding:0 16px;color:#222}
h1{font-size:1.6em;margin-bottom:4px} h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px}
.muted{color:#666;font-size:.9em} table{border-collapse:collapse;font-size:.85em;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top} th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:12px;overflow-x:auto;padding-bottom:8px}
.card{flex:0 0 330px;border:1px solid #ccc;border-radius:6px;padding:10px;background:#fafafa}
.card h3{margin:0 0 6px 0;font-size:1.05em} .card table{width:100%}
pre.cmd{background:#272822;color:#f8f8f2;padding:6px;border-radius:4px;white-space:pre-wrap;word-break:break-all;font-size:.78em;margin:6px 0}
button.copy{font-size:.8em;cursor:pointer} img.plot{max-width:100%;border:1px solid #eee}
.clips{display:flex;flex-wrap:wrap;gap:10px}.clip{width:420px;font-size:.8em}.clip img{width:100%}.clip audio{width:100%}
.status-error,.status-nan{color:#b00}.status-stopped{color:#c60}.status-completed{color:#06c}.status-running{color:#080}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px;margin:8px 0}
details summary{cursor:pointer;font-weight:600}
"""

JS = """
function copyCmd(id){var t=document.getElementById(id).textContent;
 try{if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(t).catch(function(){});return;}}catch(e){}
 var r=document.createRange();r.selectNodeContents(document.getElementById(id));var s=window.getSelection();s.removeAllRanges();s.addRange(r);
 try{document.execCommand('copy');}catch(e){}}
window.addEventListener('load',function(){
 var im=document.images,ok=0;for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}
 document.body.setAttribute('data-images-total',im.length);document.body.setAttribute('data-images-loaded',ok);
 var au=document.querySelectorAll('audio'),n=au.length,done=0,good=0;
 document.body.setAttribute('data-audio-total',n);document.body.setAttribute('data-audio-playable',0);
 function fin(a,isOk){if(a.dataset.checked)return;a.dataset.checked=1;done++;if(isOk)good++;else{
   var m=document.createElement('div');m.className='status-error';m.textContent='could not load '+a.getAttribute('src');a.parentNode.appendChild(m);}
   document.body.setAttribute('data-audio-playable',good);document.body.setAttribute('data-audio-checked',done);}
 au.forEach(function(a){
   if(a.readyState>=1&&a.duration>0){fin(a,true);return;}
   a.addEventListener('loadedmetadata',function(){fin(a,a.duration>0);});
   a.addEventListener('error',function(){fin(a,false);});
   a.load();});
});
"""


def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img class="plot" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _plot(fn, *args, alt: str, **kw) -> str:
    """An embedded plot, or a one-line note when this plot cannot be drawn from what the run holds
    (an odd partial run must not cost the whole report)."""
    try:
        return _img(fn(*args, **kw), alt)
    except Exception as e:
        return f"<p class='status-error'>{_e(alt)}: could not be drawn ({_e(type(e).__name__)}: {_e(e)})</p>"


def _table(df: pd.DataFrame, *, num_cols: tuple = (), max_rows: int | None = None) -> str:
    rows = df if max_rows is None else df.head(max_rows)
    head = "".join(f"<th>{_e(c)}</th>" for c in rows.columns)
    body = []
    for _, r in rows.iterrows():
        cells = []
        for c in rows.columns:
            v = r[c]
            if isinstance(v, float):
                cells.append(f'<td class="num">{_e(_fmt(v))}</td>')
            elif c == "status":
                cells.append(f'<td class="status-{_e(v)}">{_e(v)}</td>')
            else:
                cells.append(f"<td>{_e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _card(row: pd.Series, rank: int, conf: dict, i: int) -> str:
    items = [("score", f"{_fmt(row.get('score'))} ({row.get('score_kind') or '-'})"),
             ("best per-epoch score", _fmt(row.get("best_score"))),
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
    for k in ("final.ndb", "final.val_loss", "final.code_fd"):
        if _num(row.get(k)) is not None:
            items.append((k, _fmt(row.get(k))))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    if conf.get("path"):
        cmd = (f'<pre class="cmd" id="cmd{i}">{_e(conf["command"])}</pre>'
               f'<button class="copy" onclick="copyCmd(\'cmd{i}\')">copy</button> '
               f'<a href="configs/{_e(conf["path"].name)}">{_e(conf["path"].name)}</a>')
    else:
        cmd = f'<p class="status-error">no config: {_e(conf.get("error"))}</p>'
    return (f'<div class="card"><h3>#{rank} trial {_e(row["trial_id"])}</h3>'
            f"<table>{rows}</table>{cmd}</div>")


def _clip_html(rel: str, c: dict, label: str) -> str:
    img = f'<img alt="spectrogram {_e(label)}" src="{_e(rel)}/{_e(c["png"])}">' if c.get("png") else ""
    if c.get("wav"):
        media = f'<audio controls preload="metadata" src="{_e(rel)}/{_e(c["wav"])}"></audio>'
    else:
        media = "<div class='muted'>codes only (encoder without audio decoder)</div>"
    return f'<div class="clip"><div>{_e(label)}</div>{media}{img}</div>'


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
    (out / "plots").mkdir(exist_ok=True)
    analyze_df = read_analyze(analyze) if analyze else None
    trials = run.trials
    if trials.empty:
        raise StoreError(f"{run.path}: the search has no trials yet (nothing to report); "
                         "wait for the first trial to start, or check the search's log")
    topdf = run.top(top)
    top_ids = topdf["trial_id"].astype(str).tolist()
    say(f"reading per-epoch histories of {len(trials)} trials ...")
    hists = histories(run)
    times = trial_times(hists)
    if times.empty and len(trials):
        # no trial folders (a RUN copied without tune/): table order and summed trial wall times
        w = pd.to_numeric(trials["wall_time_s"], errors="coerce").fillna(0.0).to_numpy(float)
        order = np.argsort(trials["trial_id"].astype(str).to_numpy(), kind="stable")
        end = np.empty(len(w))
        end[order] = np.cumsum(w[order])
        times = pd.DataFrame({"trial_id": trials["trial_id"].astype(str), "start_s": end - w, "end_s": end})

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>genaudio review: {_e(run.path.name)}</title>"
             f"<style>{CSS}</style><script>{JS}</script></head><body>",
             f"<h1>Search review: {_e(run.path)}</h1>",
             f"<p class='muted'>{_e(run.status_line())}. genaudio {__version__}, built "
             f"{time.strftime('%Y-%m-%d %H:%M:%S')}. Lower scores are better: <b>score</b> is the Frechet distance of "
             "generated vs held-out real clips in genaudio's feature space for trials that finished (kind "
             "<i>frechet</i>), otherwise the best per-epoch code-space score (kind <i>per-epoch</i>).</p>"]
    if not run.finished:
        parts.append("<p class='note'>The search is still running or was interrupted: this report shows what the "
                     "trial folders hold now. Trials without all epochs are shown as <i>running</i> (they may also "
                     "have been stopped by ASHA; the final results table will tell).</p>")

    # --- best configurations
    parts.append(f"<h2>Best configurations (top {len(topdf)})</h2>")
    if topdf.empty:
        parts.append("<p class='note'>No trial has a score: every trial failed or none finished an epoch. "
                     "See <a href='#failures'>failures</a>.</p>")
    confs = {}
    cards = []
    for i, (_, r) in enumerate(topdf.iterrows()):
        rank = int(r["rank"])
        confs[str(r["trial_id"])] = conf = write_config(run, r, out, rank)
        cards.append(_card(r, rank, conf, i))
    if cards:
        parts.append("<p class='muted'>Each card's command trains the configuration for real on the trial's "
                     "cached codes; its YAML is in <code>configs/</code> beside this report.</p>")
        parts.append(f"<div class='cards'>{''.join(cards)}</div>")

    # --- history
    say("plotting ...")
    parts.append("<h2>Optimisation history</h2>")
    parts.append(_plot(plots.history, trials, times, out / "plots" / "history.png", alt="optimisation history"))
    parts.append("<h2>Learning curves</h2>")
    parts.append(_plot(plots.learning_curves, hists, trials, top_ids, out / "plots" / "curves.png", alt="learning curves"))
    n_stopped = int((trials["status"] == "stopped").sum())
    parts.append(f"<p class='muted'>{n_stopped} trial(s) were stopped early by ASHA (orange crosses at the epoch "
                 "they stopped).</p>")

    # --- parameters
    params = [c for c in trials.columns if c.startswith("param.") and c != "param.features.core"
              and trials[c].dropna().astype(str).nunique() > 1]
    parts.append("<h2>Parameters vs score</h2>")
    parts.append(_plot(plots.parallel_coordinates, trials, params, out / "plots" / "parallel.png", top_ids=top_ids,
                       alt="parallel coordinates"))
    say("parameter importance (PED-ANOVA, fANOVA) ...")
    imp = param_importances(run.path)
    parts.append("<h2>Hyperparameter importance</h2>")
    if imp["values"]:
        parts.append(_plot(plots.importance_bars, imp["values"], out / "plots" / "importance.png", alt="importance"))
        tab = pd.DataFrame(imp["values"]).reset_index().rename(columns={"index": "parameter"})
        parts.append(_table(tab))
    for note in imp["notes"]:
        parts.append(f"<p class='muted'>{_e(note)}</p>")

    # --- feature groups
    parts.append("<h2>Which feature groups matter for generation</h2>")
    ge = group_effects(run, top_ids)
    if ge.empty:
        parts.append("<p class='muted'>The search space had no optional feature groups (core only).</p>")
    else:
        parts.append(f"<p class='muted'>Score: {_e(ge.attrs['score_label'])}; effect = median with - median without "
                     "(negative: trials using the group generate better). <i>in_top</i>: top trials using it.</p>")
        show = ge.copy()
        if analyze_df is not None:
            keep = [c for c in ("group", "accuracy_only", "accuracy_without", "accuracy_drop", "permutation",
                                "in_subset") if c in analyze_df]
            a = analyze_df[keep].rename(columns={c: f"analyze: {c}" for c in keep if c != "group"})
            show = show.merge(a, on="group", how="left")
        parts.append(_table(show))
        if ge["median_with"].notna().any() or ge["median_without"].notna().any():
            parts.append(_plot(plots.group_effects, ge, out / "plots" / "groups.png", alt="feature groups"))
        if analyze_df is not None:
            parts.append("<p class='muted'>The <i>analyze</i> columns are classification answers (accuracy of the "
                         "classifier with only / without the group); the search columns are generation answers.</p>")
    if analyze_df is not None and ge.empty:
        parts.append("<h3>analyze: groups</h3>" + _table(analyze_df))

    # --- clips
    if clips > 0 and len(topdf):
        parts.append(f"<h2>Listen: top {len(topdf)} trials and held-out real clips</h2>")
        for _, r in topdf.iterrows():
            tid = str(r["trial_id"])
            say(f"clips of trial {tid} ...")
            res = trial_clips(run, r, out, n=clips, seconds=seconds)
            cached = " (cached)" if res["cached"] else ""
            parts.append(f"<h3>#{int(r['rank'])} trial {_e(tid)}: {_e(r.get('param.model.family'))}, "
                         f"{_e(r.get('param.encoder.kind'))} {_e(r.get('param.encoder.dim'))}, {_e(r.get('groups'))}"
                         f"<span class='muted'>{cached}</span></h3>")
            if res["error"]:
                parts.append(f"<p class='status-error'>no clips: {_e(res['error'])}</p>")
            else:
                parts.append("<div class='clips'>" + "".join(
                    _clip_html(f"clips/{tid}", c, f"generated {j}") for j, c in enumerate(res["clips"])) + "</div>")
        say("held-out real clips ...")
        real = real_clips(run, topdf.iloc[0], out, n=clips, seconds=seconds)
        parts.append("<h3>Held-out real clips</h3>")
        if real["error"]:
            parts.append(f"<p class='status-error'>no real clips: {_e(real['error'])}</p>")
        else:
            parts.append(f"<p class='muted'>Segments of the validation files (never trained on), "
                         f"{_e(real['reference'])} audio.</p>")
            parts.append("<div class='clips'>" + "".join(
                _clip_html("clips/real", c, f"real {j}") for j, c in enumerate(real["clips"])) + "</div>")

    # --- failures
    bad = trials[trials["status"].isin(["error", "nan"])]
    parts.append(f"<h2 id='failures'>Failed trials ({len(bad)})</h2>")
    if bad.empty:
        parts.append("<p class='muted'>None.</p>")
    else:
        agg = (bad.assign(reason=bad["reason"].fillna("").astype(str))
               .groupby(["status", "reason"]).agg(trials=("trial_id", "count"),
                                                    examples=("trial_id", lambda s: ", ".join(s.astype(str).head(5))))
               .reset_index().sort_values("trials", ascending=False))
        parts.append(_table(agg))

    # --- everything else, summarised
    rest = trials[~trials["trial_id"].astype(str).isin(top_ids)]
    parts.append(f"<h2>All trials ({len(trials)})</h2>")
    summ = pd.DataFrame(view_rows(trials))
    if len(rest):
        fam = rest.groupby(rest.get("param.model.family", pd.Series("-", index=rest.index)).fillna("-"))
        s = fam.agg(trials=("trial_id", "count"), best=("score", "min"), median=("score", "median")).reset_index()
        s.columns = ["model", "trials", "best score", "median score"]
        parts.append(f"<p class='muted'>Beyond the top {len(topdf)}: {len(rest)} trials.</p>" + _table(s))
    parts.append(f"<details><summary>table of all {len(trials)} trials</summary>{_table(summ)}</details>")
    trials.drop(columns=[c for c in ("source",) if c in trials]).to_csv(out / "trials.csv", index=False)
    parts.append(f"<p class='muted'>Built in {time.perf_counter() - t0:.1f} s. Files: trials.csv, configs/, clips/, "
                 "plots/.</p></body></html>")
    path = out / "report.html"
    atomic_write_bytes(path, "\n".join(parts).encode())
    return path
