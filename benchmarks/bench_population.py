"""Population training vs the same trainings one after another, on the S&P 500 env.

Same env as benchmarks/bench_training.py: the project's trading core over the real S&P 500
``model_input_train`` table (run ``kedro run --pipelines feature_engineering`` first) with
``conf/base/parameters_environment.yml``, CPU, 64 lanes per member, no evaluation.

(a) seeds: K=3 seeds of one market as one population (``train_<algo>``, fused env) against
    three populations of one in a row, same config and budget per member;
(b) folds x seeds: F date ranges of the table (F rolling windows) x 3 seeds as one population
    (members ordered fold by fold, so each fold's seeds share a fused env) against the F x 3
    populations of one in a row.

Each case warms both sides up with one short untimed run, then alternates sequential and
population runs ``--repeats`` times and reports the median wall times and the ratio
sequential / population (the speed-up). With ``--profile``, one population run of PPO is
split into env step / rollout / loss forward / backward / optimiser time (cProfile:
cumulative time of the functions of each phase).

Usage: ``python benchmarks/bench_population.py [--quick] [--repeats N] [--threads N] [--profile]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from reinforce_strategy_creator.agents import ALGORITHMS  # noqa: E402
from reinforce_strategy_creator.env import EnvConfig, MarketArrays, TradingVectorEnv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data/05_model_input/model_input_train.parquet"
LANES = 64
SEEDS = (0, 1, 2)

# the configs of bench_training.py (PPO: 64 steps x 64 lanes per update, 4 epochs x 4 minibatches)
CONFIGS = {
    "ppo": dict(num_steps=64, num_minibatches=4, update_epochs=4, hidden_sizes=[64, 64], activation="tanh"),
    "a2c": dict(num_steps=8, hidden_sizes=[64, 64], activation="tanh", log_every=50),
    "dqn": dict(
        learning_starts=1000,
        buffer_size=100_000,
        batch_size=128,
        train_frequency=1,
        gradient_steps=1,
        target_update_every=250,
        hidden_sizes=[128, 128],
        activation="relu",
        log_every=100,
    ),
}
STEPS = {"ppo": 64 * LANES * 8, "a2c": 8 * LANES * 80, "dqn": LANES * 320}  # per member


def load() -> tuple[pd.DataFrame, EnvConfig]:
    if not TRAIN.exists():
        sys.exit(f"{TRAIN} is missing: run `kedro run --pipelines feature_engineering` first.")
    env = yaml.safe_load((ROOT / "conf/base/parameters_environment.yml").read_text())["environment"]
    return pd.read_parquet(TRAIN), EnvConfig.from_params({**env, "device": "cpu"})


def folds(frame: pd.DataFrame, n: int) -> list[MarketArrays]:
    """``n`` rolling date ranges, each half of the table, starts evenly spaced."""
    size = len(frame) // 2
    step = (len(frame) - size) // max(n - 1, 1)
    return [MarketArrays.from_frame(frame.iloc[i * step : i * step + size]) for i in range(n)]


def sequential(algo: str, members, cfg: EnvConfig, params: dict) -> float:
    train = ALGORITHMS[algo][1]
    t = time.perf_counter()
    for market, seed in members:
        envs = TradingVectorEnv(market, cfg, num_envs=LANES, seed=seed, device="cpu")
        train([envs], params, seeds=[seed], device="cpu", progress=False)
    return time.perf_counter() - t


def population(algo: str, members, cfg: EnvConfig, params: dict) -> float:
    train = ALGORITHMS[algo][1]
    t = time.perf_counter()
    envs = [TradingVectorEnv(m, cfg, num_envs=LANES, seed=s, device="cpu") for m, s in members]
    train(envs, params, seeds=[s for _, s in members], device="cpu", progress=False)
    return time.perf_counter() - t


def compare(algo: str, members, cfg: EnvConfig, params: dict, repeats: int) -> tuple[float, float]:
    warm = [members[0]]  # one short untimed run of each side first: lazy initialisation
    small = {**params, "total_steps": min(params["total_steps"], 2 * LANES * params.get("num_steps", 16))}
    sequential(algo, warm, cfg, small)
    population(algo, warm * 2, cfg, small)
    seq, pop = [], []
    for _ in range(repeats):  # alternate, so that load from other users hits both sides alike
        seq.append(sequential(algo, members, cfg, params))
        pop.append(population(algo, members, cfg, params))
    return statistics.median(seq), statistics.median(pop)


def profile(markets, cfg: EnvConfig, steps: int) -> None:
    """Where the time of 3 PPO seeds goes, sequential vs population (cProfile, cumulative
    seconds per phase; phases nest, so they do not add up to the total)."""
    import cProfile
    import pstats

    members = [(markets[0], s) for s in SEEDS]
    params = {**CONFIGS["ppo"], "total_steps": steps}
    phases = {
        "env step (BatchedTradingCore.step)": ("core.py", ("step",)),
        "rollout (_collect_rollout / collect_rollout)": ("", ("_collect_rollout", "collect_rollout")),
        "minibatch epochs (_optimise)": ("", ("_optimise",)),
        "  loss forward (ppo_loss)": ("ppo.py", ("ppo_loss",)),
        "  backward (autograd engine)": ("", ("run_backward",)),
        "  tanh (forward passes)": ("", ("torch.tanh",)),
        "  matmuls (forward passes: linear / baddbmm)": ("", ("_nn.linear", "torch.baddbmm")),
    }
    print(f"\nprofile: PPO, {len(SEEDS)} seeds x {steps} steps, cumulative seconds (share of the run)")
    print(f"  {'phase':46s} {'sequential':>16s} {'population':>16s}")
    rows = {}
    for side, fn in (("sequential", sequential), ("population", population)):
        fn(
            "ppo",
            members[:1] * (1 if side == "sequential" else 2),
            cfg,
            {**params, "total_steps": 2 * 64 * LANES},
        )
        prof = cProfile.Profile()
        prof.enable()
        fn("ppo", members, cfg, params)
        prof.disable()
        st = pstats.Stats(prof).stats
        total = max(v[3] for v in st.values())
        rows[side] = {"total": (total, 1.0)}
        for label, (file, names) in phases.items():
            cum = sum(
                v[3]
                for (f, _, name), v in st.items()
                if f.endswith(file) and any(name == n or (name.startswith("<") and n in name) for n in names)
            )
            rows[side][label] = (cum, cum / total)
    for label in ["total", *phases]:
        cells = [
            f"{rows[s][label][0]:6.2f} s ({rows[s][label][1]:4.0%})" for s in ("sequential", "population")
        ]
        print(f"  {label:46s} {cells[0]:>16s} {cells[1]:>16s}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a quarter of the budgets")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--algos", default="ppo,a2c,dqn")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    frame, cfg = load()
    markets = folds(frame, args.folds)
    full = MarketArrays.from_frame(frame)
    scale = 4 if args.quick else 1
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{LANES} lanes per member, median of {args.repeats}"
    )
    obs_dim = TradingVectorEnv(full, cfg, num_envs=1, seed=0, device="cpu").core.obs_dim
    print(
        f"market: {full.n_bars} bars (folds: {args.folds} x {markets[0].n_bars} bars), obs_dim {obs_dim}, "
        f"episode_length {cfg.episode_length}"
    )
    print(
        f"{'case':34s} {'members':>7s} {'steps/member':>12s} {'sequential s':>12s} "
        f"{'population s':>12s} {'speed-up':>8s}"
    )
    for algo in [a for a in args.algos.split(",") if a]:  # --algos "" with --profile: profile only
        params = {**CONFIGS[algo], "total_steps": STEPS[algo] // scale}
        cases = {
            f"(a) {algo} seeds x{len(SEEDS)}, one market": [(full, s) for s in SEEDS],
            f"(b) {algo} {args.folds} folds x {len(SEEDS)} seeds": [(m, s) for m in markets for s in SEEDS],
        }
        for name, members in cases.items():
            seq, pop = compare(algo, members, cfg, params, args.repeats)
            print(
                f"{name:34s} {len(members):7d} {params['total_steps']:12,d} {seq:12.2f} {pop:12.2f} "
                f"{seq / pop:7.2f}x",
                flush=True,
            )
    if args.profile:
        profile(markets, cfg, STEPS["ppo"] // scale)


if __name__ == "__main__":
    main()
