"""iMAML (Rajeswaran et al., 2019): implicit meta-gradients of a proximal inner problem.

The inner problem of an episode is proximal: θ*(φ) = argmin_θ L_support(θ) + (λ/2)|θ - φ_fast|².
``inner_steps`` gradient steps from φ_fast approximate θ*; the meta-gradient is not
back-propagated through them but given by the implicit function theorem at the solution:
dL_query/dφ = (I + H/λ)^-1 ∇_θ L_query(θ*), with H the Hessian of L_support at θ*, and the same
solve gives the gradient of the parameters that are not adapted. ``solve`` is a
``jax.custom_vjp``: its backward pass solves (H + λI) u = ∇_θ L_query by conjugate gradients
(``meta.cg_steps`` iterations, ``conjugate_gradient``) with Hessian-vector products, so memory
does not grow with ``inner_steps``. (``jax.lax.custom_root`` would do the same bookkeeping, but
its reverse mode fails to transpose under ``vmap`` here.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mta_jax import algorithms, bilevel
from mta_jax import params as P


def _sq_dist(a: P.Params, b: P.Params) -> jax.Array:
  return sum(jnp.sum(jnp.square(a[k] - b[k])) for k in a)


def _vdot(a: P.Params, b: P.Params) -> jax.Array:
  return sum(jnp.vdot(a[k], b[k]) for k in a)


def conjugate_gradient(matvec, b: P.Params, iters: int) -> P.Params:
  """``iters`` conjugate-gradient iterations for ``matvec(x) = b`` from x = 0 (symmetric positive
  definite ``matvec``; here H + λI by Hessian-vector products): a fixed-length ``lax.scan``
  with no early exit, so it vmaps over episodes and compiles once."""
  x = jax.tree.map(jnp.zeros_like, b)
  rr = _vdot(b, b)

  def step(carry, _):
    x, r, p, rr = carry
    ap = matvec(p)
    # A zero residual (b = 0, or converged) must not divide by zero.
    alpha = jnp.where(rr > 0, rr / jnp.where(rr > 0, _vdot(p, ap), 1.0), 0.0)
    x = jax.tree.map(lambda a, d: a + alpha * d, x, p)
    r = jax.tree.map(lambda a, d: a - alpha * d, r, ap)
    rr_new = _vdot(r, r)
    beta = jnp.where(rr > 0, rr_new / jnp.where(rr > 0, rr, 1.0), 0.0)
    p = jax.tree.map(lambda a, d: a + beta * d, r, p)
    return (x, r, p, rr_new), None

  (x, _, _, _), _ = jax.lax.scan(step, (x, b, b, rr), None, length=iters)
  return x


def _inner_objective(learner, cfg, f, anchor, slow, episode):
  loss, acc = learner.loss(P.merge(f, slow), episode, learner.support_streams)
  return loss + 0.5 * cfg.prox_lambda * _sq_dist(f, anchor), (loss, acc)


def _stationarity(learner, cfg, f, anchor, slow, episode):
  """∇_θ of the proximal inner objective (zero at θ*)."""
  return jax.grad(_inner_objective, argnums=2, has_aux=True)(learner, cfg, f, anchor, slow,
                                                             episode)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def solve(learner, cfg, anchor, slow, lrs, episode):
  """θ*: ``inner_steps`` gradient steps on the proximal objective from φ_fast (``anchor``); its
  VJP is the implicit one (``_solve_bwd``), so the steps are never differentiated."""
  def step(f, _):
    g = _stationarity(learner, cfg, f, anchor, slow, episode)
    return bilevel.inner_update(cfg, lrs, f, g), None
  theta, _ = jax.lax.scan(step, anchor, None, length=cfg.inner_steps)
  return theta


def _solve_fwd(learner, cfg, anchor, slow, lrs, episode):
  theta = solve(learner, cfg, anchor, slow, lrs, episode)
  return theta, (theta, anchor, slow, lrs, episode)


def _zero_cotangent(x):
  if jnp.issubdtype(x.dtype, jnp.inexact):
    return jnp.zeros_like(x)
  return np.zeros(x.shape, jax.dtypes.float0)


def _solve_bwd(learner, cfg, res, g):
  """Implicit function theorem at θ*: u = (H + λI)^-1 g by CG on Hessian-vector products, then
  the cotangents of (anchor, slow) are -∂/∂(anchor, slow) <∇_θ G(θ*), u> (λu for the anchor)."""
  theta, anchor, slow, lrs, episode = res
  grad_theta = lambda f, a, s: _stationarity(learner, cfg, f, a, s, episode)
  matvec = lambda v: jax.jvp(lambda f: grad_theta(f, anchor, slow), (theta,), (v,))[1]
  u = conjugate_gradient(matvec, g, cfg.cg_steps)
  _, vjp = jax.vjp(lambda a, s: grad_theta(theta, a, s), anchor, slow)
  g_anchor, g_slow = vjp(u)
  neg = lambda t: jax.tree.map(jnp.negative, t)
  # The solution does not depend on the solver's step sizes or (as an input here) on the data.
  return (neg(g_anchor), neg(g_slow), jax.tree.map(jnp.zeros_like, lrs),
          jax.tree.map(_zero_cotangent, episode))


solve.defvjp(_solve_fwd, _solve_bwd)


def proximal_solution(learner, cfg, meta, episode):
  """(θ* (implicitly differentiable w.r.t. φ), the other parameters, inner metrics)."""
  anchor, slow = bilevel.split_fast(learner, meta, episode)
  theta = solve(learner, cfg, anchor, slow, meta["inner_lr"], episode)
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
