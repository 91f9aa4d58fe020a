"""Shared machinery for the agents: env adapter, seeding, configs, run bookkeeping.

What lives here and why
-----------------------
* :class:`TensorVecEnv` gives every algorithm ONE tensor interface over any gymnasium
  ``VectorEnv``. Gymnasium 1.x vector envs differ in how they auto-reset
  (``envs.metadata["autoreset_mode"]``):

  - ``NEXT_STEP`` (the default): the step that ends an episode returns the true last
    observation; the *following* step ignores the action, resets the lane and returns the
    reset observation with reward 0. That following transition is not a real one and
    must never be trained on -> the adapter marks it ``valid=False``.
  - ``SAME_STEP``: the ending step already returns the reset observation; the true last
    observation is in ``info["final_obs"]``.
  - ``DISABLED``: the adapter resets finished lanes itself with ``reset_mask``.

  Whatever the mode, :meth:`TensorVecEnv.step` returns a :class:`Step` with the
  observation to act on next (``obs``), the true successor of this transition
  (``next_obs``, used for bootstrapping on truncation), ``terminated`` / ``truncated``
  and ``valid``. Algorithms therefore bootstrap on truncation and never on termination,
  and ignore invalid transitions, without knowing the env's convention.

  Envs that expose ``reset_tensors`` / ``step_tensors`` (the project's batched trading
  env) are used without numpy round trips; their core auto-resets lanes in the same step
  and hands back the true last observation in ``info["final_obs"]`` (see
  ``env/`` and docs/contracts.md).

* :class:`AgentConfig` -- dataclass base with ``from_params`` that rejects unknown keys
  and out-of-range values, naming the full dotted parameter.
* :class:`RunTracker` -- episode-return bookkeeping, history rows, periodic evaluation
  with best-weights tracking and patience-based early stopping, and the tqdm bar; the
  same for all algorithms so their files stay short and readable.

Hand-written because SB3's equivalents are tied to its own classes and numpy buffers.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import InputError
from .config import AgentConfigError


class AgentEnvError(InputError):
    """The environment handed to an agent is not usable (e.g. non-discrete actions)."""


class TrainingDivergedError(InputError):
    """A loss became NaN or infinite: training stops, nothing is returned as though it were good.

    ``agent``, ``seed`` and ``update`` say where; the message says what to try.
    """

    def __init__(self, agent: str, seed: int, update: int, what: str = "loss", value: float = math.nan):
        self.agent, self.seed, self.update, self.what, self.value = agent, int(seed), int(update), what, value
        super().__init__(
            f"training.{agent} diverged: {what} is {value} at update {update} (seed {seed}); no policy is saved. "
            f"Lower training.{agent}.learning_rate, check max_grad_norm / reward_scale, or check the features "
            "for extreme values"
        )


def check_finite(value: float, agent: str, seed: int, update: int, what: str = "loss") -> None:
    """Raise :class:`TrainingDivergedError` unless ``value`` (a python float) is finite.

    Called once per update on a value the loop already syncs for logging, so it costs nothing.
    """
    if not math.isfinite(value):
        raise TrainingDivergedError(agent, seed, update, what, value)


# --------------------------------------------------------------------------- device/seed
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise AgentConfigError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AgentConfigError(f"device={device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a private torch generator for sampling.

    Network initialisation uses torch's global RNG (seeded here); action sampling,
    exploration and minibatch shuffles use the returned generator so that they do not
    depend on what else touched the global RNG.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise AgentConfigError(f"seed must be an int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % (2**32))
    torch.manual_seed(int(seed))
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed) + 1)
    return gen


class deterministic_torch:
    """Context manager: ``torch.use_deterministic_algorithms(True)`` on CPU, restored after."""

    def __init__(self, device: torch.device):
        self.enable = device.type == "cpu"

    def __enter__(self):
        self.prev = torch.are_deterministic_algorithms_enabled()
        if self.enable:
            torch.use_deterministic_algorithms(True)
        return self

    def __exit__(self, *exc):
        torch.use_deterministic_algorithms(self.prev)
        return False


# --------------------------------------------------------------------------- env adapter
@dataclass
class Step:
    """One vector step, as torch tensors on the agent's device (B = number of lanes)."""

    obs: torch.Tensor  # (B, obs_dim) observation to act on next
    reward: torch.Tensor  # (B,) float32
    terminated: torch.Tensor  # (B,) bool: true end, do not bootstrap
    truncated: torch.Tensor  # (B,) bool: time limit, bootstrap from next_obs
    next_obs: torch.Tensor  # (B, obs_dim) true successor of this transition
    valid: torch.Tensor  # (B,) bool: False for NEXT_STEP reset transitions

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated


class TensorVecEnv:
    """One tensor interface over a gymnasium ``VectorEnv`` (numpy or tensor-native)."""

    def __init__(self, envs: Any, device: torch.device):
        self.envs = envs
        self.device = device
        self.num_envs = int(envs.num_envs)
        act_space = getattr(envs, "single_action_space", None)
        n = getattr(act_space, "n", None)
        if n is None:
            raise AgentEnvError(
                f"agents need a Discrete action space, got {act_space!r}; "
                "configure the env with discrete target positions (continuous=False)"
            )
        self.n_actions = int(n)
        obs_space = envs.single_observation_space
        self.obs_dim = int(np.prod(obs_space.shape))
        self.tensor_native = hasattr(envs, "step_tensors") and hasattr(envs, "reset_tensors")
        mode = getattr(envs, "metadata", {}).get("autoreset_mode", None)
        self.mode = "next_step"
        if self.tensor_native:
            self.mode = "tensor"
        elif mode is not None:
            self.mode = str(getattr(mode, "value", mode)).lower().replace("_", "")
            self.mode = {"nextstep": "next_step", "samestep": "same_step", "disabled": "disabled"}.get(
                self.mode, "next_step"
            )
        self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=device)

    # -- conversion helpers
    def _obs(self, obs: Any) -> torch.Tensor:
        if isinstance(obs, torch.Tensor):
            t = obs.to(self.device, torch.float32)
        else:
            t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        return t.reshape(self.num_envs, self.obs_dim)

    def _vec(self, x: Any, dtype: torch.dtype) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return x.to(self.device, dtype).reshape(self.num_envs)
        return torch.as_tensor(np.asarray(x), device=self.device).to(dtype).reshape(self.num_envs)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self._prev_done.zero_()
        if self.tensor_native:
            out = self.envs.reset_tensors(seed=seed)
        else:
            out = self.envs.reset(seed=seed)
        obs = out[0] if isinstance(out, tuple) else out
        return self._obs(obs)

    def step(self, actions: torch.Tensor) -> Step:
        if self.tensor_native:
            obs, rew, term, trunc, info = self.envs.step_tensors(actions.to(self.device))
        else:
            obs, rew, term, trunc, info = self.envs.step(actions.detach().cpu().numpy())
        obs_t = self._obs(obs)
        term_t = self._vec(term, torch.bool)
        trunc_t = self._vec(trunc, torch.bool)
        rew_t = self._vec(rew, torch.float32)
        done = term_t | trunc_t
        next_obs = obs_t
        valid = torch.ones_like(done)
        if self.mode == "next_step":
            valid = ~self._prev_done
            self._prev_done = done & valid
            # an invalid (reset) step never reports done in gymnasium; be safe anyway
            term_t = term_t & valid
            trunc_t = trunc_t & valid
        elif self.mode in ("same_step", "tensor"):
            if bool(done.any()):
                final = info.get("final_obs", None) if isinstance(info, Mapping) else None
                if final is None:
                    raise AgentEnvError(
                        "env auto-resets in the same step but gives no info['final_obs']; "
                        "agents cannot bootstrap truncated episodes correctly"
                    )
                next_obs = obs_t.clone()
                if isinstance(final, torch.Tensor):
                    f = final.to(self.device, torch.float32).reshape(self.num_envs, self.obs_dim)
                    next_obs[done] = f[done]
                else:
                    for i in np.flatnonzero(done.cpu().numpy()):
                        next_obs[i] = torch.as_tensor(
                            np.asarray(final[i], dtype=np.float32).reshape(-1), device=self.device
                        )
        elif self.mode == "disabled":
            if bool(done.any()):
                mask = done.cpu().numpy()
                new_obs, _ = self.envs.reset(options={"reset_mask": mask})
                obs_t = obs_t.clone()
                new_t = self._obs(new_obs)
                obs_t[done] = new_t[done]
        return Step(obs_t, rew_t, term_t, trunc_t, next_obs, valid)


# --------------------------------------------------------------------------- results
@dataclass
class TrainResult:
    """What every ``train_<algo>`` returns.

    ``policy`` carries the best-scoring weights when ``eval_fn`` was given (else the final
    weights); ``best_score`` is NaN when no evaluation ran; ``steps`` counts env
    transitions (all lanes) actually collected.
    """

    policy: nn.Module
    history: pd.DataFrame
    best_score: float
    steps: int


HISTORY_COLUMNS = [
    "step",
    "episode_return",
    "policy_loss",
    "value_loss",
    "q_loss",
    "entropy",
    "eval_score",
    "steps_per_s",
]


PROGRESS_LOG_INTERVAL_S = 15.0  # at most one progress line this often when not on a terminal


class RunTracker:
    """Episode returns, history rows, evaluation/early stopping and the progress bar.

    The progress goes to ``stream`` (default ``sys.stderr``): on a terminal a live tqdm bar;
    anywhere else (a log file, CI) one plain line at most every ``PROGRESS_LOG_INTERVAL_S``
    seconds plus a final line, so a long run does not flood its log.
    """

    def __init__(
        self,
        policy: nn.Module,
        num_envs: int,
        device: torch.device,
        *,
        total_steps: int,
        eval_fn: Callable[[nn.Module], float] | None,
        eval_every: int,
        patience: int | None,
        progress: bool,
        log_every: int,
        desc: str,
        stream: Any = None,
    ):
        if eval_every is None or int(eval_every) < 1:
            raise AgentConfigError(f"eval_every must be a positive int, got {eval_every!r}")
        if patience is not None and int(patience) < 1:
            raise AgentConfigError(f"patience must be a positive int or None, got {patience!r}")
        self.policy = policy
        self.eval_fn = eval_fn
        self.eval_every = int(eval_every)
        self.patience = None if patience is None else int(patience)
        self.log_every = max(1, int(log_every))
        self.ep_ret = torch.zeros(num_envs, dtype=torch.float64, device=device)
        self.finished_sum = 0.0
        self.finished_n = 0
        self.rows: list[dict[str, float]] = []
        self.best_score = -math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_evals = 0
        self.last_eval = math.nan
        self.stop = False
        self.steps = 0
        self._t0 = time.perf_counter()
        self._last_t = self._t0
        self._last_steps = 0
        self._pending: dict[str, list[float]] = {}
        self.bar = None
        self._log_stream = None  # set when the progress goes to a non-terminal stream
        if progress:
            stream = sys.stderr if stream is None else stream
            isatty = getattr(stream, "isatty", None)
            if callable(isatty) and isatty():
                from tqdm.auto import tqdm

                # a terminal: a live bar, redrawn in place
                self.bar = tqdm(total=total_steps, desc=desc, unit="step", dynamic_ncols=True,
                                mininterval=0.2, file=stream)
            else:
                # a log file (CI, nohup, a pipe): every redraw would be a new line there, so one
                # plain line at most every PROGRESS_LOG_INTERVAL_S seconds, and one at the end
                self._log_stream = stream
                self._log_desc, self._log_total = desc, int(total_steps)
                self._log_postfix = ""
                self._log_last = self._t0
                self._log_written_steps = -1

    def on_step(self, step: Step) -> None:
        """Accumulate rewards of valid transitions; record returns of finished episodes."""
        r = torch.where(step.valid, step.reward.to(torch.float64), torch.zeros_like(self.ep_ret))
        self.ep_ret += r
        done = step.done & step.valid
        if bool(done.any()):
            self.finished_sum += float(self.ep_ret[done].sum())
            self.finished_n += int(done.sum())
            self.ep_ret[done] = 0.0
        self.steps += step.reward.numel()

    def add_metrics(self, **metrics: float) -> None:
        for k, v in metrics.items():
            self._pending.setdefault(k, []).append(float(v))

    def end_update(self, update: int, last: bool = False) -> None:
        """Call after each update; evaluates / logs / updates the bar as due."""
        evaluated = False
        score = math.nan
        if self.eval_fn is not None and (update % self.eval_every == 0 or last):
            was_training = self.policy.training
            self.policy.eval()
            with torch.no_grad():
                score = float(self.eval_fn(self.policy))
            self.policy.train(was_training)
            evaluated = True
            self.last_eval = score
            if math.isfinite(score) and score > self.best_score:
                self.best_score = score
                self.best_state = {k: v.detach().clone() for k, v in self.policy.state_dict().items()}
                self.bad_evals = 0
            else:
                self.bad_evals += 1
                if self.patience is not None and self.bad_evals >= self.patience:
                    self.stop = True
        if update % self.log_every == 0 or evaluated or last or self.stop:
            now = time.perf_counter()
            sps = (self.steps - self._last_steps) / max(now - self._last_t, 1e-9)
            self._last_t, self._last_steps = now, self.steps
            row = {c: math.nan for c in HISTORY_COLUMNS}
            row["step"] = self.steps
            row["episode_return"] = self.finished_sum / self.finished_n if self.finished_n else math.nan
            self.finished_sum, self.finished_n = 0.0, 0
            for k, vals in self._pending.items():
                row[k] = float(np.mean(vals))
            self._pending = {}
            row["eval_score"] = score
            row["steps_per_s"] = sps
            self.rows.append(row)
            postfix = {"sps": f"{sps:,.0f}", "ret": f"{row['episode_return']:.3g}",
                       "eval": f"{self.last_eval:.4g}"}
            if self.bar is not None:
                self.bar.set_postfix(postfix, refresh=False)
            self._log_postfix = ", ".join(f"{k}={v}" for k, v in postfix.items())
        if self.bar is not None:
            self.bar.n = min(self.steps, self.bar.total)
            self.bar.refresh()
        elif self._log_stream is not None and time.perf_counter() - self._log_last >= PROGRESS_LOG_INTERVAL_S:
            self._write_progress_line()

    def _write_progress_line(self) -> None:
        """One plain progress line (no carriage return) on the non-terminal stream."""
        from tqdm import tqdm

        now = time.perf_counter()
        self._log_last, self._log_written_steps = now, self.steps
        line = tqdm.format_meter(min(self.steps, self._log_total), self._log_total, now - self._t0,
                                 prefix=self._log_desc, unit="step", ascii=True,
                                 postfix=self._log_postfix or None)
        self._log_stream.write(line + "\n")
        self._log_stream.flush()

    def finish(self) -> TrainResult:
        if self.bar is not None:
            self.bar.close()
        elif self._log_stream is not None:
            if self._log_written_steps != self.steps:
                self._write_progress_line()  # the final line (unless the last one already was)
            self._log_stream = None
        if self.best_state is not None:
            self.policy.load_state_dict(self.best_state)
        self.policy.eval()
        history = pd.DataFrame(self.rows, columns=HISTORY_COLUMNS)
        history["step"] = history["step"].astype("int64")
        best = self.best_score if self.best_state is not None else math.nan
        return TrainResult(policy=self.policy, history=history, best_score=best, steps=self.steps)


__all__ = [
    "TrainingDivergedError",
    "AgentConfigError",
    "AgentEnvError",
    "RunTracker",
    "Step",
    "TensorVecEnv",
    "TrainResult",
    "deterministic_torch",
    "field",
    "resolve_device",
    "seed_everything",
]


@torch.no_grad()
def evaluate_episodes(envs: Any, policy: nn.Module, *, seed: int, deterministic: bool = True) -> np.ndarray:
    """Return of the FIRST episode of every lane of ``envs`` under ``policy`` (one per lane).

    Use a vector env with as many lanes as episodes wanted; lanes that finish keep being
    stepped (their later episodes are ignored) until all lanes have finished one.
    """
    dev = next(policy.parameters()).device
    env = TensorVecEnv(envs, dev)
    obs = env.reset(seed=seed)
    total = torch.zeros(env.num_envs, dtype=torch.float64, device=dev)
    finished = torch.zeros(env.num_envs, dtype=torch.bool, device=dev)
    while not bool(finished.all()):
        step = env.step(policy.act(obs, deterministic=deterministic))
        live = step.valid & ~finished
        total += torch.where(live, step.reward.double(), torch.zeros_like(total))
        finished |= step.done & step.valid
        obs = step.obs
    return total.cpu().numpy()
