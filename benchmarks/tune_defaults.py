"""Tune the project's defaults on the planted markets' VALIDATION windows (docs/tuning.md).

A documented, staged coordinate search (no Optuna: it is not a project dependency). Every
configuration is run through the project's own pipelines (``experiments.run_cycle``: data
ingestion, features, training with checkpoint selection, evaluation) on planted markets
(``markets.make_market``) and scored on the VALIDATION windows only, against each market's rule
(``markets.rule_report``) on the same window, costs and fills.

Usage (resumable: every finished (market, agent, seed) run is appended to the trials CSV and
reused when the same parameters come up again)::

    python benchmarks/tune_defaults.py --search          # screening stages, then confirmation
    python benchmarks/tune_defaults.py --final           # ONCE: before- and after-defaults on TEST
    python benchmarks/tune_defaults.py --write           # docs/tuning.md from the CSVs
    python benchmarks/tune_defaults.py --show            # the objective table so far

Objective (validation only). For an agent on market m: ``ratio_m = mean over training seeds of
the agent's validation Sharpe / max(rule's validation Sharpe, FLOOR)``, clipped to [-1, 1];
the objective is the mean of ``ratio_m`` over the markets (and over the agents for a stage
that changes settings shared by every agent). FLOOR = 1.0 is about one standard error of an
annualised Sharpe ratio measured on the ~1.5-year validation window, so a market whose rule
happens to score near or below 0 on validation is neither divided by ~0 nor flips the sign;
the cap at 1 keeps a validation score above the rule's (partly the luck of checkpoint
selection on that very window) from buying a failure on another market.

Discipline: ``--search`` reads only the validation rows of each run (the pipeline also replays
test, which is discarded unread); the test windows are read by ``--final`` alone, which
refuses to run a second time (``--force`` to override, documented in docs/tuning.md if used).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import subprocess
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "01_raw" / "sp500_daily_1999_2018.csv"
RESULTS = ROOT / "benchmarks" / "results"
TRIALS_CSV = RESULTS / "tune_defaults_trials.csv"  # one row per (run, agent, seed): validation only
FINAL_CSV = RESULTS / "tune_defaults_final.csv"  # before/after defaults on validation AND test
DOC = ROOT / "docs" / "tuning.md"
#: The defaults the search starts from (the branch point of the tuning work): conf/base at this
#: revision is the "before" configuration, whatever conf/base holds now.
BEFORE_REV = "78ddcf4"
AGENTS = ("ppo", "a2c", "dqn")
KINDS = ("momentum", "reversion", "trend", "volatility")
FLOOR = 1.0
SCREEN_MARKETS = tuple(f"{k}-s1" for k in KINDS)
CONFIRM_MARKETS = tuple(f"{k}-s{s}" for s in (1, 2) for k in KINDS)
SCREEN_SEEDS = (0, 1)
CONFIRM_SEEDS = (0, 1, 2)
#: a challenger must beat the incumbent's screening objective by this much to replace it
MARGIN = 0.02
WORKERS = 2


# ----------------------------------------------------------------------------- parameters
def params_at(rev: str | None) -> dict[str, Any]:
    """The project's parameters from conf/base at git revision ``rev`` (None: the working tree),
    merged as ``kedro run`` merges them (no conf/local)."""
    from kedro.config import OmegaConfigLoader

    from reinforce_strategy_creator import settings

    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "conf"
        (conf / "base").mkdir(parents=True)
        (conf / "local").mkdir()
        if rev is None:
            files = sorted((ROOT / "conf" / "base").glob("parameters*.yml"))
            for f in files:
                (conf / "base" / f.name).write_text(f.read_text())
        else:
            names = subprocess.run(
                ["git", "ls-tree", "--name-only", f"{rev}:conf/base"],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            for name in names:
                if name.startswith("parameters"):
                    text = subprocess.run(
                        ["git", "show", f"{rev}:conf/base/{name}"],
                        cwd=ROOT,
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                    (conf / "base" / name).write_text(text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loader = OmegaConfigLoader(conf_source=str(conf), **settings.CONFIG_LOADER_ARGS)
            return copy.deepcopy(dict(loader["parameters"]))


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    from reinforce_strategy_creator.experiments import deep_merge as merge

    return merge(base, overrides)


def run_params(
    base: Mapping[str, Any], overrides: Mapping[str, Any], agents: Sequence[str], seeds: Sequence[int]
) -> dict[str, Any]:
    """``base`` + ``overrides`` with ``training`` cut to ``agents`` and ``seeds``, no progress bar."""
    p = deep_merge(base, overrides)
    training = p["training"]
    p["training"] = {
        "common": {**training["common"], "seeds": list(seeds), "progress": False},
        **{a: training[a] for a in agents},
    }
    return p


def agent_key(params: Mapping[str, Any], agent: str, market: str, seed: int) -> str:
    """What one (agent, seed) result depends on: the market and every parameter that reaches
    that agent's training and evaluation (not the other agents' blocks)."""
    relevant = {k: v for k, v in params.items() if k != "training"}
    relevant["training"] = {
        "common": {k: v for k, v in params["training"]["common"].items() if k not in ("seeds", "progress")},
        agent: params["training"][agent],
    }
    blob = json.dumps(
        {"p": relevant, "agent": agent, "market": market, "seed": int(seed)}, sort_keys=True, default=str
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- markets
_SOURCE: pd.DataFrame | None = None


def source_prices() -> pd.DataFrame:
    global _SOURCE
    if _SOURCE is None:
        from reinforce_strategy_creator.market_data import (
            normalise_prices,
            read_raw_csv,
        )

        logging.getLogger("reinforce_strategy_creator.market_data").setLevel(logging.ERROR)
        _SOURCE, _ = normalise_prices(read_raw_csv(SOURCE), source=str(SOURCE))
    return _SOURCE


def market_of(name: str):
    from reinforce_strategy_creator.markets import make_market

    kind, _, seed = name.rpartition("-s")
    return make_market(kind, source_prices(), int(seed))


# ----------------------------------------------------------------------------- one run
def _quiet() -> None:
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for name in ("kedro", "reinforce_strategy_creator", "py.warnings"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_unit(unit: dict[str, Any]) -> list[dict[str, Any]]:
    """One market through the project's pipelines with ``unit["params"]``: a row per (agent,
    seed) and per agent ensemble with the VALIDATION Sharpe (and, in final mode only, test)."""
    _quiet()
    from reinforce_strategy_creator.experiments import run_cycle
    from reinforce_strategy_creator.markets import rule_report, to_csv_frame

    logging.disable(logging.WARNING)  # kedro configures its loggers on first use: silence them all
    market = market_of(unit["market"])
    params = deep_merge(unit["params"], {"environment": market.environment})
    windows = ("validation", "test") if unit["read_test"] else ("validation",)
    rule = rule_report(
        market,
        environment=params["environment"],
        feature_engineering=params["feature_engineering"],
        windows=windows,
    )
    rule = rule.set_index("window")
    start = time.perf_counter()
    result = run_cycle(to_csv_frame(market.prices), params, source=market.name)
    wall = time.perf_counter() - start
    tables = [("validation", result.validation)]
    if unit["read_test"]:
        tables.append(("test", result.test))
    rows = []
    for window, ledger in tables:
        candidates = ledger[ledger["kind"].isin(["agent", "ensemble"])]
        for rec in candidates.itertuples():
            seed = int(rec.seed)
            rows.append(
                {
                    "market": market.name,
                    "kind": market.kind,
                    "window": window,
                    "agent": rec.agent,
                    "member": "seed" if rec.kind == "agent" else "ensemble",
                    "seed": seed,
                    "sharpe": float(rec.sharpe),
                    "rule_sharpe": float(rule.at[window, "rule_sharpe"]),
                    "buy_and_hold_sharpe": float(rule.at[window, "buy_and_hold_sharpe"]),
                    "key": (
                        agent_key(unit["params"], rec.agent, market.name, seed) if rec.kind == "agent" else ""
                    ),
                    "run_wall_s": round(wall, 2),
                }
            )
    if unit["read_test"]:
        for r in rows:
            r["champion_agent"] = result.champion.get("agent")
            r["champion_member"] = str(result.champion.get("member"))
            r["gate_passed"] = bool(result.verdict.get("passed"))
    return rows


# ----------------------------------------------------------------------------- the log
def load_trials() -> pd.DataFrame:
    if TRIALS_CSV.exists():
        return pd.read_csv(TRIALS_CSV, dtype={"key": str})
    return pd.DataFrame()


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(path, mode="a", header=not path.exists(), index=False)


@dataclass
class Trial:
    """One configuration of one agent (or of several, for a shared stage) on a set of markets."""

    stage: str
    name: str
    overrides: dict[str, Any]  # the full override set on BEFORE defaults
    agents: tuple[str, ...]
    markets: tuple[str, ...] = SCREEN_MARKETS
    seeds: tuple[int, ...] = SCREEN_SEEDS
    keys: dict[tuple[str, str, int], str] = field(default_factory=dict)

    def plan(self, base: Mapping[str, Any]) -> dict[str, Any]:
        return run_params(base, self.overrides, self.agents, self.seeds)


def evaluate(trials: Sequence[Trial], base: Mapping[str, Any]) -> None:
    """Run what the log does not hold yet (two worker processes), append it to the log."""
    done = load_trials()
    have = set(done["key"]) if len(done) else set()
    units: dict[tuple[str, str], dict[str, Any]] = {}
    for t in trials:
        params = t.plan(base)
        for m in t.markets:
            missing = []
            for a in t.agents:
                for s in t.seeds:
                    k = agent_key(params, a, m, s)
                    t.keys[(a, m, s)] = k
                    if k not in have and a not in missing:
                        missing.append(a)
            if missing:
                p = run_params(base, t.overrides, missing, t.seeds)
                uid = hashlib.sha1(json.dumps([m, p], sort_keys=True, default=str).encode()).hexdigest()
                units.setdefault(
                    (m, uid),
                    {
                        "market": m,
                        "params": p,
                        "read_test": False,
                        "trial": f"{t.stage}/{t.name}",
                        "stage": t.stage,
                    },
                )
    todo = list(units.values())
    if not todo:
        return
    print(f"  {len(todo)} market runs to do", flush=True)
    start = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(WORKERS, maxtasksperchild=4) as pool:
        for i, unit_rows in enumerate(pool.imap_unordered(_run_unit_tagged, todo), 1):
            rows = [r for r in unit_rows if r["window"] == "validation"]
            append_rows(TRIALS_CSV, rows)
            print(
                f"  [{i}/{len(todo)}] {rows[0]['trial']} {rows[0]['market']} "
                f"{rows[0]['run_wall_s']:.0f}s ({time.perf_counter() - start:.0f}s)",
                flush=True,
            )


def _run_unit_tagged(unit: dict[str, Any]) -> list[dict[str, Any]]:
    rows = run_unit(unit)
    for r in rows:
        r["trial"] = unit["trial"]
        r["stage"] = unit["stage"]
        r["config"] = json.dumps(_agent_config(unit["params"], r["agent"]), sort_keys=True)
    return rows


def _agent_config(params: Mapping[str, Any], agent: str) -> dict[str, Any]:
    return {
        "environment": params["environment"],
        "features": params["feature_engineering"]["features"],
        "common": params["training"]["common"],
        agent: params["training"][agent],
    }


# ----------------------------------------------------------------------------- the objective
def market_ratio(mean_sharpe: float, rule_sharpe: float) -> float:
    """Seed-mean validation Sharpe over the rule's (floored at FLOOR), clipped to [-1, 1]."""
    if not math.isfinite(mean_sharpe):
        return -1.0
    return float(np.clip(mean_sharpe / max(rule_sharpe, FLOOR), -1.0, 1.0))


def trial_scores(t: Trial, log: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per agent: objective (mean of market ratios), its worst market, markets >= 0.7, ratios."""
    by_key = log[log["member"] == "seed"].drop_duplicates("key").set_index("key")
    out = {}
    for a in t.agents:
        ratios, means = {}, {}
        for m in t.markets:
            vals = [by_key.at[t.keys[(a, m, s)], "sharpe"] for s in t.seeds]
            rule = by_key.at[t.keys[(a, m, t.seeds[0])], "rule_sharpe"]
            means[m] = float(np.mean(vals))
            ratios[m] = market_ratio(means[m], rule)
        r = np.array(list(ratios.values()))
        out[a] = {
            "objective": float(r.mean()),
            "worst": float(r.min()),
            "at_target": int((r >= 0.7).sum()),
            "ratios": ratios,
            "means": means,
        }
    return out


def objective(scores: Mapping[str, Mapping[str, Any]]) -> float:
    return float(np.mean([s["objective"] for s in scores.values()]))


# ----------------------------------------------------------------------------- search space
FEATURE_SETS: dict[str, dict[str, Any]] = {
    # the before-defaults' 17 columns less MACD, Bollinger, EMA and volume, plus a 10-bar volatility
    "lean": {
        "indicators": {
            "logret": {"periods": [1, 5, 20]},
            "sma_ratio": {"periods": [20, 50]},
            "ema_ratio": None,
            "rsi": {"periods": [14]},
            "macd_hist": None,
            "bbands": None,
            "atr_ratio": {"periods": [14]},
            "realized_vol": {"periods": [10, 20]},
            "volume_z": None,
        }
    },
    # the before-defaults plus shorter returns and a 5/10-bar realised volatility
    "plus_short": {
        "indicators": {"logret": {"periods": [1, 2, 5, 20]}, "realized_vol": {"periods": [5, 10, 20]}}
    },
    # returns and volatilities only, at several horizons
    "returns_vol": {
        "indicators": {
            "logret": {"periods": [1, 2, 5, 10, 20]},
            "sma_ratio": None,
            "ema_ratio": None,
            "rsi": None,
            "macd_hist": None,
            "bbands": None,
            "atr_ratio": None,
            "realized_vol": {"periods": [5, 10, 20]},
            "volume_z": None,
        }
    },
}
BEFORE_LR = {"ppo": 3e-4, "a2c": 7e-4, "dqn": 5e-4}
BEFORE_STEPS = {"ppo": 200_000, "a2c": 150_000, "dqn": 150_000}
BEFORE_EVAL_EVERY = {"ppo": 5, "a2c": 40, "dqn": 300}


def _agent(agent: str, **kw) -> dict[str, Any]:
    return {"training": {agent: kw}}


def _env(**kw) -> dict[str, Any]:
    return {"environment": kw}


def _discount(a: str, cur: Mapping[str, Any]):
    return [(f"gamma={g}", _agent(a, gamma=g)) for g in (0.99, 0.9, 0.7, 0.5) if g != cur["gamma"]]


def _gae(a: str, cur: Mapping[str, Any]):
    if a == "dqn":
        return [("n_step=3", _agent(a, n_step=3))]
    lams = (0.8, 0.95) if a == "a2c" else (0.8, 0.9, 1.0)  # a2c's before-default is 1.0, ppo's 0.95
    return [(f"gae_lambda={v}", _agent(a, gae_lambda=v)) for v in lams]


def _exploration(a: str, cur: Mapping[str, Any]):
    if a == "dqn":
        return [
            ("exploration_fraction=0.1", _agent(a, exploration_fraction=0.1)),
            ("exploration_fraction=0.5", _agent(a, exploration_fraction=0.5)),
            ("eps_end=0.01", _agent(a, eps_end=0.01)),
        ]
    return [(f"ent_coef={e}", _agent(a, ent_coef=e)) for e in (0.0, 0.003, 0.03)]


def _learning_rate(a: str, cur: Mapping[str, Any]):
    values = [float(f"{BEFORE_LR[a] * f:.2g}") for f in (1 / 3, 3)]
    return [(f"learning_rate={v:g}", _agent(a, learning_rate=v)) for v in values]


def _updates(a: str, cur: Mapping[str, Any]):
    """How much each collected transition is learned from (gradient steps per env step)."""
    if a == "ppo":
        return [
            ("update_epochs=10", _agent(a, update_epochs=10)),
            ("num_steps=32", _agent(a, num_steps=32)),
            ("num_minibatches=8", _agent(a, num_minibatches=8)),
        ]
    if a == "a2c":
        return [("num_steps=4", _agent(a, num_steps=4)), ("num_steps=16", _agent(a, num_steps=16))]
    return [("gradient_steps=2", _agent(a, gradient_steps=2)), ("batch_size=256", _agent(a, batch_size=256))]


def _network(a: str, cur: Mapping[str, Any]):
    sizes = ([64, 64], [256, 256]) if a == "dqn" else ([32, 32], [128, 128])
    return [(f"hidden_sizes={s}", _agent(a, hidden_sizes=s)) for s in (*sizes, [64])]


def _budget(a: str, cur: Mapping[str, Any]):
    steps = [int(BEFORE_STEPS[a] * f) for f in (0.5, 2)]
    return [(f"total_steps={s}", _agent(a, total_steps=s)) for s in steps] + [
        ("num_envs=32", _agent(a, num_envs=32)),
        ("num_envs=128", _agent(a, num_envs=128)),
    ]


def _cadence(a: str, cur: Mapping[str, Any]):
    every = BEFORE_EVAL_EVERY[a] * 2
    return [
        (f"eval_every={every}", _agent(a, eval_every=every)),
        ("patience=4", _agent(a, patience=4)),
        ("patience=16", _agent(a, patience=16)),
    ]


#: The stages, in order: (name, scope, candidates). Scope "shared": one setting for every agent
#: (environment, features), judged on the mean of the agents' objectives; "agent": judged per
#: agent, each keeping its own best. Agent-stage candidates are a function of the agent and of
#: its current block (so that a second pass can skip the incumbent value).
STAGES: list[tuple[str, str, Any]] = [
    ("S1-discount", "agent", _discount),
    ("S2-window", "shared", [(f"window={w}", _env(window=w)) for w in (8, 4, 2, 1)]),
    (
        "S3-features",
        "shared",
        [(f"features={n}", {"feature_engineering": {"features": f}}) for n, f in FEATURE_SETS.items()],
    ),
    (
        "S4-reward",
        "shared",
        [
            ("reward=differential_sharpe", _env(reward="differential_sharpe")),
            ("reward=drawdown_penalised", _env(reward="drawdown_penalised")),
        ],
    ),
    ("S5-discount-again", "agent", _discount),
    ("S6-gae", "agent", _gae),
    ("S7-exploration", "agent", _exploration),
    ("S8-learning_rate", "agent", _learning_rate),
    ("S9-updates", "agent", _updates),
    ("S10-network", "agent", _network),
    ("S11-budget", "agent", _budget),
    ("S12-cadence", "agent", _cadence),
]


# ----------------------------------------------------------------------------- the search
def _merge_all(*overrides: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for o in overrides:
        out = deep_merge(out, o)
    return out


def _js(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


def search(base: Mapping[str, Any], only: Sequence[str] = ()) -> dict[str, Any]:
    """Staged coordinate search from the before-defaults; returns the incumbents and every trial.

    The incumbent starts as the before-defaults. A stage tries each candidate setting on top of
    the incumbent (shared settings for every agent, agent settings for each agent alone) and
    adopts the best one if its screening objective beats the incumbent's by more than MARGIN.
    """
    shared: dict[str, Any] = {}
    own: dict[str, dict[str, Any]] = {a: {} for a in AGENTS}
    history: list[dict[str, Any]] = []

    def record(stage, scope, name, a, sc, chosen, sh, ow):
        history.append(
            {
                "stage": stage,
                "scope": scope,
                "candidate": name,
                "agent": a,
                "chosen": chosen,
                **_flat(sc),
                "shared": _js(sh),
                "own": _js(ow),
            }
        )

    baseline = [Trial("S0-baseline", "before-defaults", {}, (a,)) for a in AGENTS]
    evaluate(baseline, base)
    log = load_trials()
    best = {a: trial_scores(t, log)[a] for a, t in zip(AGENTS, baseline, strict=True)}
    for a in AGENTS:
        record("S0-baseline", "-", "before-defaults", a, best[a], True, {}, {})
    _print_scores("S0-baseline", best)
    for stage, scope, cands in STAGES:
        if only and stage not in only:
            continue
        print(f"== {stage} ({scope})", flush=True)
        if scope == "shared":
            trials = {
                n: [Trial(stage, n, _merge_all(shared, o, own[a]), (a,)) for a in AGENTS] for n, o in cands
            }
            evaluate([t for ts in trials.values() for t in ts], base)
            log = load_trials()
            inc = objective(best)
            results = {
                n: {t.agents[0]: trial_scores(t, log)[t.agents[0]] for t in ts} for n, ts in trials.items()
            }
            winner = max(results, key=lambda n: objective(results[n]))
            take = objective(results[winner]) > inc + MARGIN
            for n, o in cands:
                for a in AGENTS:
                    record(
                        stage, scope, n, a, results[n][a], take and n == winner, _merge_all(shared, o), own[a]
                    )
                print(f"  {n}: {objective(results[n]):+.3f} (incumbent {inc:+.3f})", flush=True)
            if take:
                shared = _merge_all(shared, dict(cands)[winner])
                best = results[winner]
                print(f"  -> {winner}", flush=True)
        else:
            options = {
                a: cands(a, deep_merge(base, _merge_all(shared, own[a]))["training"][a]) for a in AGENTS
            }
            trials = {
                a: [(n, o, Trial(stage, n, _merge_all(shared, own[a], o), (a,))) for n, o in options[a]]
                for a in AGENTS
            }
            evaluate([t for ts in trials.values() for _, _, t in ts], base)
            log = load_trials()
            for a in AGENTS:
                results = {n: trial_scores(t, log)[a] for n, _, t in trials[a]}
                winner = max(results, key=lambda n: results[n]["objective"])
                take = results[winner]["objective"] > best[a]["objective"] + MARGIN
                for n, o, _ in trials[a]:
                    record(
                        stage, scope, n, a, results[n], take and n == winner, shared, _merge_all(own[a], o)
                    )
                    print(
                        f"  {a} {n}: {results[n]['objective']:+.3f} (incumbent {best[a]['objective']:+.3f})",
                        flush=True,
                    )
                if take:
                    own[a] = _merge_all(own[a], {n: o for n, o, _ in trials[a]}[winner])
                    best[a] = results[winner]
                    print(f"  -> {a}: {winner}", flush=True)
    return {"shared": shared, "agents": own, "history": history, "screening": best}


def _flat(sc: Mapping[str, Any]) -> dict[str, Any]:
    out = {
        "objective": round(sc["objective"], 4),
        "worst": round(sc["worst"], 4),
        "at_target": sc["at_target"],
    }
    out.update({f"ratio[{m}]": round(v, 3) for m, v in sc["ratios"].items()})
    out.update({f"sharpe[{m}]": round(v, 3) for m, v in sc["means"].items()})
    return out


def _print_scores(stage: str, scores: Mapping[str, Mapping[str, Any]]) -> None:
    for a, sc in scores.items():
        print(
            f"  {stage} {a}: {sc['objective']:+.3f} worst {sc['worst']:+.3f} "
            f"({sc['at_target']} markets >= 0.7)",
            flush=True,
        )


# ----------------------------------------------------------------------------- confirmation
RUNNERS_UP = 1


def confirm(base: Mapping[str, Any], found: Mapping[str, Any]) -> dict[str, Any]:
    """The search's incumbent and its best runner-up per agent (the best-screened other block
    with the same shared settings), each on every planted market of seeds 1-2 with three
    training seeds; per agent the better one is chosen (the incumbent unless the runner-up
    beats it by more than MARGIN)."""
    hist = pd.DataFrame(found["history"])
    shared = found["shared"]
    rows, chosen = [], {}
    for a in AGENTS:
        inc = found["agents"][a]
        h = hist[(hist["agent"] == a) & (hist["shared"] == _js(shared)) & (hist["own"] != _js(inc))]
        h = h.sort_values("objective", ascending=False).drop_duplicates("own")
        cands = [("incumbent", inc)] + [
            (f"runner-up: {r.stage} {r.candidate}", json.loads(r.own))
            for r in h.head(RUNNERS_UP).itertuples()
        ]
        trials = [
            (n, o, Trial("C-confirm", n, _merge_all(shared, o), (a,), CONFIRM_MARKETS, CONFIRM_SEEDS))
            for n, o in cands
        ]
        evaluate([t for _, _, t in trials], base)
        log = load_trials()
        scores = [(n, o, trial_scores(t, log)[a]) for n, o, t in trials]
        pick = scores[0]
        for s in scores[1:]:
            if s[2]["objective"] > pick[2]["objective"] + MARGIN:
                pick = s
        chosen[a] = pick[1]
        for n, o, sc in scores:
            rows.append({"agent": a, "candidate": n, "chosen": n == pick[0], **_flat(sc), "own": _js(o)})
            print(
                f"  confirm {a} {n}: {sc['objective']:+.3f} worst {sc['worst']:+.3f} "
                f"({sc['at_target']}/8 >= 0.7)",
                flush=True,
            )
    return {"shared": shared, "agents": chosen, "rows": rows}


# ----------------------------------------------------------------------------- final (test, once)
def final(base: Mapping[str, Any], force: bool = False) -> pd.DataFrame:
    """The before-defaults (conf/base at BEFORE_REV) and the current conf/base, each ONCE on every
    planted market of seeds 1-2 with their own default seeds: validation and TEST rows."""
    if FINAL_CSV.exists() and not force:
        raise SystemExit(
            f"{FINAL_CSV.relative_to(ROOT)} exists: the test windows were already read "
            "once. --force reruns (and docs/tuning.md must say so)."
        )
    after = params_at(None)
    choice = json.loads((RESULTS / "tune_defaults_choice.json").read_text())
    for a in AGENTS:
        wanted = deep_merge(base, _merge_all(choice["shared"], choice["agents"][a]))
        for block in ("environment", "feature_engineering"):
            if wanted[block] != after[block]:
                raise SystemExit(f"conf/base {block} differs from the search's choice; set it first.")
        if (
            wanted["training"][a] != after["training"][a]
            or wanted["training"]["common"] != after["training"]["common"]
        ):
            raise SystemExit(f"conf/base training.{a} differs from the search's choice; set it first.")
    units = []
    for label, params in (("before", base), ("after", after)):
        p = deep_merge(params, {"training": {"common": {"progress": False}}})
        units += [
            {"market": m, "params": p, "read_test": True, "trial": label, "stage": "final"}
            for m in CONFIRM_MARKETS
        ]
    FINAL_CSV.unlink(missing_ok=True)
    ctx = mp.get_context("spawn")
    start = time.perf_counter()
    with ctx.Pool(WORKERS, maxtasksperchild=2) as pool:
        for i, rows in enumerate(pool.imap_unordered(_run_unit_tagged, units), 1):
            append_rows(FINAL_CSV, rows)
            print(
                f"  [{i}/{len(units)}] {rows[0]['trial']} {rows[0]['market']} {rows[0]['run_wall_s']:.0f}s "
                f"({time.perf_counter() - start:.0f}s)",
                flush=True,
            )
    return pd.read_csv(FINAL_CSV)


# ----------------------------------------------------------------------------- docs/tuning.md
def _md(frame: pd.DataFrame) -> list[str]:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return lines


def _short(markets: Sequence[str]) -> dict[str, str]:
    return {
        m: m.replace("momentum", "mom").replace("reversion", "rev").replace("volatility", "vol")
        for m in markets
    }


def search_table(hist: pd.DataFrame) -> list[str]:
    short = _short(SCREEN_MARKETS)
    t = hist[["stage", "candidate", "agent", "objective", "worst", "at_target", "chosen"]].copy()
    for m in SCREEN_MARKETS:
        t[f"{short[m]} val Sharpe"] = hist[f"sharpe[{m}]"].map("{:.2f}".format)
    t["objective"] = t["objective"].map("{:+.3f}".format)
    t["worst"] = t["worst"].map("{:+.2f}".format)
    t["at_target"] = t["at_target"].astype(str) + "/4"
    t["chosen"] = t["chosen"].map({True: "**yes**", False: ""})
    t = t.rename(columns={"at_target": "markets >= 0.7"})
    return _md(t)


def confirm_table(rows: pd.DataFrame) -> list[str]:
    short = _short(CONFIRM_MARKETS)
    t = rows[["agent", "candidate", "objective", "worst", "at_target", "chosen"]].copy()
    for m in CONFIRM_MARKETS:
        t[short[m]] = rows[f"ratio[{m}]"].map("{:+.2f}".format)
    t["objective"] = t["objective"].map("{:+.3f}".format)
    t["worst"] = t["worst"].map("{:+.2f}".format)
    t["at_target"] = t["at_target"].astype(str) + "/8"
    t["chosen"] = t["chosen"].map({True: "**yes**", False: ""})
    return _md(t.rename(columns={"at_target": "markets >= 0.7"}))


def _pct(values: pd.Series, rule: float) -> str:
    p = 100.0 * values / rule
    return f"{p.mean():.0f} ± {p.std(ddof=1):.0f} %" if len(p) > 1 else f"{p.iloc[0]:.0f} %"


def final_tables(fin: pd.DataFrame, window: str) -> list[str]:
    f = fin[fin["window"] == window]
    lines = [
        "| market | rule | B&H | agent | before: seeds | before: ensemble | after: seeds | "
        "after: ensemble | after: seed Sharpes |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in CONFIRM_MARKETS:
        for a in AGENTS:
            cell = {}
            for label in ("before", "after"):
                g = f[(f["trial"] == label) & (f["market"] == m) & (f["agent"] == a)]
                seeds, ens = g[g["member"] == "seed"], g[g["member"] == "ensemble"]
                rule = float(g["rule_sharpe"].iloc[0])
                cell[label] = (_pct(seeds["sharpe"], rule), _pct(ens["sharpe"], rule), seeds["sharpe"])
                bh = float(g["buy_and_hold_sharpe"].iloc[0])
            sh = ", ".join(f"{v:.2f}" for v in cell["after"][2])
            lines.append(
                f"| {m} | {rule:.2f} | {bh:.2f} | {a} | {cell['before'][0]} | {cell['before'][1]} | "
                f"{cell['after'][0]} | {cell['after'][1]} | {sh} |"
            )
    return lines


def summary_table(fin: pd.DataFrame, window: str) -> list[str]:
    """Per agent and configuration: markets where the seed mean reaches 70 % of the rule."""
    f = fin[fin["window"] == window]
    lines = [
        "| agent | config | seed mean >= 70 % of rule | ensemble >= 70 % | median % (seed mean) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for a in AGENTS:
        for label in ("before", "after"):
            g = f[(f["trial"] == label) & (f["agent"] == a)]
            pct = {}
            for member in ("seed", "ensemble"):
                x = (
                    g[g["member"] == member]
                    .groupby("market")
                    .agg(s=("sharpe", "mean"), r=("rule_sharpe", "first"))
                )
                pct[member] = 100 * x["s"] / x["r"]
            lines.append(
                f"| {a} | {label} | {(pct['seed'] >= 70).sum()}/{len(pct['seed'])} | "
                f"{(pct['ensemble'] >= 70).sum()}/{len(pct['ensemble'])} | "
                f"{pct['seed'].median():.0f} % |"
            )
    return lines


def champion_table(fin: pd.DataFrame) -> list[str]:
    f = fin[(fin["window"] == "test")]
    lines = [
        "| market | before: champion | before: gate | after: champion | after: gate |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in CONFIRM_MARKETS:
        cells = []
        for label in ("before", "after"):
            g = f[(f["trial"] == label) & (f["market"] == m)].iloc[0]
            cells += [
                f"{g['champion_agent']} ({g['champion_member']})",
                "pass" if g["gate_passed"] else "fail",
            ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def write_doc() -> None:
    hist = pd.read_csv(RESULTS / "tune_defaults_search.csv")
    parts = {"search": search_table(hist)}
    conf_path = RESULTS / "tune_defaults_confirm.csv"
    if conf_path.exists():
        parts["confirm"] = confirm_table(pd.read_csv(conf_path))
    choice_path = RESULTS / "tune_defaults_choice.json"
    if choice_path.exists():
        parts["choice"] = ["```json", choice_path.read_text().strip(), "```"]
    if FINAL_CSV.exists():
        fin = pd.read_csv(FINAL_CSV)
        parts["final"] = (
            ["Test window (read once):", ""]
            + final_tables(fin, "test")
            + ["", "Per agent, over the 8 planted markets (test):", ""]
            + summary_table(fin, "test")
            + ["", "Champion and gate per market (test):", ""]
            + champion_table(fin)
            + ["", "Validation window of the same runs (for reference; selection happened here):", ""]
            + summary_table(fin, "validation")
        )
    doc = DOC.read_text()
    for name, lines in parts.items():
        start, end = f"<!-- tune_defaults:{name}:start -->", f"<!-- tune_defaults:{name}:end -->"
        if start not in doc or end not in doc:
            raise SystemExit(f"{DOC}: markers {start} / {end} not found; add them where the table goes.")
        head, rest = doc.split(start, 1)
        doc = head + start + "\n" + "\n".join(lines) + "\n" + rest[rest.index(end) :]
    DOC.write_text(doc)
    print(f"wrote {DOC.relative_to(ROOT)}")


# ----------------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--search", action="store_true", help="screening stages, then confirmation (resumable)")
    ap.add_argument("--stages", nargs="*", default=(), help="only these stages (e.g. S1-discount)")
    ap.add_argument("--no-confirm", action="store_true", help="stop after the screening stages")
    ap.add_argument("--final", action="store_true", help="ONCE: before- and after-defaults on test")
    ap.add_argument("--force", action="store_true", help="with --final: run although it already ran")
    ap.add_argument("--write", action="store_true", help="write docs/tuning.md from the CSVs")
    a = ap.parse_args(argv)
    base = params_at(BEFORE_REV)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if a.search:
        found = search(base, a.stages)
        pd.DataFrame(found["history"]).to_csv(RESULTS / "tune_defaults_search.csv", index=False)
        print(json.dumps({"shared": found["shared"], "agents": found["agents"]}, indent=1, sort_keys=True))
        if not a.no_confirm and not a.stages:
            conf = confirm(base, found)
            pd.DataFrame(conf["rows"]).to_csv(RESULTS / "tune_defaults_confirm.csv", index=False)
            choice = {"shared": conf["shared"], "agents": conf["agents"]}
            (RESULTS / "tune_defaults_choice.json").write_text(
                json.dumps(choice, indent=2, sort_keys=True) + "\n"
            )
            print(json.dumps(choice, indent=1, sort_keys=True))
    if a.final:
        final(base, a.force)
    if a.write:
        write_doc()


if __name__ == "__main__":
    main()
