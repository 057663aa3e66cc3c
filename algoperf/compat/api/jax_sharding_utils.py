"""AlgoPerf v0.6's `jax_sharding_utils`: shardings over a one-axis ('batch') mesh of the
trial's devices (one device on a CPU trial)."""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def get_mesh() -> Mesh:
    return Mesh(jax.devices(), ("batch",))


def get_replicate_sharding() -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(get_mesh(), PartitionSpec())


def get_batch_dim_sharding() -> NamedSharding:
    """The leading (batch) axis split over the devices."""
    return NamedSharding(get_mesh(), PartitionSpec("batch"))


get_batch_sharding = get_batch_dim_sharding


def shard_along_batch_dim(tree: Any) -> Any:
    return jax.device_put(tree, get_batch_dim_sharding())


def replicate(tree: Any) -> Any:
    return jax.device_put(tree, get_replicate_sharding())


def display_shard_info(x: jax.Array) -> None:
    for shard in x.addressable_shards:
        print(f"shard.device: {shard.device}, index: {shard.index}, replica_id: {shard.replica_id}.")
