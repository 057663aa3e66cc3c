"""What an AlgoPerf-era failure means, for `algoperf check`: errors whose text names a symptom
rather than its cause get one line naming the cause and the fix."""

from __future__ import annotations

# (symptom in the traceback, explanation)
SYMPTOMS = (
    (
        "has no attribute 'shape_tuple'",
        "workload.param_shapes was read as a flat mapping of plain tuples: AlgoPerf's is a tree "
        "of spec.ShapeTuple (which the harness gives AlgoPerf submissions); a submission importing "
        "the harness's own algoperf.spec instead of AlgoPerf's gets the harness's flat shapes, so "
        "check that it imports `from algoperf import spec` at module level",
    ),
    (
        "ScopeParamShapeError",
        "the parameters reached the model with a shape it did not create: a pmap-era submission "
        "(replicated parameters, a leading device axis) run as jit code, or the other way round. "
        "The harness reads the style from the source (a call of jax.pmap); a pmap call hidden "
        "from it (e.g. built by name) is not seen",
    ),
    (
        "pmap got inconsistent sizes",
        "pmap received arrays without the leading device axis: parameters or batches that were "
        "not replicated or split over the devices",
    ),
)


def explain(error: str) -> list[str]:
    """The explanations whose symptom appears in a trial's error text."""
    return [explanation for symptom, explanation in SYMPTOMS if symptom in (error or "")]
