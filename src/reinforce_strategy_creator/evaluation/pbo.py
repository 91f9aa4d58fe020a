"""Probability of backtest overfitting (PBO) by combinatorially symmetric cross-validation.

Bailey, Borwein, López de Prado and Zhu (2017), "The Probability of Backtest Overfitting",
Journal of Computational Finance 20(4). Definition, inputs and outputs: docs/metrics.md, "PBO".
Hand-written in numpy, vectorised over all combinations, because pypbo is not on PyPI, loops in
Python and imports seaborn, statsmodels and joblib, and mlfinlab is not free.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .metrics import EvaluationInputError

__all__ = ["METRICS", "probability_of_backtest_overfitting"]

#: Performance measures a candidate can be ranked by, each on per-bar returns (not annualised).
METRICS = ("sharpe", "sortino", "mean", "total_return")

#: Variance below this fraction of the mean square counts as zero (a constant series).
_ZERO_VARIANCE = 1e-10
#: Combinations handled per numpy batch (bounds memory for many candidates).
_BATCH = 4096


def _as_matrix(returns: Any) -> tuple[np.ndarray, list[str], pd.Index | None]:
    if isinstance(returns, pd.DataFrame):
        names = [str(c) for c in returns.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise EvaluationInputError(
                f"PBO: the returns table has duplicate candidate columns "
                f"{dupes}; give every candidate its own column name."
            )
        index = returns.index
        try:
            matrix = returns.to_numpy(dtype=float)
        except (TypeError, ValueError):
            bad = [n for n, dtype in zip(names, returns.dtypes) if not pd.api.types.is_numeric_dtype(dtype)]
            raise EvaluationInputError(
                f"PBO: columns {bad} of the returns table are not numeric; pass per-bar returns as numbers."
            ) from None
    else:
        try:
            matrix = np.asarray(returns, dtype=float)
        except (TypeError, ValueError):
            raise EvaluationInputError(
                "PBO: returns must be a T×N table of numbers (per-bar returns, one column per candidate)."
            ) from None
        names, index = None, None
    if matrix.ndim != 2:
        raise EvaluationInputError(
            f"PBO: returns must be a 2-D T×N table (bars × candidates), got shape {matrix.shape}."
        )
    if names is None:
        names = [str(j) for j in range(matrix.shape[1])]
    return matrix, names, index


def _ruin_rows(matrix: np.ndarray, names: list[str], index: pd.Index | None) -> np.ndarray:
    """Per candidate, the row of its bar of ruin (its return of exactly -1, ``metrics.ruin_index``
    on returns), or the number of rows for a candidate that is never ruined. After its bar of
    ruin a candidate's returns are NaN (the frozen bars: it no longer trades); every other
    missing, infinite or below -100 % return is refused, naming the candidate and the row."""
    n_rows = matrix.shape[0]

    def where(row: int) -> str:
        return f"row {row}" + (f" ({index[row]})" if index is not None else "")

    ruin = matrix == -1.0
    ruin_row = np.where(ruin.any(axis=0), ruin.argmax(axis=0), n_rows)
    after = np.arange(n_rows)[:, None] > ruin_row[None, :]
    missing = np.isnan(matrix)
    bad = np.isinf(matrix) | (missing & ~after)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise EvaluationInputError(
            f"PBO: candidate {names[col]!r} has {int(bad[:, col].sum())} missing or infinite "
            f"returns, the first at {where(row)}. Every candidate needs a return on every bar up to "
            "its bar of ruin: replay them on the same bars (a bar without a position returns 0), "
            "or drop those bars for all of them. A ruined candidate's returns end with -1 on its "
            "bar of ruin, followed only by NaN."
        )
    with np.errstate(invalid="ignore"):
        below = matrix < -1.0
    if below.any():
        row, col = (int(v) for v in np.argwhere(below)[0])
        raise EvaluationInputError(
            f"PBO: candidate {names[col]!r} loses more than 100 % on {where(row)} (return "
            f"{matrix[row, col]}); a per-bar return is >= -1, and -1 (all of the capital lost) is "
            "the bar of ruin (metrics.equity_returns)."
        )
    late = after & ~missing
    if late.any():
        row, col = (int(v) for v in np.argwhere(late)[0])
        raise EvaluationInputError(
            f"PBO: candidate {names[col]!r} is ruined on {where(int(ruin_row[col]))} (return -1) but "
            f"has the return {matrix[row, col]} on {where(row)} after it; a ruined account no "
            "longer trades, so its returns after the bar of ruin must be NaN."
        )
    return ruin_row


def _check_blocks(n_blocks: Any, n_rows: int) -> int:
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, (int, np.integer)):
        raise EvaluationInputError(f"PBO: n_blocks must be an even integer, got {n_blocks!r}.")
    n_blocks = int(n_blocks)
    if n_blocks < 2 or n_blocks % 2:
        raise EvaluationInputError(
            f"PBO: n_blocks = {n_blocks} must be an even integer >= 2 "
            "(the blocks are split half in sample, half out of sample); 16 "
            "is usual."
        )
    if n_blocks > n_rows:
        raise EvaluationInputError(
            f"PBO: n_blocks = {n_blocks} is more than the {n_rows} bars of "
            f"returns; use at most {n_rows - n_rows % 2} blocks, or more "
            "bars."
        )
    if (n_rows // n_blocks) * (n_blocks // 2) < 2:
        raise EvaluationInputError(
            f"PBO: n_blocks = {n_blocks} on {n_rows} bars leaves fewer "
            "than 2 bars per half, too few for a Sharpe ratio; use more "
            "bars."
        )
    return n_blocks


def _combinations(n_blocks: int, max_combinations: int, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """In-sample and out-of-sample block numbers (combinations × S/2 each), ascending: all
    C(S, S/2) combinations, or a seeded uniform sample of ``max_combinations``."""
    half = n_blocks // 2
    total = math.comb(n_blocks, half)
    if total <= max_combinations:
        ins = np.array(list(itertools.combinations(range(n_blocks), half)))
        exact = True
    else:
        rng = np.random.default_rng(seed)
        draws = np.argsort(rng.random((max_combinations, n_blocks)), axis=1)
        ins = np.sort(draws[:, :half], axis=1)
        exact = False
    mask = np.zeros((len(ins), n_blocks), dtype=bool)
    mask[np.arange(len(ins))[:, None], ins] = True
    outs = np.nonzero(~mask)[1].reshape(len(ins), half)
    return ins, outs, exact


def _metric(
    metric: str,
    n: float,
    block_bars: int,
    s: np.ndarray,
    m2: np.ndarray,
    mean_sq: np.ndarray,
    sq: np.ndarray,
    down_sq: np.ndarray,
    log_sum: np.ndarray,
) -> np.ndarray:
    """The metric of every (combination, candidate) half from its additive block statistics."""
    mean = s / n
    if metric == "mean":
        return mean
    if metric == "total_return":
        return np.expm1(log_sum)
    if metric == "sortino":
        down = np.sqrt(down_sq / n)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(down > 0, mean / np.where(down > 0, down, 1.0), np.inf)
        return np.where(mean == 0, 0.0, value)
    # sharpe (sample standard deviation, as docs/metrics.md). Sum of squared deviations of the
    # half = within-block sums (each about its block's mean) + between blocks (Chan et al.), so
    # rounding stays small next to the half's mean square and a constant half is seen as one
    between = np.maximum(block_bars * mean_sq - s**2 / n, 0.0)
    var = (m2 + between) / (n - 1)
    flat = var <= _ZERO_VARIANCE * (sq / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = mean / np.sqrt(np.where(flat, 1.0, var))
    if not flat.any():
        return sharpe
    return np.where(flat, np.where(mean == 0, 0.0, np.copysign(np.inf, mean)), sharpe)


_SUMMARY = ("mean", "std", "min", "q05", "q25", "median", "q75", "q95", "max")


def _summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return dict.fromkeys(_SUMMARY, math.nan)
    q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    std = float(values.std(ddof=1)) if values.size > 1 else math.nan
    stats = [float(values.mean()), std, float(values.min()), *map(float, q), float(values.max())]
    return dict(zip(_SUMMARY, stats))


def _degradation(is_values: np.ndarray, oos_values: np.ndarray) -> dict[str, float]:
    """Least-squares line of the chosen candidate's OOS metric on its IS metric (finite pairs)."""
    ok = np.isfinite(is_values) & np.isfinite(oos_values)
    x, y = is_values[ok], oos_values[ok]
    out = {"slope": math.nan, "intercept": math.nan, "r2": math.nan, "n_points": int(ok.sum())}
    if x.size < 3 or np.ptp(x) == 0:
        return out
    xc, yc = x - x.mean(), y - y.mean()
    x_scale, y_scale = float(np.abs(xc).max()), float(np.abs(yc).max())
    if not x_scale > 0:
        return out
    xs, ys = xc / x_scale, yc / (y_scale or 1.0)  # scaled to [-1, 1]: no underflow in the sums
    sxy, sxx, syy = float(np.sum(xs * ys)), float(np.sum(xs * xs)), float(np.sum(ys * ys))
    slope = sxy / sxx * (y_scale / x_scale)
    out.update(
        slope=slope,
        intercept=float(y.mean() - slope * x.mean()),
        r2=sxy**2 / (sxx * syy) if syy > 0 else math.nan,
    )
    return out


def probability_of_backtest_overfitting(
    returns: pd.DataFrame | np.ndarray,
    n_blocks: int = 16,
    metric: str = "sharpe",
    *,
    max_combinations: int = 20_000,
    seed: int = 0,
    return_logits: bool = False,
) -> dict[str, Any]:
    """PBO of choosing the best of N candidates by ``metric``, by CSCV (Bailey et al. 2017).

    The T×N per-bar returns are cut into ``n_blocks`` (S) equal blocks of consecutive bars (the
    first ``T mod S`` bars are dropped). For every choice of S/2 blocks as the in-sample half,
    the candidate with the best in-sample ``metric`` is "chosen"; ω is its out-of-sample rank
    among all N divided by N + 1 (rank 1 = worst, ties averaged) and λ = ln(ω / (1 − ω)). PBO is
    the share of combinations with λ ≤ 0: the chosen candidate does no better than the median out
    of sample. Ties for the in-sample best are shared equally (each of k tied candidates counts
    1/k), so the result does not depend on the column order.

    A ruined candidate (its account lost all of its capital: ``metrics.equity_returns``) has its
    returns up to and including its bar of ruin, whose return is -1, and NaN on the bars after
    it. Its metric on a half is computed as usual while the half ends before its bar of ruin;
    a half holding the block of its bar of ruin or a later block scores -inf for it (it lost
    everything in, or before, that sub-period; ``stats.ruin_aware_scores``), so it is chosen
    in sample on such a half only in a tie of every candidate at -inf and ranks last (ties
    with other -inf averaged) out of sample. A candidate ruined in the dropped first rows scores
    -inf on every half.

    Args:
        returns: per-bar returns, one column per candidate, every candidate on the same bars
            (a DataFrame's column names are used in ``chosen_share``); a ruined candidate's
            column ends with -1 on its bar of ruin, then NaN.
        n_blocks: S, even, ≤ T. All C(S, S/2) combinations are used while they number at most
            ``max_combinations`` (S = 16: 12,870); beyond, a uniform sample of that many,
            drawn with ``seed``.
        metric: ``sharpe`` (mean / sample std; a zero-variance half scores 0, or ±∞ by the sign
            of its mean), ``sortino`` (mean / √mean(min(r, 0)²); +∞ without a losing bar),
            ``mean`` or ``total_return`` (compounded); all per bar, not annualised.
        return_logits: also return every combination's λ (``logits``).

    Returns:
        ``pbo``; ``logit_summary`` (mean, std, min, 5/25/50/75/95 % quantiles, max of λ over
        the combinations; with tied chosen candidates, their mean λ);
        ``degradation`` (slope, intercept and R² of the chosen candidate's out-of-sample metric
        regressed on its in-sample metric, and how many finite pairs); ``prob_oos_loss`` (share
        of combinations whose chosen candidate's out-of-sample metric is < 0);
        ``chosen_share`` (per candidate, the share of combinations that chose it);
        ``is_metric_mean`` / ``oos_metric_mean`` of the chosen; and the bookkeeping
        ``n_candidates``, ``n_ruined`` (candidates with a bar of ruin), ``n_bars`` (used),
        ``n_bars_dropped``, ``n_blocks``, ``block_bars``, ``n_combinations``, ``exact``,
        ``metric``, ``reason``. With fewer than 2 candidates every statistic is NaN and
        ``reason`` says why.

    Raises:
        EvaluationInputError: ``n_blocks`` odd, < 2 or > T; a return missing (other than after
            a candidate's bar of ruin), infinite, < −1, or after a return of −1 (naming the
            candidate and the row); an unknown ``metric``; a malformed table.
    """
    _check_options(metric, max_combinations)
    matrix, names, index = _as_matrix(returns)
    n_rows, n_cand = matrix.shape
    n_blocks = _check_blocks(n_blocks, n_rows)
    ruin_row = _ruin_rows(matrix, names, index)
    base: dict[str, Any] = {
        "metric": metric,
        "n_candidates": n_cand,
        "n_ruined": int((ruin_row < n_rows).sum()),
    }
    if n_cand < 2:
        return _too_few(base, n_rows, n_blocks, return_logits)
    dropped = n_rows % n_blocks
    block_bars = n_rows // n_blocks
    # a ruined candidate's bar of ruin and frozen bars only ever fall in halves that score -inf:
    # zeros there keep the sums of the other halves finite
    alive = np.arange(n_rows)[:, None] < ruin_row[None, :]
    stacked = _block_statistics(np.where(alive, matrix, 0.0)[dropped:], n_blocks)
    # the first block holding a candidate's bar of ruin (0 if it was ruined in the dropped rows,
    # S if it never was)
    ruin_block = np.clip((ruin_row - dropped) // block_bars, 0, n_blocks)
    in_blocks, out_blocks, exact = _combinations(n_blocks, max_combinations, seed)
    scan = _scan(stacked, in_blocks, out_blocks, metric, block_bars, ruin_block)
    n_comb = len(in_blocks)
    lam_all, is_all, oos_all = scan["logits"], scan["is_best"], scan["oos_chosen"]
    finite_is, finite_oos = is_all[np.isfinite(is_all)], oos_all[np.isfinite(oos_all)]
    result = {
        **base,
        "pbo": min(scan["overfit"] / n_comb, 1.0),
        "reason": None,
        "logit_summary": _summary(lam_all),
        "prob_oos_loss": min(scan["loss"] / n_comb, 1.0),
        "degradation": _degradation(is_all, oos_all),
        "chosen_share": {name: float(v / n_comb) for name, v in zip(names, scan["share"], strict=True)},
        "is_metric_mean": float(finite_is.mean()) if finite_is.size else math.nan,
        "oos_metric_mean": float(finite_oos.mean()) if finite_oos.size else math.nan,
        "n_bars": n_rows - dropped,
        "n_bars_dropped": dropped,
        "n_blocks": n_blocks,
        "block_bars": block_bars,
        "n_combinations": n_comb,
        "exact": exact,
    }
    if return_logits:
        result["logits"] = lam_all.tolist()
    return result


def _check_options(metric: str, max_combinations: Any) -> None:
    if metric not in METRICS:
        raise EvaluationInputError(f"PBO: metric = {metric!r} is not one of {list(METRICS)}.")
    if isinstance(max_combinations, bool) or not isinstance(max_combinations, int) or max_combinations < 2:
        raise EvaluationInputError(
            f"PBO: max_combinations must be an integer >= 2, got {max_combinations!r}."
        )


def _too_few(base: dict[str, Any], n_rows: int, n_blocks: int, return_logits: bool) -> dict[str, Any]:
    """The result with fewer than 2 candidates: nothing was chosen, every statistic is NaN."""
    empty = np.array([])
    return {
        **base,
        "pbo": math.nan,
        "reason": f"PBO needs at least 2 candidates to choose from, got {base['n_candidates']}",
        "logit_summary": _summary(empty),
        "prob_oos_loss": math.nan,
        "degradation": _degradation(empty, empty),
        "chosen_share": {},
        "is_metric_mean": math.nan,
        "oos_metric_mean": math.nan,
        "n_bars": n_rows,
        "n_bars_dropped": 0,
        "n_blocks": n_blocks,
        "block_bars": 0,
        "n_combinations": 0,
        "exact": True,
        **({"logits": []} if return_logits else {}),
    }


_STATISTICS = ("s", "m2", "mean_sq", "sq", "down_sq", "log_sum")


def _block_statistics(matrix: np.ndarray, n_blocks: int) -> np.ndarray:
    """(S, statistics, N): the additive per-block statistics the metrics are built from, in the
    order of ``_STATISTICS``."""
    n_rows, n_cand = matrix.shape
    block_bars = n_rows // n_blocks
    # C order: every column's sums are then taken in the same order wherever the column sits
    blocks = np.ascontiguousarray(matrix).reshape(n_blocks, block_bars, n_cand)
    block_mean = blocks.sum(axis=1) / block_bars
    stats = {
        "s": blocks.sum(axis=1),
        "m2": ((blocks - block_mean[:, None, :]) ** 2).sum(axis=1),
        "mean_sq": block_mean**2,
        "sq": (blocks**2).sum(axis=1),
        "down_sq": (np.minimum(blocks, 0.0) ** 2).sum(axis=1),
        "log_sum": np.log1p(blocks).sum(axis=1),
    }
    return np.stack([stats[k] for k in _STATISTICS], axis=1)


def _scan(
    stacked: np.ndarray,
    in_blocks: np.ndarray,
    out_blocks: np.ndarray,
    metric: str,
    block_bars: int,
    ruin_block: np.ndarray,
) -> dict[str, Any]:
    """Every combination, in batches: the in-sample choice (ties shared), its logit λ, its
    in- and out-of-sample metric, the overfit and loss counts, and each candidate's share. A half
    holding a candidate's block of ruin (``ruin_block``) or a later one scores -inf for it."""
    n_cand = stacked.shape[2]
    n_half = float(block_bars * (stacked.shape[0] // 2))
    logits, is_best, oos_chosen, share = [], [], [], np.zeros(n_cand)
    overfit = loss = 0.0
    for start in range(0, len(in_blocks), _BATCH):
        # each half summed from its own blocks (not total − in-sample), so equal halves tie
        # exactly; gathers and sums, no BLAS (whose threads crawl on a busy machine)
        ins_sum = stacked[in_blocks[start : start + _BATCH]].sum(axis=1)
        outs_sum = stacked[out_blocks[start : start + _BATCH]].sum(axis=1)
        is_metric = _ruined_half(
            _metric(metric, n_half, block_bars, **dict(zip(_STATISTICS, ins_sum.transpose(1, 0, 2)))),
            in_blocks[start : start + _BATCH],
            ruin_block,
        )
        oos_metric = _ruined_half(
            _metric(metric, n_half, block_bars, **dict(zip(_STATISTICS, outs_sum.transpose(1, 0, 2)))),
            out_blocks[start : start + _BATCH],
            ruin_block,
        )
        best = is_metric == is_metric.max(axis=1, keepdims=True)
        n_best = best.sum(axis=1)
        weight = best / n_best[:, None]
        omega = rankdata(oos_metric, method="average", axis=1) / (n_cand + 1)
        lam = np.log(omega / (1.0 - omega))
        overfit += float(((best & (lam <= 0)).sum(axis=1) / n_best).sum())  # counts: ≤ 1 each
        logits.append((weight * lam).sum(axis=1))
        is_best.append(is_metric.max(axis=1))
        with np.errstate(invalid="ignore"):  # tied chosen at +∞ and −∞: NaN, left out below
            oos_chosen.append((np.where(weight > 0, oos_metric, 0.0) * weight).sum(axis=1))
        loss += float(((best & (oos_metric < 0)).sum(axis=1) / n_best).sum())
        share += weight.sum(axis=0)
    return {
        "logits": np.concatenate(logits),
        "is_best": np.concatenate(is_best),
        "oos_chosen": np.concatenate(oos_chosen),
        "overfit": overfit,
        "loss": loss,
        "share": share,
    }


def _ruined_half(values: np.ndarray, blocks: np.ndarray, ruin_block: np.ndarray) -> np.ndarray:
    """``values`` (combinations × candidates) with -inf where the half's ``blocks`` reach the
    candidate's block of ruin: it lost all of its capital in, or before, that half."""
    ruined = blocks.max(axis=1)[:, None] >= ruin_block[None, :]
    return np.where(ruined, -np.inf, values) if ruined.any() else values
