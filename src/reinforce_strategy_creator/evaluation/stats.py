"""Statistics across seeds and agents: summaries, PSR, DSR, ranking, random-policy percentile.

What: an agent is trained with several seeds; one seed's Sharpe is a noisy draw. This module
summarises each agent's metrics across seeds (mean, std, min, max), and tells whether a
Sharpe ratio is believable:

* Probabilistic Sharpe Ratio (PSR) — Bailey, D. H. & López de Prado, M. (2012),
  "The Sharpe Ratio Efficient Frontier", Journal of Risk 15(2), 3–44, eq. for PSR:
  ``PSR(SR*) = Φ( (SR - SR*) · sqrt(n - 1) / sqrt(1 - γ3·SR + (γ4 - 1)/4 · SR²) )``
  with SR the per-bar (non-annualised) Sharpe ratio of n returns, γ3 their skewness and
  γ4 their (non-excess) kurtosis. It is the probability that the true Sharpe exceeds SR*.
* Deflated Sharpe Ratio (DSR) — Bailey, D. H. & López de Prado, M. (2014),
  "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and
  Non-Normality", Journal of Portfolio Management 40(5), 94–107: the PSR against the
  Sharpe one expects from the best of N unskilled trials,
  ``SR0 = sqrt(V) · ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))``, γ the Euler–Mascheroni
  constant, V the variance of the N trial Sharpe ratios (per bar).

Why hand-written: no maintained, installed library implements PSR/DSR (empyrical does not);
the formulas are short and are tested against values worked out by hand. All Sharpe inputs
here are per bar; convert annual ones with ``sharpe_annual / sqrt(periods_per_year)``.

Ruined runs (``ruined`` column, see ``metrics.ruin_index``): PSR and DSR are NaN for them
(ruin is absorbing: there is no distribution of future returns whose Sharpe could beat
anything), they count as trials in every DSR but not in the variance of the trial Sharpes,
they rank below every run that was not ruined in percentiles (``ruin_aware_scores``) and
an agent with a larger share of ruined seeds ranks after one with a smaller share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from .metrics import EvaluationInputError

__all__ = [
    "EULER_GAMMA",
    "probabilistic_sharpe_ratio",
    "expected_max_sharpe",
    "deflated_sharpe_ratio",
    "seed_summary",
    "rank_agents",
    "percentile_of",
    "add_psr_dsr",
    "record_dsr",
    "record_psr",
    "ruin_aware_scores",
]

EULER_GAMMA = 0.5772156649015329


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark_sharpe: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """PSR: probability that the true per-bar Sharpe exceeds ``benchmark_sharpe``.

    ``sharpe`` and ``benchmark_sharpe`` are per bar; ``kurtosis`` is Pearson's (normal = 3).
    Returns NaN when an input is NaN or the variance term is not positive (extreme
    skew/kurtosis for this Sharpe), rather than a misleading number.
    """
    if n_obs < 2:
        raise EvaluationInputError(f"n_obs: PSR needs at least 2 returns, got {n_obs}.")
    vals = (sharpe, benchmark_sharpe, skew, kurtosis)
    if any(v is None or not np.isfinite(v) for v in vals):
        return float("nan")
    var_term = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if var_term <= 0:
        return float("nan")
    z = (sharpe - benchmark_sharpe) * math.sqrt(n_obs - 1) / math.sqrt(var_term)
    return float(norm.cdf(z))


def expected_max_sharpe(n_trials: int, trial_sharpe_variance: float) -> float:
    """SR0: expected maximum per-bar Sharpe of ``n_trials`` unskilled trials (DSR paper)."""
    if n_trials < 1:
        raise EvaluationInputError(f"n_trials: need at least 1 trial, got {n_trials}.")
    if not np.isfinite(trial_sharpe_variance) or trial_sharpe_variance < 0:
        raise EvaluationInputError(
            f"trial_sharpe_variance: must be a finite non-negative number, got {trial_sharpe_variance!r}."
        )
    if n_trials == 1:
        return 0.0  # one trial: no selection, the benchmark is a zero Sharpe
    g = EULER_GAMMA
    return float(
        math.sqrt(trial_sharpe_variance)
        * ((1 - g) * norm.ppf(1 - 1 / n_trials) + g * norm.ppf(1 - 1 / (n_trials * math.e)))
    )


def deflated_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    trial_sharpes: Sequence[float],
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """DSR: PSR of ``sharpe`` against SR0 of all ``trial_sharpes`` (every agent × seed tried).

    All Sharpe ratios per bar. NaN trial Sharpes (e.g. a flat trial) are ignored for the
    variance but still counted as trials: they were tried.
    """
    trials = np.asarray(list(trial_sharpes), dtype=float)
    if trials.size == 0:
        raise EvaluationInputError("trial_sharpes: DSR needs the Sharpe ratios of all trials tried.")
    finite = trials[np.isfinite(trials)]
    var = float(np.var(finite, ddof=1)) if finite.size > 1 else 0.0
    sr0 = expected_max_sharpe(int(trials.size), var)
    return probabilistic_sharpe_ratio(sharpe, sr0, n_obs, skew, kurtosis)


def _ruined(records: pd.DataFrame) -> np.ndarray:
    if "ruined" not in records.columns:
        return np.zeros(len(records), dtype=bool)
    return records["ruined"].fillna(False).to_numpy(dtype=bool)


def record_psr(
    sharpe_per_bar: float,
    benchmark_sharpe_per_bar: float,
    n_bars: int,
    skew: float,
    kurtosis: float,
    ruined: bool = False,
) -> float:
    """PSR of one metrics record, NaN where it is undefined rather than an error: a ruined run
    (ruin is absorbing, so "the probability that its true Sharpe beats the benchmark" has no
    meaning; NaN fails the gate's PSR rule) or fewer than 2 returns."""
    if ruined or n_bars < 2:
        return float("nan")
    return probabilistic_sharpe_ratio(sharpe_per_bar, benchmark_sharpe_per_bar, int(n_bars), skew, kurtosis)


def record_dsr(
    sharpe_per_bar: float,
    n_bars: int,
    trial_sharpes: Sequence[float],
    skew: float,
    kurtosis: float,
    ruined: bool = False,
) -> float:
    """DSR of one metrics record against ``trial_sharpes``, NaN where it is undefined rather
    than an error: a ruined run (as ``record_psr``) or fewer than 2 returns. A ruined trial
    belongs in ``trial_sharpes`` as NaN or -inf (``ruin_aware_scores``): counted, not in the
    variance."""
    if ruined or n_bars < 2:
        return float("nan")
    return deflated_sharpe_ratio(sharpe_per_bar, int(n_bars), trial_sharpes, skew, kurtosis)


def add_psr_dsr(records: pd.DataFrame, benchmark_sharpe_per_bar: float) -> pd.DataFrame:
    """Add ``psr`` (vs the benchmark's per-bar Sharpe, e.g. buy-and-hold) and ``dsr`` (vs
    SR0 of every row = every agent × seed tried) to a records table.

    ``records`` has one row per agent × seed with the columns of
    ``metrics.performance_metrics``: ``sharpe_per_bar, n_bars, skew, kurtosis`` (and
    ``ruined`` if any run may be ruined). Ruined rows get NaN PSR and DSR and count as
    trials, but not in the variance of the trial Sharpes (like NaN Sharpes).
    """
    need = ["sharpe_per_bar", "n_bars", "skew", "kurtosis"]
    missing = [c for c in need if c not in records.columns]
    if missing:
        raise EvaluationInputError(
            f"records: missing column(s) {missing}; build records from performance_metrics()."
        )
    out = records.copy()
    ruined = _ruined(out)
    trials = ruin_aware_scores(out["sharpe_per_bar"], ruined)
    out["psr"] = [
        record_psr(r.sharpe_per_bar, benchmark_sharpe_per_bar, int(r.n_bars), r.skew, r.kurtosis, bool(ru))
        for r, ru in zip(out.itertuples(), ruined)
    ]
    out["dsr"] = [
        record_dsr(r.sharpe_per_bar, int(r.n_bars), trials, r.skew, r.kurtosis, bool(ru))
        for r, ru in zip(out.itertuples(), ruined)
    ]
    return out


def seed_summary(
    records: pd.DataFrame, metrics: Sequence[str] | None = None, agent_col: str = "agent"
) -> pd.DataFrame:
    """Mean, std (ddof=1; NaN for one seed), min, max and seed count of each metric per agent.

    Returns a flat, CSV-ready frame: one row per agent, columns ``<metric>_mean``,
    ``<metric>_std``, ``<metric>_min``, ``<metric>_max`` and ``n_seeds``; with a ``ruined``
    column, also ``n_ruined`` (seeds whose account was wiped out). A ruined seed's metrics
    enter the statistics as they are (total return -1, ...); NaN values are skipped.
    Boolean columns are not summarised unless named in ``metrics`` (then as 0/1).
    """
    if agent_col not in records.columns:
        raise EvaluationInputError(f"records: missing column '{agent_col}' (one row per agent × seed).")
    if metrics is None:
        metrics = [
            c
            for c in records.columns
            if c not in (agent_col, "seed")
            and pd.api.types.is_numeric_dtype(records[c])
            and not pd.api.types.is_bool_dtype(records[c])
        ]
    missing = [m for m in metrics if m not in records.columns]
    if missing:
        raise EvaluationInputError(f"records: missing metric column(s) {missing}.")
    # a canonical row order: a float mean must not depend on the order the rows arrived in
    # (rank ties between agents are broken by name only when their means are exactly equal)
    records = records.sort_values(
        [agent_col] + (["seed"] if "seed" in records.columns else []), kind="stable"
    )
    values = records[[agent_col, *metrics]].copy()
    for m in metrics:
        if pd.api.types.is_bool_dtype(values[m]):
            values[m] = values[m].astype(float)
    grouped = values.groupby(agent_col, sort=True)[list(metrics)]
    agg = grouped.agg(["mean", "std", "min", "max"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    agg["n_seeds"] = records.groupby(agent_col, sort=True).size()
    if "ruined" in records.columns:
        agg["n_ruined"] = (
            pd.Series(_ruined(records), index=records.index)
            .groupby(records[agent_col], sort=True)
            .sum()
            .astype(int)
        )
    return agg.reset_index()


def rank_agents(
    summary: pd.DataFrame, metric: str = "sharpe", higher_is_better: bool = True, agent_col: str = "agent"
) -> pd.DataFrame:
    """Rank agents by the cross-seed mean of ``metric``; ties broken by smaller std, then name.

    Ranking on the mean (not the best seed) rewards agents that work reliably. With an
    ``n_ruined`` column (``seed_summary`` of records with ``ruined``), the share of ruined
    seeds comes first: an agent that wiped out the account on more of its seeds ranks after
    one that did so on fewer, whatever their means (a ruined run ranks last).
    Adds a 1-based ``rank`` column and returns the summary sorted by it.
    """
    mean_col, std_col = f"{metric}_mean", f"{metric}_std"
    if mean_col not in summary.columns:
        raise EvaluationInputError(f"summary: no column '{mean_col}'; run seed_summary with '{metric}'.")
    key_mean = summary[mean_col] if higher_is_better else -summary[mean_col]
    ruin_share = 0.0
    if "n_ruined" in summary.columns and "n_seeds" in summary.columns:
        ruin_share = (summary["n_ruined"] / summary["n_seeds"]).fillna(0.0)
    order = pd.DataFrame(
        {
            "r": ruin_share,
            "m": key_mean.fillna(-np.inf),
            "s": summary[std_col].fillna(np.inf) if std_col in summary else 0.0,
            "a": summary[agent_col].astype(str),
        },
        index=summary.index,
    )
    idx = order.sort_values(["r", "m", "s", "a"], ascending=[True, False, True, True]).index
    ranked = summary.loc[idx].reset_index(drop=True)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    return ranked


def ruin_aware_scores(sharpe, ruined) -> np.ndarray:
    """Scores for ranking runs: the Sharpe ratio, or -inf for a ruined run (below every run
    that was not ruined; ruined runs tie with each other). NaN Sharpes stay NaN."""
    s = np.asarray(sharpe, dtype=float).copy()
    s[np.asarray(ruined, dtype=bool)] = -np.inf
    return s


def percentile_of(value: float, distribution: Sequence[float]) -> float:
    """Percentile (0–100) of ``value`` within ``distribution`` (e.g. random-policy Sharpes):
    share strictly below plus half the share equal, times 100. NaNs in the distribution are
    dropped; -inf (a ruined run, ``ruin_aware_scores``) is a value like any other, below every
    finite one. A NaN value gives NaN."""
    d = np.asarray(list(distribution), dtype=float)
    d = d[~np.isnan(d)]
    if d.size == 0:
        raise EvaluationInputError("distribution: no values to rank against (all NaN).")
    if value is None or np.isnan(value):
        return float("nan")
    return float(100.0 * (np.mean(d < value) + 0.5 * np.mean(d == value)))
