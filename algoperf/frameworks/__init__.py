"""Framework adapters: the only place the harness imports torch or jax."""
