"""Divergences between two sets of embeddings (a group's and the reference's, at one turn or per trajectory).

All three are plug-in estimates of a functional of the two empirical distributions, so identical inputs give
exactly zero while two different finite samples of one distribution give a small positive value (bias of order
dimension / samples). Whether a shift is real is what the permutation p-value and the bootstrap bands say.

* Fréchet distance between Gaussian fits: |mu_p - mu_q|^2 + tr(S_p) + tr(S_q) - 2 tr((S_p S_q)^(1/2)).
  With covariance factors S = F F^T, tr((S_p S_q)^(1/2)) is the nuclear norm of F_p^T F_q, so it is computed in
  the sample space when there are fewer samples than dimensions (the usual case per turn).
* Gaussian KL(N_p || N_q) with a ridge `r` added to both covariances (`MetricSettings.ridge`), so that fits from
  fewer samples than dimensions stay invertible; solved in the sample space too (Woodbury identity).
* MMD^2 (biased V-statistic) with the RBF kernel k(x, y) = exp(-|x - y|^2 / (2 sigma^2)); sigma is the median
  pairwise distance among the reference's vectors (median heuristic), fixed for a whole analysis so that values
  are comparable across turns and groups. Its p-value permutes group labels within each instance (the pairing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
from scipy.linalg import LinAlgError, cholesky, solve_triangular
from scipy.spatial.distance import pdist

from covariate_shift_analysis.errors import CovariateShiftError

_BANDWIDTH_SAMPLE = 2000
_PERMUTATION_CHUNK = 200


@dataclass(frozen=True)
class MetricSettings:
    ridge: float
    """Absolute value added to every covariance diagonal for the KL."""
    bandwidth: float
    """RBF kernel sigma."""

    @classmethod
    def for_reference(cls, reference: np.ndarray, kl_regularization: float, rng: np.random.Generator) -> MetricSettings:
        """Scale both settings to the reference's embeddings, so they are independent of the model's units."""
        mean_variance = float(np.var(reference, axis=0, ddof=1).mean()) if len(reference) > 1 else 0.0
        return cls(kl_regularization * max(mean_variance, 1e-12), median_bandwidth(reference, rng))


def median_bandwidth(vectors: np.ndarray, rng: np.random.Generator) -> float:
    """Median pairwise distance (a seeded subsample when large), ignoring exact duplicates; 1.0 if all coincide."""
    if len(vectors) > _BANDWIDTH_SAMPLE:
        vectors = vectors[rng.choice(len(vectors), _BANDWIDTH_SAMPLE, replace=False)]
    distances = pdist(np.asarray(vectors, dtype=np.float64))
    distances = distances[distances > 0]
    return float(np.median(distances)) if distances.size else 1.0


def rbf_kernel(x: np.ndarray, y: np.ndarray, bandwidth: float) -> np.ndarray:
    squared = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.exp(-np.maximum(squared, 0.0) / (2.0 * bandwidth**2))


class RidgeFit(NamedTuple):
    """A Gaussian fit with the ridge: a Cholesky factor to solve with, and the log-determinant."""

    cholesky: np.ndarray
    """ridge > 0: lower factor of ridge·I + F^T F (Woodbury form); ridge = 0: the square covariance factor F."""
    logdet: float
    """log det(covariance + ridge·I)."""


class Sample:
    """Distinct embeddings with how often each was drawn, and the statistics the metrics need, computed once.

    A bootstrap replicate draws instances with replacement; weighting distinct vectors by their count gives the
    same estimates as repeating them, for less work.
    """

    def __init__(self, vectors: np.ndarray, settings: MetricSettings, weights: np.ndarray | None = None) -> None:
        self.x = np.asarray(vectors, dtype=np.float64)
        self.w = np.ones(len(self.x)) if weights is None else np.asarray(weights, dtype=np.float64)
        self.total = float(self.w.sum())
        self.settings = settings

    @cached_property
    def mean(self) -> np.ndarray:
        return self.w @ self.x / self.total

    @cached_property
    def centred(self) -> np.ndarray:
        """A with A^T A = the sample covariance (ddof 1)."""
        return np.sqrt(self.w / max(self.total - 1.0, 1.0))[:, None] * (self.x - self.mean)

    @cached_property
    def covariance_trace(self) -> float:
        return float((self.centred**2).sum())

    @cached_property
    def factor(self) -> np.ndarray:
        """F with F F^T = the covariance: A^T (d×n) when there are at most d distinct vectors, else d×d.

        The d×d factor is a Cholesky factor, or the eigen-factor when the covariance is too singular for Cholesky;
        no jitter is added, since tr((S_p S_q)^(1/2)) would turn a jitter e into errors of order sqrt(e).
        """
        count, dimension = self.x.shape
        if count <= dimension:
            return self.centred.T
        covariance = self.centred.T @ self.centred
        try:
            return cholesky(covariance, lower=True)
        except LinAlgError:
            eigenvalues, eigenvectors = np.linalg.eigh(covariance)
            return eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))

    @cached_property
    def ridge_fit(self) -> RidgeFit:
        ridge, dimension = self.settings.ridge, self.x.shape[1]
        factor = self.factor
        rank = factor.shape[1]
        if ridge > 0:
            inner = factor.T @ factor
            inner[np.diag_indices(rank)] += ridge
            lower = cholesky(inner, lower=True)
            logdet = (dimension - rank) * np.log(ridge) + 2.0 * np.log(np.diag(lower)).sum()
            return RidgeFit(lower, float(logdet))
        sign, logdet = np.linalg.slogdet(factor) if rank == dimension else (0.0, 0.0)
        if sign == 0:
            raise CovariateShiftError(
                "metrics.kl_regularization: a covariance is singular (fewer distinct samples than dimensions); "
                "set it above 0 or lower metrics.pca_dim"
            )
        return RidgeFit(factor, float(2.0 * logdet))

    @cached_property
    def ridge_inverse_trace(self) -> float:
        """tr((ridge·I + F^T F)^-1), needed only when this sample is the reference side of a KL."""
        lower = self.ridge_fit.cholesky
        return float((solve_triangular(lower, np.eye(len(lower)), lower=True) ** 2).sum())

    @cached_property
    def kernel_self_mean(self) -> float:
        return float(self.w @ rbf_kernel(self.x, self.x, self.settings.bandwidth) @ self.w) / self.total**2


def frechet_distance(p: Sample, q: Sample) -> float:
    diff = p.mean - q.mean
    cross = p.factor.T @ q.factor
    gram = cross @ cross.T if cross.shape[0] <= cross.shape[1] else cross.T @ cross
    nuclear = float(np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, None)).sum())
    return max(float(diff @ diff) + p.covariance_trace + q.covariance_trace - 2.0 * nuclear, 0.0)


def gaussian_kl(p: Sample, q: Sample) -> float:
    """KL(N_p || N_q) of the ridge-regularised Gaussian fits.

    With a ridge r, (F F^T + r I)^-1 = (I - F (r I + F^T F)^-1 F^T) / r (Woodbury), so only k×k systems are solved,
    k = the number of distinct samples when that is below the dimension.
    """
    ridge, dimension = p.settings.ridge, len(p.mean)
    diff = p.mean - q.mean
    fit = q.ridge_fit
    if ridge > 0:
        cross = solve_triangular(fit.cholesky, q.factor.T @ p.factor, lower=True)
        along = solve_triangular(fit.cholesky, q.factor.T @ diff, lower=True)
        rank = q.factor.shape[1]
        trace_term = (
            p.covariance_trace + ridge * dimension - float((cross**2).sum()) - ridge * rank + ridge**2 * q.ridge_inverse_trace
        ) / ridge
        mahalanobis = (float(diff @ diff) - float(along @ along)) / ridge
    else:
        trace_term = float((np.linalg.solve(fit.cholesky, p.factor) ** 2).sum())
        mahalanobis = float((np.linalg.solve(fit.cholesky, diff) ** 2).sum())
    return max(0.5 * (trace_term + mahalanobis - dimension + fit.logdet - p.ridge_fit.logdet), 0.0)


def mmd2(p: Sample, q: Sample) -> float:
    cross = float(p.w @ rbf_kernel(p.x, q.x, p.settings.bandwidth) @ q.w) / (p.total * q.total)
    return max(p.kernel_self_mean + q.kernel_self_mean - 2.0 * cross, 0.0)


METRICS: dict[str, Callable[[Sample, Sample], float]] = {
    "frechet": frechet_distance,
    "kl": gaussian_kl,
    "mmd": mmd2,
}
METRIC_LABELS = {
    "frechet": "Fréchet distance",
    "kl": "Gaussian KL(group ‖ reference)",
    "mmd": "MMD² (RBF kernel)",
}


def mmd2_permutation_pvalue(
    x: np.ndarray,
    y: np.ndarray,
    x_strata: np.ndarray,
    y_strata: np.ndarray,
    bandwidth: float,
    permutations: int,
    rng: np.random.Generator,
) -> float:
    """P(MMD² under relabelling >= observed), relabelling only within each stratum (instance).

    Under "no shift" a group's and the reference's trajectories of the same instance are exchangeable, so
    swapping labels inside an instance keeps the pairing the bootstrap relies on.
    """
    pooled = np.concatenate([x, y]).astype(np.float64)
    labels = np.concatenate([np.ones(len(x)), np.zeros(len(y))])
    _, strata = np.unique(np.concatenate([x_strata, y_strata]), return_inverse=True)
    order = np.argsort(strata, kind="stable")
    kernel = rbf_kernel(pooled[order], pooled[order], bandwidth)
    labels, strata = labels[order], strata[order].astype(np.float64)
    observed = float(_mmd2_for_labels(kernel, labels[None, :])[0])
    exceed = 0
    for start in range(0, permutations, _PERMUTATION_CHUNK):
        count = min(_PERMUTATION_CHUNK, permutations - start)
        shuffled = np.argsort(strata[None, :] + rng.random((count, len(labels))), axis=1)
        statistics = _mmd2_for_labels(kernel, labels[shuffled])
        exceed += int((statistics >= observed - 1e-12 * max(abs(observed), 1.0)).sum())
    return (1 + exceed) / (1 + permutations)


def _mmd2_for_labels(kernel: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """V-statistic MMD² for each row of 0/1 `labels` (1 = first sample), from one pooled kernel matrix."""
    n_x = labels[0].sum()
    n_y = labels.shape[1] - n_x
    weighted = labels @ kernel
    within_x = (weighted * labels).sum(axis=1)
    cross = weighted.sum(axis=1) - within_x
    within_y = kernel.sum() - within_x - 2.0 * cross
    return within_x / n_x**2 + within_y / n_y**2 - 2.0 * cross / (n_x * n_y)
