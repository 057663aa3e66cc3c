"""Achieved FLOP/s and model FLOP utilisation (MFU) of each workload's training step.

FLOPs per step are counted, not estimated by hand: torch's `FlopCounterMode` over one forward +
backward of the model and loss, and XLA's own cost analysis of the compiled value-and-grad in
JAX (optimizer FLOPs, a few per parameter, are left out of both). Step time is the bare loop of
`step_overhead.py` (AdamW, device-resident data, warm-up excluded). MFU = achieved / peak.

    .venv/bin/python benchmarks/flops.py                                  # small sizes, here
    .venv/bin/python benchmarks/flops.py --size large --peak-tflops 989   # e.g. an H100, bf16

Peak FLOP/s: `--peak-tflops`, or on a GPU the dense bf16 figure of a known model (PEAK_TFLOPS);
without either, only FLOP/s is printed.
"""

from __future__ import annotations

import argparse
import importlib
import statistics

from step_overhead import bare_jax, bare_torch

from algoperf.plugins import workload_class
from algoperf.spec import ForwardPassMode

# Dense bf16 tensor-core peaks (vendor data sheets, without sparsity), in TFLOP/s.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def torch_step_flops(workload) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    splits = workload.load_splits()
    model, state = workload.init_model_fn(0)
    batch = next(workload.train_batches(workload.to_device(splits.train), workload.default_batch_size, 0))
    with FlopCounterMode(display=False) as counter:
        out, _ = workload.model_fn(model, batch, state, ForwardPassMode.TRAIN, None, True)
        loss = workload.loss_fn(batch["targets"], out, batch.get("weights"))
        (loss["summed"] / loss["n_valid_examples"]).backward()
    return float(counter.get_total_flops())


def jax_step_flops(workload) -> float:
    import jax

    splits = workload.load_splits()
    params, state = workload.init_model_fn(0)
    batch = next(workload.train_batches(workload.to_device(splits.train), workload.default_batch_size, 0))

    def mean_loss(p):
        out, _ = workload.model_fn(p, batch, state, ForwardPassMode.TRAIN, None, True)
        loss = workload.loss_fn(batch["targets"], out, batch.get("weights"))
        return loss["summed"] / loss["n_valid_examples"]

    analysis = jax.jit(jax.value_and_grad(mean_loss)).lower(params).compile().cost_analysis()
    if isinstance(analysis, list):  # older jax returns one dict per computation
        analysis = analysis[0]
    return float(analysis["flops"])


def device_peak_tflops(framework: str) -> float | None:
    if framework == "torch":
        import torch

        name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    else:
        import jax

        device = jax.devices()[0]
        name = device.device_kind if device.platform == "gpu" else ""
    return next((peak for model, peak in PEAK_TFLOPS.items() if model in name), None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", nargs="+", default=["fashion_mnist", "shakespeare", "qm9"])
    parser.add_argument("--frameworks", nargs="+", default=["torch", "jax"])
    parser.add_argument("--size", default="small")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    lines = []
    for framework in args.frameworks:
        fw = importlib.import_module(f"algoperf.frameworks.{framework}")
        fw.set_threads(fw.default_threads())
        count, loop = (torch_step_flops, bare_torch) if framework == "torch" else (jax_step_flops, bare_jax)
        peak = args.peak_tflops or device_peak_tflops(framework)
        for name in args.workloads:
            cls = workload_class(name, framework)
            flops = count(cls(args.size))
            seconds = statistics.median(
                loop(cls(args.size), args.steps, one_batch=False, seed=r, warmup=args.warmup)
                for r in range(args.repeats)
            )
            achieved = flops / seconds
            mfu = (
                f"MFU {achieved / (peak * 1e12):.1%} of {peak:g} TFLOP/s"
                if peak
                else "MFU n/a (no peak given)"
            )
            precision = cls(args.size).precision
            lines.append(
                f"{name:<14} {framework:<6} {args.size} {precision:<8} {flops / 1e9:8.2f} GFLOP/step  "
                f"{seconds * 1e3:8.1f} ms/step  {achieved / 1e12:7.3f} TFLOP/s  {mfu}"
            )
            print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
