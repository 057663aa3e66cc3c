"""MLCommons AlgoPerf's submission-facing modules, written for this harness.

An AlgoPerf submission's `import algoperf...` / `import algorithmic_efficiency...` resolves to
this package (algoperf.compat.importer does the redirection, for the submission's own modules
only). Each module offers the names real submissions use, with AlgoPerf's meaning on the
harness's single-process, single-device trials. The modules are imported on first use, so a
torch submission never imports jax and the other way round.
"""

MODULES = ("spec", "pytorch_utils", "jax_sharding_utils", "jax_utils", "param_utils", "random_utils")
