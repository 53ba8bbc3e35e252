#!/usr/bin/env python3
"""dqn_ref.py: float64 numpy reference for one DQN update (tests/test_dqn.c).

Reads the network, batch and hyperparameters the C test wrote (little-endian raw file, layout
below), computes Q(obs), the double-DQN (or plain DQN) n-step targets, the importance-weighted
Huber loss, its gradient by explicit backpropagation, the global norm, clipping and one Adam
step, and writes them as float64 for the C test to compare.

Input:  int32[12]  obs_dim, n_actions, n_hidden, hidden[4], dueling, double_q, B, n_params, 0
        float32[4] huber_delta, lr, adam_eps, grad_clip
        float32    online[n_params], target[n_params], obs[B*obs_dim], next_obs[B*obs_dim],
                   reward[B], discount[B], weight[B]
        int32      action[B]
Output: float64    y[B], q_obs[B*A], td_abs[B], loss, grad_norm, grads[n_params],
                   new_params[n_params]
"""
import sys

import numpy as np

BETA1, BETA2 = 0.9, 0.999


def unpack(flat, shape):
    """Splits the flat parameter block into per-layer (w, b) in the order qnet.h documents."""
    obs_dim, hidden, n_actions, dueling = shape
    layers, off, fan_in = [], 0, obs_dim
    for width in hidden:
        w = flat[off:off + width * fan_in].reshape(width, fan_in)
        off += width * fan_in
        b = flat[off:off + width]
        off += width
        layers.append((w, b))
        fan_in = width
    value = None
    if dueling:
        value = (flat[off:off + fan_in].reshape(1, fan_in), flat[off + fan_in:off + fan_in + 1])
        off += fan_in + 1
    head = (flat[off:off + n_actions * fan_in].reshape(n_actions, fan_in),
            flat[off + n_actions * fan_in:off + n_actions * fan_in + n_actions])
    off += n_actions * fan_in + n_actions
    assert off == flat.size, (off, flat.size)
    return layers, value, head


def forward(flat, shape, x):
    """Q(x) and the activations backward needs."""
    layers, value, head = unpack(flat, shape)
    acts = [x]
    for w, b in layers:
        acts.append(np.maximum(acts[-1] @ w.T + b, 0.0))
    h = acts[-1]
    adv = h @ head[0].T + head[1]
    if value is None:
        return adv, acts
    v = h @ value[0].T + value[1]
    return v + adv - adv.mean(axis=1, keepdims=True), acts


def backward(flat, shape, acts, dq):
    """dL/dparams (same flat layout) for upstream gradient dq = dL/dQ."""
    layers, value, head = unpack(flat, shape)
    grads = []
    h = acts[-1]
    if value is None:
        dadv = dq
        dh = dadv @ head[0]
        head_grads = [(dadv.T @ h).ravel(), dadv.sum(axis=0)]
        value_grads = []
    else:
        # q = v + adv - mean(adv): dv = sum_a dq, dadv = dq - mean_a dq
        dv = dq.sum(axis=1, keepdims=True)
        dadv = dq - dq.mean(axis=1, keepdims=True)
        dh = dadv @ head[0] + dv @ value[0]
        head_grads = [(dadv.T @ h).ravel(), dadv.sum(axis=0)]
        value_grads = [(dv.T @ h).ravel(), dv.sum(axis=0)]
    for idx in range(len(layers) - 1, -1, -1):
        w, _ = layers[idx]
        dz = dh * (acts[idx + 1] > 0)
        grads = [(dz.T @ acts[idx]).ravel(), dz.sum(axis=0)] + grads
        dh = dz @ w
    return np.concatenate(grads + value_grads + head_grads)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    raw = open(src, "rb").read()
    hdr = np.frombuffer(raw, dtype="<i4", count=12)
    obs_dim, n_actions, n_hidden = int(hdr[0]), int(hdr[1]), int(hdr[2])
    hidden = [int(h) for h in hdr[3:3 + n_hidden]]
    dueling, double_q, B, n_params = bool(hdr[7]), bool(hdr[8]), int(hdr[9]), int(hdr[10])
    pos = 12 * 4
    hyper = np.frombuffer(raw, dtype="<f4", count=4, offset=pos).astype(np.float64)
    pos += 16
    delta, lr, eps, clip = hyper

    def take_f32(n):
        nonlocal pos
        a = np.frombuffer(raw, dtype="<f4", count=n, offset=pos).astype(np.float64)
        pos += 4 * n
        return a

    online = take_f32(n_params)
    target = take_f32(n_params)
    obs = take_f32(B * obs_dim).reshape(B, obs_dim)
    next_obs = take_f32(B * obs_dim).reshape(B, obs_dim)
    reward, discount, weight = take_f32(B), take_f32(B), take_f32(B)
    action = np.frombuffer(raw, dtype="<i4", count=B, offset=pos).astype(np.int64)
    assert pos + 4 * B == len(raw), "input file has unexpected length"

    shape = (obs_dim, hidden, n_actions, dueling)
    rows = np.arange(B)
    q_next_target, _ = forward(target, shape, next_obs)
    if double_q:
        q_next_online, _ = forward(online, shape, next_obs)
        a_star = q_next_online.argmax(axis=1)  # first maximum, like the C code
    else:
        a_star = q_next_target.argmax(axis=1)
    y = reward + discount * q_next_target[rows, a_star]

    q_obs, acts = forward(online, shape, obs)
    pred = q_obs[rows, action]
    x = pred - y
    huber = np.where(np.abs(x) <= delta, 0.5 * x * x, delta * (np.abs(x) - 0.5 * delta))
    loss = np.mean(weight * huber)
    dpred = weight * np.clip(x, -delta, delta) / B
    dq = np.zeros_like(q_obs)
    dq[rows, action] = dpred
    grads = backward(online, shape, acts, dq)

    norm = np.sqrt(np.sum(grads * grads))
    g = grads * (clip / norm) if clip > 0 and norm > clip else grads
    # First Adam step from zero moments (Kingma & Ba 2015, Algorithm 1, t = 1).
    m = (1 - BETA1) * g
    v = (1 - BETA2) * g * g
    mhat, vhat = m / (1 - BETA1), v / (1 - BETA2)
    new_params = online - lr * mhat / (np.sqrt(vhat) + eps)

    out = np.concatenate([y, q_obs.ravel(), np.abs(x), [loss, norm], grads, new_params])
    out.astype("<f8").tofile(dst)
    print("ok B=%d n_params=%d loss=%.6g norm=%.6g" % (B, n_params, loss, norm))


if __name__ == "__main__":
    main()
