#!/usr/bin/env python3
"""sac_torch.py: the SAC update of lib/sac.c in PyTorch, as the comparison peer of bench_sac.

Same networks (actor obs -> h -> h -> 2*act, twin critics obs+act -> h -> h -> 1, ReLU, PyTorch's
default init), same batch, same algorithm steps as frl_sac_update: one actor forward on
[obs; next_obs], tanh-squashed Gaussian with log_std clamped to [-20, 2] and the stable
log-prob correction, soft clipped double-Q targets from the Polyak target critics, one forward
per critic on [(obs, action); (obs, a ~ pi)], importance-weighted MSE critic losses, actor loss
alpha log pi - min Q, temperature loss on log alpha, all three taken at the parameters before
the step, then Adam on critics, actor and log alpha and Polyak averaging of the targets.

Prints "updates/s <value>" and, for the policy net obs -> h -> h -> 2*act at batch 1,
"infer_p50_us <value>" and "infer_p99_us <value>" (one stochastic action per call, as
frl_sac_act), plus a line describing the setup. Run with --threads N to match the C side.
"""
import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
LOG2 = math.log(2.0)


def mlp(sizes):
    layers = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k + 2 < len(sizes):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Sac:
    def __init__(self, obs_dim, act_dim, hidden, lr=3e-4, tau=0.005):
        self.A = act_dim
        self.tau = tau
        self.actor = mlp([obs_dim, hidden, hidden, 2 * act_dim])
        self.critics = [mlp([obs_dim + act_dim, hidden, hidden, 1]) for _ in range(2)]
        self.targets = [mlp([obs_dim + act_dim, hidden, hidden, 1]) for _ in range(2)]
        for t, c in zip(self.targets, self.critics):
            t.load_state_dict(c.state_dict())
            for p in t.parameters():
                p.requires_grad_(False)
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.actor_params = list(self.actor.parameters())
        self.critic_params = [p for c in self.critics for p in c.parameters()]
        self.target_params = [p for t in self.targets for p in t.parameters()]
        kw = dict(lr=lr, foreach=True)
        self.opt_actor = torch.optim.Adam(self.actor_params, **kw)
        self.opt_critic = torch.optim.Adam(self.critic_params, **kw)
        self.opt_alpha = torch.optim.Adam([self.log_alpha], **kw)

    def update(self, obs, act, rew, disc, next_obs, weight):
        B, A = obs.shape[0], self.A
        head = self.actor(torch.cat([obs, next_obs]))
        mean, raw = head[:, :A], head[:, A:]
        log_std = raw.clamp(-20.0, 2.0)
        eps = torch.randn_like(mean)
        u = mean + log_std.exp() * eps
        a = torch.tanh(u)
        logp = (-0.5 * eps * eps - log_std - LOG_SQRT_2PI
                - 2.0 * (LOG2 - u - F.softplus(-2.0 * u))).sum(1)
        a_pi, logp_pi = a[:B], logp[:B]
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            tin = torch.cat([next_obs, a[B:]], 1)
            q_next = torch.min(self.targets[0](tin), self.targets[1](tin)).squeeze(1)
            soft = rew + disc * (q_next - alpha * logp[B:])
            y = torch.where(disc != 0, soft, rew)
        cin = torch.cat([torch.cat([obs, act], 1), torch.cat([obs, a_pi], 1)])
        q1 = self.critics[0](cin).squeeze(1)
        q2 = self.critics[1](cin).squeeze(1)
        critic_loss = (weight * (q1[:B] - y) ** 2).mean() + (weight * (q2[:B] - y) ** 2).mean()
        actor_loss = (alpha * logp_pi - torch.min(q1[B:], q2[B:])).mean()
        alpha_loss = -(self.log_alpha * (logp_pi.detach() + self.target_entropy)).mean()
        # Critic parameters learn from the critic losses only, the actor from its loss only.
        g_critic = torch.autograd.grad(critic_loss, self.critic_params, retain_graph=True)
        g_actor = torch.autograd.grad(actor_loss, self.actor_params)
        g_alpha = torch.autograd.grad(alpha_loss, [self.log_alpha])
        for p, g in zip(self.critic_params, g_critic):
            p.grad = g
        for p, g in zip(self.actor_params, g_actor):
            p.grad = g
        self.log_alpha.grad = g_alpha[0]
        self.opt_critic.step()
        self.opt_actor.step()
        self.opt_alpha.step()
        with torch.no_grad():
            torch._foreach_mul_(self.target_params, 1.0 - self.tau)
            torch._foreach_add_(self.target_params, self.critic_params, alpha=self.tau)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--obs", type=int, default=17)
    ap.add_argument("--act", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=8.0, help="update timing budget")
    ap.add_argument("--infer", type=int, default=20000, help="batch-1 inference calls")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, D, A = args.batch, args.obs, args.act
    sac = Sac(D, A, args.hidden)
    batches = []
    for _ in range(8):
        batches.append((torch.randn(B, D), torch.rand(B, A) * 2 - 1, torch.ones(B),
                        torch.full((B,), 0.99), torch.randn(B, D), torch.rand(B) * 0.8 + 0.2))
    for k in range(30):
        sac.update(*batches[k % 8])
    # Trials of ~0.25 s; the median over them, as the C side reports.
    rates, n = [], 0
    t_end = time.perf_counter() + args.seconds
    while time.perf_counter() < t_end or len(rates) < 3:
        t0, reps = time.perf_counter(), 0
        while True:
            sac.update(*batches[n % 8])
            n += 1
            reps += 1
            dt = time.perf_counter() - t0
            if dt >= 0.25:
                break
        rates.append(reps / dt)
    rates.sort()
    print(f"setup torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{len(rates)} trials")
    print(f"updates/s {rates[len(rates) // 2]:.2f}")
    print(f"updates/s_best {rates[-1]:.2f}")

    obs = torch.randn(D)
    lat = []
    with torch.inference_mode():
        for k in range(args.infer + 2000):
            obs[k % D] += 1e-3
            t0 = time.perf_counter_ns()
            head = sac.actor(obs.unsqueeze(0))[0]
            std = head[A:].clamp(-20.0, 2.0).exp()
            action = torch.tanh(head[:A] + std * torch.randn(A))
            t1 = time.perf_counter_ns()
            if k >= 2000:
                lat.append(t1 - t0)
    del action
    lat.sort()
    print(f"infer_p50_us {lat[len(lat) // 2] / 1000:.2f}")
    print(f"infer_p99_us {lat[len(lat) * 99 // 100] / 1000:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
