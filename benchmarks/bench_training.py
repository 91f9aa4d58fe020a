"""Training throughput (env steps/s): our agents vs stable-baselines3, like for like.

Both sides train on the SAME environment: the project's trading env over the real S&P 500
``model_input_train`` table (run ``kedro run --pipelines data_ingestion,feature_engineering``
first) with ``conf/base/parameters_environment.yml`` (costs, window, rewards), device "cpu".

Like-for-like rows (the ones to quote), per algorithm and lane count (8, 64, 256 by default):

* ``ours``: ``train_ppo`` / ``train_a2c`` / ``train_dqn`` (a population of one) on
  ``TradingVectorEnv`` (B lanes, torch tensors end to end), no evaluation during the run;
* ``SB3``: ``PPO`` / ``A2C`` / ``DQN`` ``MlpPolicy`` on a ``DummyVecEnv`` of B ``TradingEnv``
  facades (one gymnasium account each), plain ``model.learn`` without callbacks;
* ``SB3, batched env``: the same SB3 model on ``TradingVectorEnv`` through a thin SB3
  ``VecEnv`` adapter (:class:`Sb3BatchedVecEnv`), which separates the env's share of the
  difference from the learner's.

Same lane count, same network (separate actor and critic MLPs, 64x64 tanh for PPO/A2C; a
plain 128x128 ReLU Q-network for DQN, no dueling head, no double-Q), same rollout length,
epochs, minibatch count, learning-rate schedule, loss terms (PPO: value clipping, entropy
bonus) and optimiser (PPO: Adam eps 1e-5; A2C: RMSprop alpha 0.99 eps 1e-5; DQN: Adam), the
same replay buffer, batch, train frequency, target-update interval and exploration schedule
for DQN, and ONE torch thread on every side (``--threads``).

Timing: each run is a forked child of the benchmark process (market and imports already
loaded); steps/s = env transitions collected / wall time of the learning call (env and model
construction excluded). Within a repetition the sides run back to back and their order
rotates from one repetition to the next, so load from other users hits all sides alike; the
ratio column is the median of the per-repetition ratios. The machine is shared, so only
ratios within one run mean much.

Context rows (NOT like for like, no ratio): our PPO at 1,024 lanes, and SB3 PPO with its own
defaults (one env, n_steps 2048, batch 64, 10 epochs) as its docs show it.

Usage: ``python benchmarks/bench_training.py [--quick] [--repeats N] [--lanes 8 64 256]
[--algos ppo a2c dqn] [--write]``; ``--write`` replaces the "## Training" section of
docs/benchmarks.md with the results.
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

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from reinforce_strategy_creator.agents import train_a2c, train_dqn, train_ppo  # noqa: E402
from reinforce_strategy_creator.env import EnvConfig, MarketArrays, TradingEnv, TradingVectorEnv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data/05_model_input/model_input_train.parquet"
DOC = ROOT / "docs/benchmarks.md"

# ---------------------------------------------------------------- the shared hyperparameters
LR_PPO, LR_A2C, LR_DQN = 2.5e-4, 7e-4, 1e-4
PPO = dict(
    num_steps=64,
    num_minibatches=4,
    update_epochs=4,
    learning_rate=LR_PPO,
    anneal_lr=True,
    gamma=0.99,
    gae_lambda=0.95,
    norm_adv=True,
    clip_coef=0.2,
    clip_vloss=True,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
    hidden_sizes=[64, 64],
    activation="tanh",
    log_every=1,
)
A2C = dict(
    num_steps=8,
    learning_rate=LR_A2C,
    optimizer="rmsprop",
    rms_alpha=0.99,
    eps=1e-5,
    anneal_lr=False,
    gamma=0.99,
    gae_lambda=1.0,
    norm_adv=False,
    ent_coef=0.0,
    vf_coef=0.5,
    max_grad_norm=0.5,
    hidden_sizes=[64, 64],
    activation="tanh",
    log_every=50,
)
DQN = dict(
    learning_rate=LR_DQN,
    buffer_size=100_000,
    batch_size=128,
    gamma=0.99,
    n_step=1,
    tau=1.0,
    target_update_every=250,  # gradient steps = vector steps (one gradient step per vector step)
    learning_starts=1000,
    train_frequency=1,
    gradient_steps=1,
    eps_start=1.0,
    eps_end=0.05,
    exploration_fraction=0.1,
    double=False,
    dueling=False,
    loss="huber",
    reward_scale=1.0,
    max_grad_norm=10.0,
    hidden_sizes=[128, 128],
    activation="relu",
    log_every=100,
)


def sb3_kwargs(algo: str, lanes: int) -> dict:
    """SB3 constructor arguments equal to ours above (``algo`` ends in ``-defaults``: SB3's own)."""
    tanh = dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh)
    if algo == "ppo-defaults":  # SB3's own PPO defaults (n_steps 2048, batch 64, 10 epochs), same network
        return dict(policy_kwargs=tanh)
    if algo == "ppo":
        return dict(
            n_steps=PPO["num_steps"],
            batch_size=PPO["num_steps"] * lanes // PPO["num_minibatches"],
            n_epochs=PPO["update_epochs"],
            learning_rate=lambda progress_remaining: LR_PPO * progress_remaining,  # linear anneal
            gamma=PPO["gamma"],
            gae_lambda=PPO["gae_lambda"],
            normalize_advantage=True,
            clip_range=PPO["clip_coef"],
            clip_range_vf=PPO["clip_coef"],
            ent_coef=PPO["ent_coef"],
            vf_coef=PPO["vf_coef"],
            max_grad_norm=PPO["max_grad_norm"],
            policy_kwargs=tanh,  # Adam eps 1e-5 is SB3's default for on-policy policies
        )
    if algo == "a2c":
        return dict(
            n_steps=A2C["num_steps"],
            learning_rate=LR_A2C,
            gamma=A2C["gamma"],
            gae_lambda=A2C["gae_lambda"],
            normalize_advantage=False,
            ent_coef=A2C["ent_coef"],
            vf_coef=A2C["vf_coef"],
            max_grad_norm=A2C["max_grad_norm"],
            use_rms_prop=True,  # alpha 0.99
            rms_prop_eps=A2C["eps"],
            policy_kwargs=tanh,
        )
    return dict(
        learning_rate=LR_DQN,
        buffer_size=DQN["buffer_size"],
        batch_size=DQN["batch_size"],
        gamma=DQN["gamma"],
        tau=DQN["tau"],
        # SB3 counts this in env transitions and updates every interval // n_envs vector steps
        target_update_interval=DQN["target_update_every"] * lanes,
        learning_starts=DQN["learning_starts"],
        train_freq=DQN["train_frequency"],
        gradient_steps=DQN["gradient_steps"],
        exploration_initial_eps=DQN["eps_start"],
        exploration_final_eps=DQN["eps_end"],
        exploration_fraction=DQN["exploration_fraction"],
        max_grad_norm=DQN["max_grad_norm"],
        policy_kwargs=dict(net_arch=[128, 128], activation_fn=torch.nn.ReLU),
    )


# ---------------------------------------------------------------- the sides
def load():
    if not TRAIN.exists():
        sys.exit(f"{TRAIN} is missing: run `kedro run --pipelines data_ingestion,feature_engineering` first.")
    env = yaml.safe_load((ROOT / "conf/base/parameters_environment.yml").read_text())["environment"]
    cfg = EnvConfig.from_params({**env, "device": "cpu"})
    return MarketArrays.from_frame(pd.read_parquet(TRAIN)), cfg


def ours(algo: str, market, cfg, lanes: int, steps: int) -> float:
    fn, params = {"ppo": (train_ppo, PPO), "a2c": (train_a2c, A2C), "dqn": (train_dqn, DQN)}[algo]
    envs = TradingVectorEnv(market, cfg, num_envs=lanes, seed=0, device="cpu")
    t = time.perf_counter()
    (res,) = fn([envs], {**params, "total_steps": steps}, seeds=[0], device="cpu", progress=False)
    return res.steps / (time.perf_counter() - t)


def _sb3_vec_env_class():
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv

    class Sb3BatchedVecEnv(VecEnv):
        """SB3's ``VecEnv`` API over ``TradingVectorEnv`` (numpy in/out, same-step auto-reset)."""

        def __init__(self, venv: TradingVectorEnv):
            self.venv = venv
            super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
            self._actions = None

        def reset(self):
            seed = self._seeds[0]
            obs, _ = self.venv.reset(seed=seed)
            self._reset_seeds()
            return obs.astype(np.float32, copy=False)

        def step_async(self, actions):
            self._actions = actions

        def step_wait(self):
            obs, reward, term, trunc, info = self.venv.step(self._actions)
            dones = term | trunc
            infos = [{} for _ in range(self.num_envs)]
            if dones.any():
                final = info["final_obs"]
                for i in np.flatnonzero(dones):
                    infos[i]["terminal_observation"] = final[i]
                    infos[i]["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
            return obs, reward.astype(np.float32, copy=False), dones, infos

        def close(self):
            pass

        def get_attr(self, attr_name, indices=None):
            if attr_name == "render_mode":
                return [None] * self.num_envs
            raise AttributeError(attr_name)

        def set_attr(self, attr_name, value, indices=None):
            raise AttributeError(attr_name)

        def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
            raise AttributeError(method_name)

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * self.num_envs

    return Sb3BatchedVecEnv


def sb3(algo: str, market, cfg, lanes: int, steps: int, batched: bool = False) -> float:
    import stable_baselines3 as sb
    from stable_baselines3.common.vec_env import DummyVecEnv

    if batched:
        venv = _sb3_vec_env_class()(TradingVectorEnv(market, cfg, num_envs=lanes, seed=0, device="cpu"))
    else:
        venv = DummyVecEnv([lambda i=i: TradingEnv(market, cfg, seed=i) for i in range(lanes)])
    cls = {"ppo": sb.PPO, "a2c": sb.A2C, "dqn": sb.DQN}[algo.split("-")[0]]
    model = cls("MlpPolicy", venv, seed=0, device="cpu", verbose=0, **sb3_kwargs(algo, lanes))
    t = time.perf_counter()
    model.learn(total_timesteps=steps)
    return model.num_timesteps / (time.perf_counter() - t)


def sb3_batched(algo: str, market, cfg, lanes: int, steps: int) -> float:
    return sb3(algo, market, cfg, lanes, steps, batched=True)


# ---------------------------------------------------------------- timing
CHILD = {"threads": 1}  # torch threads of each forked child (--threads)


def in_child(fn, *args) -> float:
    """Run ``fn(*args)`` in a forked child (a copy of this process, data and imports loaded)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        code = 0
        torch.set_num_threads(CHILD["threads"])
        try:
            os.write(w, repr(float(fn(*args))).encode())
        except BaseException:  # noqa: BLE001 - the parent reports the failure
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os.close(w)
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as fh:
        out = fh.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not out:
        sys.exit(f"benchmark child {fn.__name__}{args[:1] + args[3:]} failed (status {status})")
    return float(out)


def interleaved(sides: dict, repeats: int, args: tuple) -> dict[str, list[float]]:
    """``repeats`` repetitions; in each every side runs once, the order rotating per repetition."""
    names = list(sides)
    out: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(repeats):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            out[name].append(in_child(sides[name], *args))
    return out


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):,.0f} ({min(xs):,.0f} – {max(xs):,.0f})"


def ratio(a: list[float], b: list[float]) -> str:
    rs = [x / y for x, y in zip(a, b, strict=True)]
    return f"{statistics.median(rs):.2f}x ({min(rs):.2f} – {max(rs):.2f})"


def budget(algo: str, lanes: int, k: int) -> int:
    """Env steps per run: whole rollouts, at least a few updates, a few seconds per run."""
    if algo == "ppo":
        return max(4 * 64 * lanes, 32_768) // k
    if algo == "a2c":
        return max(64 * 8 * lanes, 32_768) // k
    return {8: 8_192, 64: 32_768}.get(lanes, 65_536) // k  # dqn: 1 gradient step per vector step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1/8 of the step budgets (smoke test)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lanes", type=int, nargs="+", default=[8, 64, 256])
    ap.add_argument("--algos", nargs="+", default=["ppo", "a2c", "dqn"], choices=["ppo", "a2c", "dqn"])
    ap.add_argument("--no-context", action="store_true", help="skip the context (unlike set-ups) rows")
    ap.add_argument("--write", action="store_true", help="write the Training section of docs/benchmarks.md")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads on every side (default 1)")
    a = ap.parse_args()
    # The parent stays single-threaded: an OpenMP pool started before fork() is not fork-safe,
    # so each forked child sets the thread count itself (in_child).
    torch.set_num_threads(1)
    CHILD["threads"] = a.threads
    market, cfg = load()
    k = 8 if a.quick else 1
    # warm-up: lazy imports and first-call allocations are not throughput
    ours("ppo", market, cfg, 8, 1024)
    sb3("ppo", market, cfg, 2, 512)
    sb3_batched("ppo", market, cfg, 2, 512)
    load0, t0 = os.getloadavg(), time.time()
    sides = {"ours": ours, "sb3": sb3, "sb3_batched": sb3_batched}
    rows = []
    for algo in a.algos:
        for lanes in a.lanes:
            steps = budget(algo, lanes, k)
            res = interleaved(sides, a.repeats, (algo, market, cfg, lanes, steps))
            rows.append((algo, lanes, steps, res))
            print(
                f"{algo} B={lanes} steps={steps}: ours {fmt(res['ours'])} | SB3 {fmt(res['sb3'])} | "
                f"ours/SB3 {ratio(res['ours'], res['sb3'])} | SB3 batched env {fmt(res['sb3_batched'])}",
                flush=True,
            )
    context = []
    if not a.no_context:
        ctx = interleaved(
            {
                "ours": lambda *x: ours("ppo", *x[1:3], 1024, 524_288 // k),
                "sb3": lambda *x: sb3("ppo-defaults", *x[1:3], 1, 8_192 // k),
            },
            a.repeats,
            ("ppo", market, cfg),
        )
        context = [
            (f"ours: PPO, 1,024 lanes, otherwise as above, {524_288 // k:,} steps", ctx["ours"]),
            (
                "SB3: PPO with its own defaults (1 env, n_steps 2048, batch 64, 10 epochs, no value clip), "
                f"64x64 tanh, {8_192 // k:,} steps",
                ctx["sb3"],
            ),
        ]
        for name, xs in context:
            print(f"context: {name}: {fmt(xs)}", flush=True)
    load1, minutes = os.getloadavg(), (time.time() - t0) / 60
    import stable_baselines3

    probe = TradingVectorEnv(market, cfg, num_envs=1, seed=0, device="cpu")
    setup = (
        f"window {cfg.window}, {len(market.feature_names)} features, "
        f"obs_dim {int(probe.single_observation_space.shape[0])}, episodes of {cfg.episode_length} bars"
    )
    text = render(a, rows, context, load0, load1, minutes, stable_baselines3.__version__, setup)
    print(text)
    if a.write:
        write_section(text)
        print(f"updated the Training section of {DOC}")


def render(a, rows, context, load0, load1, minutes, sb3_version, setup: str) -> str:
    lines = [
        "## Training: ours vs stable-baselines3, like for like",
        "",
        f"`python benchmarks/bench_training.py --write` (part of `make bench`; {minutes:.0f} min). "
        "Both sides train on the same env: the project's trading env over the S&P 500 `model_input_train` "
        f"table (default `parameters_environment.yml`: {setup}). "
        "Ours runs on `TradingVectorEnv` (torch tensors end to end); SB3 runs plain `model.learn` "
        "on a `DummyVecEnv` of one-account `TradingEnv` facades (what `backend: sb3` uses). Same number of "
        "lanes (SB3 `n_envs`), same network (separate actor and critic MLPs 64x64 tanh for PPO/A2C; a plain "
        "128x128 ReLU Q-network for DQN, no dueling head, no double-Q), same rollout length, epochs, "
        "minibatch count, learning-rate schedule, loss terms and optimiser; DQN: same replay buffer "
        "(100,000), batch (128), one gradient step per vector step, target copy every 250 of them, "
        "learning starts after 1,000 transitions, same exploration schedule. "
        f"CPU, {a.threads} torch thread(s) on every side; no validation during the runs; steps/s = env "
        "transitions / wall time of the learning call. Each figure is the median (min – max) of "
        f"{a.repeats} repetitions; in each repetition the sides run back to back in a rotating order "
        "(each run a forked child of the benchmark process), and the ratio is the median of the "
        "per-repetition ratios. The last two columns run the same SB3 model on our batched "
        "`TradingVectorEnv` through a thin SB3 `VecEnv` adapter, to show how much of the difference is "
        "the env and how much the learner.",
        "",
        "**Noise caveat:** the machine has 2 CPU cores shared with other developers working at the same "
        "time, so absolute figures move by tens of percent between runs; the ratios, taken within one "
        "repetition, are steadier but still noisy. Compare only figures from the same run.",
        "",
        "| run | |",
        "| --- | --- |",
        f"| date | {time.strftime('%Y-%m-%d %H:%M %Z')} |",
        f"| cpu / cores | {platform.processor() or platform.machine()} / {os.cpu_count()} |",
        f"| python / torch / stable-baselines3 | {platform.python_version()} / {torch.__version__} / "
        f"{sb3_version} |",
        f"| load average (1/5/15 min) at start | {' / '.join(f'{x:.2f}' for x in load0)} |",
        f"| load average (1/5/15 min) at end | {' / '.join(f'{x:.2f}' for x in load1)} |",
        "",
        "| algorithm | lanes (both) | env steps per run | ours: env steps/s (min – max) | "
        "SB3: env steps/s (min – max) | ours ÷ SB3 (min – max) | SB3 on our batched env: env steps/s | "
        "ours ÷ that |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for algo, lanes, steps, res in rows:
        lines.append(
            f"| {algo.upper()} | {lanes} | {steps:,} | {fmt(res['ours'])} | {fmt(res['sb3'])} | "
            f"**{ratio(res['ours'], res['sb3'])}** | {fmt(res['sb3_batched'])} | "
            f"{ratio(res['ours'], res['sb3_batched'])} |"
        )
    if context:
        lines += [
            "",
            "Context only, NOT like for like (different lane counts and hyperparameters, so no ratio is "
            "given; measured in the same run, interleaved the same way): what each side reaches in a "
            "set-up the other does not use.",
            "",
            "| set-up | env steps/s (min – max) |",
            "| --- | ---: |",
            *[f"| {name} | {fmt(xs)} |" for name, xs in context],
        ]
    lines.append("")
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace the "## Training" section; a doc without one gets it before its first section."""
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    start = doc.find("\n## Training")
    if start >= 0:
        nxt = doc.find("\n## ", start + 1)
        doc = doc[: start + 1] + text + (doc[nxt:] if nxt >= 0 else "")
    else:
        first = doc.find("\n## ")
        doc = doc[: first + 1] + text + doc[first:] if first >= 0 else doc.rstrip("\n") + "\n\n" + text
    DOC.write_text(doc)


if __name__ == "__main__":
    main()
