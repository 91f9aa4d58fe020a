"""Training throughput (env steps/s) of our PPO vs stable-baselines3 PPO on CartPole-v1.

Same env (8 sync lanes), same rollout size (8 x 128), same epochs/minibatches, same network
(64x64 tanh), CPU, one torch thread. Usage: ``python benchmarks/bench_agents.py [steps]``.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402

from reinforce_strategy_creator.agents import train_ppo  # noqa: E402


def ours(steps: int) -> float:
    envs = gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync")
    t = time.perf_counter()
    (res,) = train_ppo(
        [envs],
        {"total_steps": steps, "num_steps": 128, "num_minibatches": 4, "update_epochs": 4},
        seeds=[0],
        device="cpu",
        progress=False,
    )
    return res.steps / (time.perf_counter() - t)


def sb3(steps: int) -> float:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=256, n_epochs=4, seed=0, device="cpu", verbose=0)
    t = time.perf_counter()
    model.learn(total_timesteps=steps)
    return steps / (time.perf_counter() - t)


if __name__ == "__main__":
    torch.set_num_threads(1)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    a = ours(n)
    b = sb3(n)
    print(
        f"PPO CartPole-v1, {n} steps, CPU 1 thread: ours {a:,.0f} steps/s, SB3 {b:,.0f} steps/s, ratio "
        f"{a / b:.2f}x"
    )
