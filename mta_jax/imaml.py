"""iMAML (Rajeswaran et al., 2019): implicit meta-gradients of a proximal inner problem.

The inner problem of an episode is proximal: θ*(φ) = argmin_θ L_support(θ) + (λ/2)|θ - φ_fast|².
``inner_steps`` gradient steps from φ_fast approximate θ*; the meta-gradient is not
back-propagated through them but given by the implicit function theorem at the solution:
dL_query/dφ = (I + H/λ)^-1 ∇_θ L_query(θ*), with H the Hessian of L_support at θ*, and the same
solve gives the gradient of the parameters that are not adapted. ``jax.lax.custom_root`` does
the bookkeeping; its tangent system (H + λI) x = y is solved by conjugate gradients
(``meta.cg_steps`` iterations) with Hessian-vector products, so memory does not grow with
``inner_steps``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mta_jax import algorithms, bilevel
from mta_jax import params as P


def _sq_dist(a: P.Params, b: P.Params) -> jax.Array:
  return sum(jnp.sum(jnp.square(a[k] - b[k])) for k in a)


def proximal_solution(learner, cfg, meta, episode):
  """(θ* (implicitly differentiable w.r.t. φ), the other parameters, inner metrics)."""
  anchor, slow = bilevel.split_fast(learner, meta, episode)
  lrs, lam = meta["inner_lr"], cfg.prox_lambda

  def inner_objective(f, anchor, slow):
    loss, acc = learner.loss(P.merge(f, slow), episode, learner.support_streams)
    return loss + 0.5 * lam * _sq_dist(f, anchor), (loss, acc)

  grad_obj = jax.grad(inner_objective, has_aux=True)

  def stationarity(f):  # closes over anchor and slow: custom_root differentiates through them
    return grad_obj(f, anchor, slow)[0]

  def solve(_, start):
    def step(f, _):
      g, aux = grad_obj(f, anchor, slow)
      return bilevel.inner_update(cfg, lrs, f, g), aux
    f, _ = jax.lax.scan(step, start, None, length=cfg.inner_steps)
    return f

  def tangent_solve(linear, rhs):
    x, _ = jax.scipy.sparse.linalg.cg(linear, rhs, maxiter=cfg.cg_steps)
    return x

  theta = jax.lax.custom_root(stationarity, anchor, solve, tangent_solve)
  before_l, before_a = learner.loss(P.merge(anchor, slow), episode, learner.support_streams)
  metrics = {"inner/loss_before": jax.lax.stop_gradient(before_l),
             "inner/acc_before": jax.lax.stop_gradient(before_a)}
  return theta, slow, metrics


def episode_loss(learner, cfg, meta, episode):
  theta, slow, metrics = proximal_solution(learner, cfg, meta, episode)
  return bilevel.adapted_outer_loss(learner, cfg, theta, slow, episode, metrics)


def predict_state(learner, cfg, meta, episode):
  theta, slow, _ = proximal_solution(learner, cfg, meta, episode)
  p = P.merge(theta, slow)
  return p, learner.classes(p, episode)


algorithms.register(algorithms.Algorithm(
    "imaml", "iMAML", predict_state=predict_state, episode_loss=episode_loss,
    # The solution of the proximal problem does not depend on the solver's step size.
    fixed=(("learn_inner_lr", "fixed"),)))
