"""Learning power on the planted-market suite: do the default agents find a planted edge, does
the selection resist the winner's curse, and does the gate pass on edges and fail on noise?

Usage: ``python benchmarks/bench_learning.py [--env ENV] [--seeds 1 2] [--null-seeds 1 2 3]
[--kinds momentum trend ...] [--write]``. Every market of ``markets.planted_suite`` runs through
the project's own pipelines in process (``experiments.run_cycle``: data_ingestion,
feature_engineering, training, evaluation) with the parameters of ``conf/base`` (overlaid with
``conf/<ENV>``), plus the market's environment overrides (fills at the next open: these markets
have real opens). The rule of each market is replayed on the same test rows with the same
costs and capital (``markets.rule_report``). ``--write`` puts the tables between the
``bench_learning`` markers of docs/learning.md.

Deterministic (seeded markets, seeded training); about a minute per market with the defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from reinforce_strategy_creator.experiments import study_market  # noqa: E402
from reinforce_strategy_creator.market_data import normalise_prices, read_raw_csv  # noqa: E402
from reinforce_strategy_creator.markets import PLANTED_KINDS, planted_suite  # noqa: E402
from reinforce_strategy_creator.project_params import parameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "01_raw" / "sp500_daily_1999_2018.csv"
DOC = ROOT / "docs" / "learning.md"
START, END = "<!-- bench_learning:start -->", "<!-- bench_learning:end -->"


def source_prices() -> pd.DataFrame:
    logging.getLogger("reinforce_strategy_creator.market_data").setLevel(logging.ERROR)  # stale opens
    prices, _ = normalise_prices(read_raw_csv(SOURCE), source=str(SOURCE))
    return prices


#: the do-no-harm band on a null market (docs/learning.md): Sharpe gap, exposure share, turnover
HARM_SHARPE, HARM_EXPOSURE, HARM_TURNOVER = 0.15, 0.8, 4.0


def _pct(value: float, rule: float) -> str:
    return "n/a" if rule <= 0 or not np.isfinite(value) else f"{100 * value / rule:.0f} %"


def agent_table(studies: list[dict]) -> str:
    agents = sorted({a for s in studies for a in s["agents"].index})
    head = ["market", "rule", "B&H"] + [f"{a} (mean ± std)" for a in agents] + [f"{a} ens." for a in agents]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for s in studies:
        cells = [s["market"], f"{s['rule']:.2f}", f"{s['buy_and_hold']:.2f}"]
        for a in agents:
            m, sd = s["agents"].loc[a, "mean"], s["agents"].loc[a, "std"]
            share = "" if s["kind"] == "null" else f" = {_pct(m, s['rule'])}"
            cells.append(f"{m:.2f} ± {sd:.2f}{share}")
        for a in agents:
            v = float(s["ensembles"].get(a, np.nan))
            cells.append(f"{v:.2f}" + ("" if s["kind"] == "null" else f" = {_pct(v, s['rule'])}"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_table(studies: list[dict]) -> str:
    lines = [
        "| market | champion | champion test Sharpe | − B&H | exposure / B&H's | turnover / year | rule | "
        "gate | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in studies:
        ct = s["champion_test"]
        gap = "n/a" if ct is None else f"{ct - s['buy_and_hold']:+.2f}"
        lines.append(
            f"| {s['market']} | {s['champion']} | {'n/a' if ct is None else f'{ct:.2f}'} | {gap} | "
            f"{s['champion_exposure'] / s['buy_and_hold_exposure']:.0%} | {s['champion_turnover']:.1f} | "
            f"{s['rule']:.2f} | {'PASS' if s['passed'] else 'fail'} | {s['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def harm_counts(studies: list[dict]) -> str:
    """The do-no-harm count on the null markets: the champion's test Sharpe at least
    buy-and-hold's minus 0.15 and its exposure at least 80 % of buy-and-hold's."""
    null = [s for s in studies if s["kind"] == "null"]
    if not null:
        return ""
    ok = [
        s
        for s in null
        if s["champion_test"] is not None
        and s["champion_test"] >= s["buy_and_hold"] - HARM_SHARPE
        and s["champion_exposure"] >= HARM_EXPOSURE * s["buy_and_hold_exposure"]
    ]
    calm = [s for s in null if s["champion_turnover"] <= HARM_TURNOVER]
    return (
        f"Do no harm: on **{len(ok)} of {len(null)}** null markets the champion's test Sharpe is at least "
        f"buy-and-hold's minus {HARM_SHARPE} with at least {HARM_EXPOSURE:.0%} of its exposure, and on "
        f"**{len(calm)} of {len(null)}** it turns over at most {HARM_TURNOVER:g} times a year."
    )


def selection_table(studies: list[dict]) -> str:
    frame = pd.concat([s["selection"].assign(market=s["market"]) for s in studies], ignore_index=True)
    lines = [
        "| selection rule | champion test Sharpe, mean | champion ≥ median candidate |",
        "| --- | --- | --- |",
    ]
    for rule, g in frame.groupby("rule", sort=False):
        lines.append(
            f"| `{rule}` | {g['test'].astype(float).mean():.2f} | "
            f"{int(g['at_least_median'].sum())} of {len(g)} markets |"
        )
    return "\n".join(lines)


def gate_counts(studies: list[dict]) -> str:
    planted = [s for s in studies if s["kind"] != "null"]
    null = [s for s in studies if s["kind"] == "null"]
    return (
        f"The gate passed on **{sum(s['passed'] for s in planted)} of {len(planted)}** planted markets "
        f"and on **{sum(s['passed'] for s in null)} of {len(null)}** null markets (it should pass on "
        "every planted market and on no null market)."
    )


def render(studies: list[dict], env: str | None, seconds: float) -> str:
    threads = torch.get_num_threads()
    parts = [
        f"Measured with `python benchmarks/bench_learning.py{' --env ' + env if env else ''}` on "
        f"{platform.machine()}, {os.cpu_count()} CPU core(s), {threads} torch thread(s); "
        f"{len(studies)} markets in {seconds / 60:.1f} min.",
        "**Test Sharpe per agent** (mean ± std over its seeds, and as a share of the rule's test "
        "Sharpe on the same rows, costs and capital), and of each agent's seed ensemble:",
        agent_table(studies),
        "**The champion and the gate** (chosen on validation by `evaluation.selection`, decided on "
        "its single test replay):",
        verdict_table(studies),
        gate_counts(studies),
        harm_counts(studies),
        "**Selection rules** on the same trained candidates (validation records only), against the "
        "median candidate's test Sharpe on the same market:",
        selection_table(studies),
    ]
    return "\n\n".join(p for p in parts if p)


def write(text: str) -> None:
    doc = DOC.read_text()
    start, end = doc.index(START) + len(START), doc.index(END)
    DOC.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default=None, help="conf/<ENV> overlay, e.g. quick (default: conf/base)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--null-seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--kinds", nargs="+", default=list(PLANTED_KINDS), choices=PLANTED_KINDS)
    parser.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("kedro").setLevel(logging.WARNING)
    params = parameters(args.env)
    params["training"]["common"]["progress"] = False
    markets = planted_suite(source_prices(), seeds=args.seeds, null_seeds=args.null_seeds, kinds=args.kinds)
    start, studies = time.perf_counter(), []
    for market in markets:
        studies.append(study_market(market, params))
        s = studies[-1]
        print(
            f"{s['market']:>15}: rule {s['rule']:.2f}, champion {s['champion']} {s['champion_test']}, "
            f"{'PASS' if s['passed'] else 'fail'} ({s['wall_s']:.0f} s)",
            flush=True,
        )
    text = render(studies, args.env, time.perf_counter() - start)
    print(text)
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
