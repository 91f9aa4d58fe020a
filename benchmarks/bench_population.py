"""Population training vs the same trainings one after another, on the S&P 500 env.

Same env as benchmarks/bench_training.py: the project's trading core over the real S&P 500
``model_input_train`` table (run ``kedro run --pipelines feature_engineering`` first) with
``conf/base/parameters_environment.yml``, CPU, 64 lanes per member, no evaluation.

(a) seeds: K=3 seeds of one market as one population (``train_<algo>_population``, fused
    env) against three ``train_<algo>`` calls in a row, same config and budget per member;
(b) folds x seeds: F date ranges of the table (F rolling windows) x 3 seeds as one population
    (members ordered fold by fold, so each fold's seeds share a fused env) against the F x 3
    single trainings in a row.

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

from reinforce_strategy_creator.agents import ALGORITHMS, POPULATION_ALGORITHMS  # noqa: E402
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
        train(envs, params, seed=seed, device="cpu", progress=False)
    return time.perf_counter() - t


def population(algo: str, members, cfg: EnvConfig, params: dict) -> float:
    train = POPULATION_ALGORITHMS[algo][1]
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
    """Where one PPO population run's time goes (cProfile, own time by phase)."""
    import cProfile
    import pstats

    from reinforce_strategy_creator.agents.population import StackedAdam

    members = [(markets[0], s) for s in SEEDS]
    prof = cProfile.Profile()
    prof.enable()
    population("ppo", members, cfg, {**CONFIGS["ppo"], "total_steps": steps})
    prof.disable()
    st = pstats.Stats(prof)
    phases = {
        "env step (core.step)": ("core.py", "step"),
        "rollout forward + sampling (collect_rollout)": ("population.py", "collect_rollout"),
        "minibatch epochs (_optimise, all)": ("ppo_population.py", "_optimise"),
        "  loss forward (ppo_loss)": ("ppo.py", "ppo_loss"),
        "  optimiser (StackedAdam.step)": ("population.py", StackedAdam.step.__code__.co_firstlineno),
        "  gradient clipping": ("population.py", "clip_grad_norm_per_member"),
    }
    total = max(v[3] for v in st.stats.values())
    print(f"\nprofile: PPO population of {len(SEEDS)}, {steps} steps per member, {total:.2f} s")
    for label, (file, fn) in phases.items():
        cum = sum(v[3] for (f, line, name), v in st.stats.items() if f.endswith(file) and fn in (name, line))
        print(f"  {label:48s} {cum:6.2f} s  {cum / total:5.0%}")
    backward = sum(v[3] for (f, _, name), v in st.stats.items() if "run_backward" in name)
    print(f"  {'  backward (autograd engine)':48s} {backward:6.2f} s  {backward / total:5.0%}")


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
    for algo in args.algos.split(","):
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
