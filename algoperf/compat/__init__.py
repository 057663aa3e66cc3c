"""Compatibility layer for submissions written for MLCommons AlgoPerf (v0.5 and v0.6), run as
they are. Loaded only for such submissions (algoperf.plugins decides), so the harness's own
`algoperf.spec` keeps only the harness's interface.

- detect.py: is a path an AlgoPerf submission; its framework and pmap/jit style, from source.
- importer.py: the submission's `import algoperf...` / `algorithmic_efficiency...` reach api/;
  helper modules load beside it; names removed from JAX that AlgoPerf-era code calls.
- api/: AlgoPerf's submission-facing modules (spec, pytorch_utils, jax_sharding_utils, …).
- workload.py: AlgoPerf's workload interface over the harness's submission view.
- adapter.py: the submission in the harness's full API form, and what it did to get there.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from algoperf.compat.detect import AlgoperfSource, algoperf_entry, describe, is_algoperf_file

__all__ = ["AlgoperfSource", "algoperf_entry", "describe", "import_algoperf_module", "is_algoperf_file"]


def import_algoperf_module(
    source: AlgoperfSource, folder_name: str | None = None
) -> tuple[ModuleType, list[str]]:
    """Import an AlgoPerf submission file with its imports redirected; returns the module and
    what the harness did for it (one line each)."""
    from algoperf.compat.importer import SubmissionImporter, restore_legacy_jax

    notices = [
        f"{source.entry.name}: {source.api}; its `import {source.package}...` is served by the "
        "harness's AlgoPerf API (algoperf.compat.api)"
    ]
    if source.framework == "jax":
        restored = restore_legacy_jax()
        if restored:
            notices.append(f"restored {', '.join(restored)} (removed in JAX 0.6) as the jax.tree functions")
    if source.pmap:
        notices.append(
            "pmap style: parameters, model state and batches get a leading device axis "
            "(1 device here), and the parameters the submission returns are un-replicated"
        )
    importer = SubmissionImporter(Path(source.entry).parent, folder_name)
    return importer.load(source.entry), notices
