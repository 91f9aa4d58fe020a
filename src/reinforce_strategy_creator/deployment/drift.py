"""Feature drift monitor: PSI on fixed training-quantile bins and the two-sample KS statistic.

What: :func:`build_reference` freezes the training features' distribution, :func:`drift_report`
compares a live window of the same features with it, :func:`calibrate_thresholds` sets
per-feature thresholds from the training period's own windows, and :class:`DriftMonitor`
turns reports into the alert records the paper account logs (and may halt on).

Why: a policy trading on features unlike its training data should be noticed by a person.
PSI on fixed reference bins is a few lines of numpy that no maintained library offers, hence
hand-written. The KS statistic is scipy's ``ks_2samp`` value, computed against the reference
sorted once per feature (:func:`ks_2samp_sorted`): ``ks_2samp`` re-sorts the whole reference and
searches every pooled point on each call, which made a universe's per-bar check cost seconds.
Definitions, thresholds and measured alert rates: docs/paper_trading.md ("Drift monitor").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import distributions

from ..errors import InputError
from ..params.deployment import DriftParams


class DriftConfigError(InputError):
    """Bad drift parameters or feature tables; the message names the parameter/column."""


#: The drift thresholds are the ``deployment.drift`` block (psi, ks, min_samples, eps and the monitor's
#: settings), validated once with the other parameters.
DriftThresholds = DriftParams


@dataclass(frozen=True)
class DriftReference:
    """Frozen training distribution: interior bin edges, expected shares and the training values
    (sorted ascending, for KS) per feature."""

    edges: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    values: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        for name, v in self.values.items():
            if len(v) > 1 and not bool(np.all(v[1:] >= v[:-1])):
                self.values[name] = np.sort(v)

    @property
    def feature_names(self) -> list[str]:
        return list(self.edges)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists of floats) so the reference can be stored next to a model."""
        return {
            name: {
                "edges": self.edges[name].tolist(),
                "expected": self.expected[name].tolist(),
                "values": self.values[name].tolist(),
            }
            for name in self.edges
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReference:
        return cls(
            edges={k: np.asarray(v["edges"], float) for k, v in data.items()},
            expected={k: np.asarray(v["expected"], float) for k, v in data.items()},
            values={k: np.asarray(v["values"], float) for k, v in data.items()},
        )


def _clean(series: pd.Series, where: str) -> np.ndarray:
    """A feature column's values without its NaN rows (indicator warm-up); infinities are refused."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    if np.isinf(values).any():
        raise DriftConfigError(f"{where}: column {series.name!r} has infinite values; fix the features.")
    return values[~np.isnan(values)]


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in the bins (-inf, e_0], (e_0, e_1], ..., (e_last, +inf)."""
    idx = np.searchsorted(edges, values, side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index sum_i (a_i - e_i) * ln(a_i / e_i) of two share vectors.

    A share of exactly zero would make ln undefined, so every share is floored at ``eps``
    *without* renormalising: the floor only matters for empty bins."""
    e = np.maximum(np.asarray(expected, float), eps)
    a = np.maximum(np.asarray(actual, float), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def build_reference(train_features: pd.DataFrame, n_bins: int = 10) -> DriftReference:
    """Fix bins at the training-feature quantiles (1/n_bins … (n_bins-1)/n_bins), so every bin
    holds about the same share of training rows; the outer bins are open, so live values outside
    the training range still count. Repeated quantiles (discrete features) are merged, so a
    feature may have fewer than ``n_bins`` bins. The training values are kept for KS."""
    if not isinstance(n_bins, int) or n_bins < 2:
        raise DriftConfigError(f"deployment.drift.n_bins must be an integer >= 2, got {n_bins!r}")
    if train_features.shape[1] == 0:
        raise DriftConfigError("training features: no columns to monitor.")
    edges, expected, values = {}, {}, {}
    for name in train_features.columns:
        v = _clean(train_features[name], "training features")
        if len(v) < n_bins:
            raise DriftConfigError(
                f"training features: column {name!r} has {len(v)} non-NaN rows, fewer than "
                f"deployment.drift.n_bins={n_bins}."
            )
        e = np.unique(np.quantile(v, np.arange(1, n_bins) / n_bins))
        edges[name], expected[name], values[name] = e, bin_shares(v, e), np.sort(v)
    return DriftReference(edges, expected, values)


#: ``ks_2samp``'s ``method="auto"`` is exact (statistic rounded to the grid 1/lcm(n1, n2)) up to this size
_KS_EXACT_MAX_N = 10_000


def ks_2samp_sorted(
    reference_sorted: np.ndarray, sample: np.ndarray, pvalue: bool = True
) -> tuple[float, float]:
    """``(statistic, asymptotic p-value)`` of the two-sample KS test of ``reference_sorted``
    (sorted ascending, e.g. :attr:`DriftReference.values`) against ``sample``.

    The statistic equals ``scipy.stats.ks_2samp(reference, sample).statistic`` bit for bit, ties
    included: sup |F_ref - F_sample| is reached at a sample point, so the two empirical CDFs are
    read only there, with ``searchsorted`` into the sorted reference (O(m log n) for m sample
    values, instead of re-sorting and searching all n + m pooled values). The differences are the
    same floats ``ks_2samp`` forms (counts over sizes, subtracted), at the same pooled points or at
    points where the difference has the same value; as ``ks_2samp``'s default (exact) method does
    for samples of at most 10,000, the statistic is then rounded to the grid 1 / lcm(n, m). The
    p-value is Smirnov's asymptotic one (``ks_2samp(..., method="asymp").pvalue``): the exact
    p-value costs O(n m) per call and no threshold reads it; ``pvalue=False`` skips even that
    (about 2 ms a call, most of the statistic's cost) and returns NaN.
    """
    ref = np.asarray(reference_sorted, dtype=float)
    s = np.sort(np.asarray(sample, dtype=float))
    n1, n2 = len(ref), len(s)
    if min(n1, n2) == 0:
        raise DriftConfigError("a KS test needs a non-empty reference and sample")
    # F_sample - F_ref at each sample value (right limits) ...
    above = np.searchsorted(s, s, side="right") / n2 - np.searchsorted(ref, s, side="right") / n1
    # ... and F_ref - F_sample just left of it, the value at the largest pooled point below it
    below = np.searchsorted(ref, s, side="left") / n1 - np.searchsorted(s, s, side="left") / n2
    d = float(max(np.clip(np.max(above), 0, 1), np.max(below)))
    p = math.nan
    if pvalue:
        m, n = sorted([float(n1), float(n2)], reverse=True)
        p = float(np.clip(distributions.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
    if max(n1, n2) <= _KS_EXACT_MAX_N:
        g = math.gcd(n1, n2)
        lcm = (n1 // g) * n2
        d = int(np.round(d * lcm)) * 1.0 / lcm
    return d, p


def calibrate_thresholds(
    reference: DriftReference,
    train_features: pd.DataFrame,
    window: int,
    quantile: float,
    thresholds: DriftThresholds,
    stride: int = 5,
) -> dict[str, tuple[float, float]]:
    """Per-feature (PSI, KS) thresholds: the ``quantile`` of each statistic over every
    ``window``-row window (every ``stride`` rows) of the *training* features themselves.

    Why: PSI and KS of a short window of autocorrelated indicators against many years of
    history are large even when nothing changed (on the S&P 500, 60-bar windows taken from
    inside the 1999-2012 training period have a median PSI above 1 and KS above 0.2, so the
    textbook 0.25 / 0.2 cut-offs alarm on every bar). Calibrating on the training period's
    own windows makes an alert mean "less typical than ``quantile`` of training windows".
    The fixed ``psi`` / ``ks`` values stay as floors.
    """
    if not (0.5 <= quantile < 1):
        raise DriftConfigError(
            f"deployment.drift.calibrate must be a quantile in [0.5, 1) or null, got {quantile!r}"
        )
    out = {}
    for name in reference.feature_names:
        v = _clean(train_features[name], "training features")
        starts = range(0, len(v) - window + 1, stride)
        if len(starts) < 10:
            raise DriftConfigError(
                f"training features: {len(v)} rows of {name!r} give fewer than 10 windows of "
                f"deployment.drift.window={window}; shorten the window or set calibrate: null."
            )
        psis, kss = [], []
        for i in starts:
            w = v[i : i + window]
            psis.append(psi(reference.expected[name], bin_shares(w, reference.edges[name]), thresholds.eps))
            kss.append(ks_2samp_sorted(reference.values[name], w, pvalue=False)[0])
        out[name] = (
            max(thresholds.psi, float(np.quantile(psis, quantile))),
            max(thresholds.ks, float(np.quantile(kss, quantile))),
        )
    return out


def drift_report(
    reference: DriftReference,
    live: pd.DataFrame,
    thresholds: DriftThresholds,
    per_feature: Mapping[str, tuple[float, float]] | None = None,
    all_pvalues: bool = True,
) -> pd.DataFrame:
    """Per feature: n_live, psi, ks_stat, ks_pvalue, empty_bins, psi_alert, ks_alert, status.

    ``per_feature`` (from :func:`calibrate_thresholds`) replaces the global thresholds.
    ``ks_pvalue`` is the asymptotic p-value (:func:`ks_2samp_sorted`); with ``all_pvalues=False``
    it is computed only for the features that drift (the ones an alert reports) and NaN elsewhere.
    """
    missing = [n for n in reference.feature_names if n not in live.columns]
    if missing:
        raise DriftConfigError(
            f"live features: missing columns {missing} that the model was trained on; "
            "compute the live window with the training feature spec."
        )
    rows = []
    for name in reference.feature_names:
        v = _clean(live[name], "live features")
        row: dict[str, Any] = {"feature": name, "n_live": len(v)}
        if len(v) < thresholds.min_samples:
            row.update(
                psi=np.nan,
                ks_stat=np.nan,
                ks_pvalue=np.nan,
                empty_bins=0,
                psi_threshold=np.nan,
                ks_threshold=np.nan,
                psi_alert=False,
                ks_alert=False,
                status="insufficient_data",
            )
        else:
            actual = bin_shares(v, reference.edges[name])
            p = psi(reference.expected[name], actual, thresholds.eps)
            ks_stat, ks_pvalue = ks_2samp_sorted(reference.values[name], v, pvalue=all_pvalues)
            psi_thr, ks_thr = (per_feature or {}).get(name, (thresholds.psi, thresholds.ks))
            if not all_pvalues and (p > psi_thr or ks_stat > ks_thr):
                ks_pvalue = ks_2samp_sorted(reference.values[name], v)[1]
            row.update(
                psi=p,
                ks_stat=ks_stat,
                ks_pvalue=ks_pvalue,
                empty_bins=int((actual == 0).sum()),
                psi_threshold=psi_thr,
                ks_threshold=ks_thr,
                psi_alert=p > psi_thr,
                ks_alert=ks_stat > ks_thr,
            )
            row["status"] = "drift" if (row["psi_alert"] or row["ks_alert"]) else "ok"
        rows.append(row)
    return pd.DataFrame(rows).set_index("feature")


@dataclass
class DriftMonitor:
    """Callable for an instrument :class:`~.account.PaperAccount`: history -> alert records.

    ``feature_fn`` maps the price history up to bar t to feature rows (it must be causal,
    e.g. ``features.compute_features``); the last ``window`` rows are compared with the
    reference every ``check_every`` calls (counted per process).
    """

    reference: DriftReference
    feature_fn: Callable[[pd.DataFrame], pd.DataFrame]
    thresholds: DriftThresholds
    window: int = 60
    check_every: int = 1
    per_feature: Mapping[str, tuple[float, float]] | None = None
    _calls: int = 0

    def __call__(self, history: pd.DataFrame) -> list[dict[str, Any]]:
        self._calls += 1
        if (self._calls - 1) % self.check_every:
            return []
        feats = self.feature_fn(history).iloc[-self.window :]
        report = drift_report(self.reference, feats, self.thresholds, self.per_feature, all_pvalues=False)
        alerts = []
        for name, r in report[report["status"] == "drift"].iterrows():
            alerts.append(
                {
                    "feature": name,
                    "psi": r["psi"],
                    "ks_stat": r["ks_stat"],
                    "ks_pvalue": r["ks_pvalue"],
                    "psi_threshold": r["psi_threshold"],
                    "ks_threshold": r["ks_threshold"],
                    "window": int(r["n_live"]),
                }
            )
        return alerts
