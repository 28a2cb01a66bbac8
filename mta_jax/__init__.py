"""mta_jax: MetaToolAgent in JAX. ``mta_jax.ToolSelector`` is the entry point for users' tools.

The export is lazy (PEP 562), so ``import mta_jax.data`` and friends stay light.
"""

__all__ = ["ToolSelector"]


def __getattr__(name):
  if name == "ToolSelector":
    from mta_jax.selector import ToolSelector  # pylint: disable=import-outside-toplevel
    return ToolSelector
  raise AttributeError(f"module 'mta_jax' has no attribute {name!r}")
