"""Decoders on noisy codes: what a generative model's sampling noise sounds like through each decoder.

    python benchmarks/decoder_noise.py [CORPUS] [--out DIR] [--noise 0.4] [--vocoder-epochs 48] [--figure PNG]

A PCA LSTM samples every code frame with independent Gaussian noise of its one-step error (about
0.35-0.4 of each code dimension's std on the development corpus, docs/models.md), and Griffin-Lim
renders that noise as noise. This measures, on the real-music corpus of
``rate_distortion.py --real`` (same split, encoder and held-out clips; default corpus
``~/.cache/genaudio-dev-corpus``), real held-out PCA-16 u8 codes (32x) with white Gaussian noise
of 0, 0.2 and 0.4 std added, decoded by: Griffin-Lim (64 iterations); the learned decoder trained
on the decoded codes (``rate_distortion.py --real``'s vocoder, reused from ``OUT`` when that run
wrote it there); the learned decoder trained on codes with ``--noise`` std of noise
(``VocoderConfig.code_noise``, ``genaudio encode --decoder-code-noise``). Metrics: the judge
(``genaudio.quality``: KID of the reconstructions against real clips of the training files, with
its SE), spectral convergence against the clean originals and the frame comb
(``genaudio.encoders.metrics.frame_comb``: a buzz at the hop, which the judge does not hear;
median over clips, real music ~5). The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _rate_distortion_real as real_music  # noqa: E402

from genaudio.encoders import add_code_noise, make_encoder  # noqa: E402
from genaudio.encoders.metrics import distortion, median_frame_comb  # noqa: E402
from genaudio.encoders.sweep import reference_line  # noqa: E402

NOISE_LEVELS = (0.0, 0.2, 0.4)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", default=str(real_music.DEFAULT_CORPUS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "rate_distortion_real"),
                    help="vocoder folder, shared with rate_distortion.py --real (default its output)")
    ap.add_argument("--noise", type=float, default=0.4, help="code noise of the noise-trained vocoder (x std)")
    ap.add_argument("--vocoder-epochs", type=int, default=48, help="epochs of each vocoder (50 steps)")
    ap.add_argument("--test-clips-per-file", type=int, default=8, help="4-s windows per held-out file")
    ap.add_argument("--figure", default=None, help="also write the plot here (e.g. docs/figures/decoder_noise.png)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    out = Path(args.out)
    train, test, test_files, train_paths = real_music.corpus_clips(
        Path(args.corpus).expanduser(), train_s_per_file=150.0, test_clips_per_file=args.test_clips_per_file)
    real_music._err(f"train: {len(train)} clips; held out: {len(test)} clips of {len(test_files)} files")
    base = make_encoder("pca", dim=16, core="log_mel", n_fft=real_music.N_FFT, hop_length=real_music.HOP,
                        n_mels=real_music.N_MELS, precision="uint8", griffin_lim_iters=64).config
    enc = make_encoder("pca", dim=16, config=base).fit([make_encoder(config=base)._frame_parts(y) for y in train])
    decoders, train_s = {"griffinlim": None}, {}
    for name, noise in (("learned", 0.0), (f"learned, trained on noise {args.noise:g}", args.noise)):
        vcfg = enc.vocoder_config(epochs=args.vocoder_epochs, code_noise=noise)
        folder = out / ("vocoder-pca-16" + (f"-noise{noise:g}" if noise else ""))
        dec = real_music.saved_vocoder(enc, folder, vcfg, test_files)
        if dec is None:
            t0 = time.perf_counter()
            real_music.vocoder_for(enc, train, folder, vcfg, test_files)
            train_s[name] = time.perf_counter() - t0
            dec = enc.learned_decoder
        decoders[name] = dec

    from genaudio import quality

    windows, _ = quality.file_windows(train_paths, seconds=real_music.TEST_SEG_S)
    ref = quality.build_reference(windows, n=len(test), seconds=real_music.TEST_SEG_S, sample_rate=real_music.SR,
                                  seed=0)
    originals = ref.score(test, real_music.SR)
    codes = [enc.encode(y) for y in test]
    rows = []
    for k, noise in enumerate(NOISE_LEVELS):
        noisy = add_code_noise(codes, noise, seed=k) if noise else codes
        for name, dec in decoders.items():
            enc.set_decoder(dec)
            ys = [enc.to_audio(c, length=len(y)) for c, y in zip(noisy, test)]
            j = ref.score(ys, real_music.SR)
            sc = float(np.mean([distortion(y, y_hat)["sc"] for y, y_hat in zip(test, ys)]))
            comb = median_frame_comb(ys, hop_length=real_music.HOP)
            rows.append({"code_noise": noise, "decoder": name, "judge": j.score, "judge_se": j.score_se, "sc": sc,
                         "frame_comb": comb})
            real_music._err(f"noise {noise:g} / {name}: judge {j.score:.2f} +- {j.score_se:.2f}, SC {sc:.3f}, "
                            f"frame comb {comb:.0f}")
    at = {(r["code_noise"], r["decoder"]): r["judge"] for r in rows}
    noisy_name = f"learned, trained on noise {args.noise:g}"
    result = {
        "rows": rows,
        "real_vs_real": ref.real_vs_real.score, "held_out_originals": originals.score,
        "originals_frame_comb": median_frame_comb(test, hop_length=real_music.HOP),
        "noise_trained_vs_griffinlim_at_0.4": at[(0.4, noisy_name)] / at[(0.4, "griffinlim")],
        "noise_trained_at_0.4_vs_griffinlim_clean": at[(0.4, noisy_name)] / at[(0.0, "griffinlim")],
        "held_out_clips": len(test), "held_out_files": test_files, "vocoder_epochs": args.vocoder_epochs,
        "vocoder_train_s": train_s, "wall_s": time.perf_counter() - t_start,
    }
    (out / "decoder_noise.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    for path in [out / "decoder_noise.png"] + ([Path(args.figure)] if args.figure else []):
        plot(rows, result, path)
    print(json.dumps(result, default=float))


def plot(rows: list[dict], result: dict, path: Path) -> None:
    """Judge (+-1 SE), spectral convergence and frame comb vs code noise, one line per decoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_j, ax_sc, ax_c) = plt.subplots(1, 3, figsize=(16, 4.3))
    for name in dict.fromkeys(r["decoder"] for r in rows):
        rs = [r for r in rows if r["decoder"] == name]
        x = [r["code_noise"] for r in rs]
        ax_j.errorbar(x, [r["judge"] for r in rs], yerr=[r["judge_se"] for r in rs], marker="o", capsize=3,
                      label=name)
        ax_sc.plot(x, [r["sc"] for r in rs], marker="o", label=name)
        ax_c.plot(x, [r["frame_comb"] for r in rs], marker="o", label=name)
    reference_line(ax_j, result["held_out_originals"], "held-out originals")
    reference_line(ax_j, result["real_vs_real"], "real vs real")
    ax_j.set_ylabel("judge: KID to real clips, +-1 SE (lower is better)")
    ax_sc.set_ylabel("spectral convergence vs the clean originals")
    reference_line(ax_c, result["originals_frame_comb"])
    ax_c.set_yscale("log")
    ax_c.set_ylabel("frame comb, median (log; originals dashed)")
    for ax in (ax_j, ax_sc, ax_c):
        ax.set_xlabel("white noise added to the codes (x each dimension's std)")
        ax.grid(True, alpha=0.3)
    ax_j.legend(fontsize=8)
    fig.suptitle(f"PCA-16 u8 codes (32x) of {result['held_out_clips']} held-out real clips, with noise, "
                 "through each decoder")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
