"""PCA on (stacks of) standardised input frames: a linear code that fits in seconds."""
from __future__ import annotations

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from genaudio.encoders import framing
from genaudio.encoders.base import Encoder, register
from genaudio.errors import EncoderError


@register("pca")
class PCAEncoder(Encoder):
    """Principal components of input frames.

    With ``downsample = f`` each code frame summarises ``f`` consecutive input frames (their
    concatenation, ``f * input_dims`` values), so the code rate drops ``f``-fold. The basis is the
    top ``dim`` eigenvectors of the frames' covariance (float64 ``eigh``: exact, seconds even for
    1000+ dimensional frames). ``whiten=True`` divides each code by its standard deviation.
    """

    def _fit(self, zs):
        f = self.config.downsample
        X = np.concatenate([framing.stack_frames(z, f) for z in zs], axis=0).astype(np.float64)
        n, d = X.shape
        if self.dim > d:
            raise EncoderError(f"pca dim={self.dim} is larger than the input frame size {d} "
                               f"({self.input_dims} values x downsample {f}); use dim <= {d}")
        if self.dim > n:
            raise EncoderError(f"pca dim={self.dim} is larger than the number of training frames ({n}); "
                               "give more data or a smaller dim")
        mean = X.mean(axis=0)
        Xc = X - mean
        cov = (Xc.T @ Xc) / max(n - 1, 1)
        # only the top `dim` eigenpairs (LAPACK syevr): far cheaper than a full decomposition
        # one BLAS thread: on a shared, loaded machine oversubscribed threads make this 10x slower
        with threadpool_limits(1):
            evals, evecs = scipy.linalg.eigh(cov, subset_by_index=[d - self.dim, d - 1])
        total = float(np.trace(cov))
        order = np.argsort(evals)[::-1]
        self.mean_ = mean.astype(np.float32)
        self.components_ = evecs[:, order].T.astype(np.float32)  # (dim, d)
        self.explained_variance_ = np.maximum(evals[order], 1e-12).astype(np.float32)
        self.explained_variance_ratio_ = (evals[order] / max(total, 1e-12)).astype(np.float32)

    def _encode(self, z):
        rows = framing.stack_frames(z, self.config.downsample)
        codes = (rows - self.mean_) @ self.components_.T
        if self.config.pca.whiten:
            codes = codes / np.sqrt(self.explained_variance_)
        return codes.astype(np.float32)

    def _decode(self, codes):
        if self.config.pca.whiten:
            codes = codes * np.sqrt(self.explained_variance_)
        rows = codes @ self.components_ + self.mean_
        return framing.unstack_frames(rows, self.config.downsample, self.input_dims).astype(np.float32)

    def _arrays(self):
        return {"pca_mean": self.mean_, "pca_components": self.components_,
                "pca_explained_variance": self.explained_variance_,
                "pca_explained_variance_ratio": self.explained_variance_ratio_}

    def _set_arrays(self, a):
        d = self.input_dims * self.config.downsample
        self.mean_, self.components_ = a["pca_mean"], a["pca_components"]
        self.explained_variance_ = a["pca_explained_variance"]
        self.explained_variance_ratio_ = a["pca_explained_variance_ratio"]
        if self.components_.shape != (self.dim, d) or self.mean_.shape != (d,):
            raise EncoderError(f"pca basis has shape {self.components_.shape}, expected ({self.dim}, {d})")
