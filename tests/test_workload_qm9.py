"""The QM9 workload: CSV reading, featurisation, cache, splits, padded batches, GNN (a subset)."""

import numpy as np
import pytest
import torch

from algoperf.errors import AlgoperfError
from algoperf.plugins import list_workloads, load_module, workload_class
from algoperf.spec import ForwardPassMode, ParamType
from algoperf.workload import epoch_permutations

data = load_module(list_workloads()["qm9"]["folder"] / "workload.py", "workloads")
SUBSET = 1500  # the first molecules of QM9: builds in about a second


@pytest.fixture(scope="module")
def workload(cache_root):
    torch.set_num_threads(1)
    try:
        w = workload_class("qm9", "torch")("small")
        w.max_molecules = SUBSET
        splits = w.load_splits()
    except AlgoperfError as e:  # qm9pack is not installed here
        pytest.skip(str(e))
    return w, splits


def test_csv_files_hold_all_of_qm9():
    molecules = data.read_molecules(data.find_csv_files())
    assert len(molecules["index"]) == data.NUM_MOLECULES == 130_831
    assert len(np.unique(molecules["index"])) == 130_831
    assert np.all(np.diff(molecules["index"]) > 0)
    gap = molecules["gap_ev"]
    assert 6.5 < gap.mean() < 7.2 and 1.0 < gap.std() < 1.5  # eV, not Hartree


def test_featuriser_on_known_molecules():
    nodes, edges, edge_features = data.featurise("C=O")  # formaldehyde
    assert nodes.shape == (2, data.NODE_FEATURES) == (2, 22)
    carbon = nodes[0]
    o = data.ATOM_OFFSETS
    assert carbon[data.ELEMENTS.index("C")] == 1 and carbon[:5].sum() == 1
    assert carbon[o[1] + 1] == 1  # degree 1
    assert carbon[o[2] + 1] == 1  # formal charge 0
    assert carbon[o[3]] == 0  # not aromatic
    assert carbon[o[4] + data.HYBRIDISATIONS.index("SP2")] == 1
    assert carbon[o[5] + 2] == 1  # two hydrogens
    assert edges.tolist() == [[0, 1], [1, 0]]
    assert edge_features.tolist() == [[0, 1, 0, 0, 0, 0]] * 2  # double, not conjugated, no ring
    nodes, edges, edge_features = data.featurise("c1ccccc1")  # benzene
    assert nodes[:, o[3]].tolist() == [1] * 6 and nodes.sum(axis=1).tolist() == [6] * 6
    assert len(edges) == 12 and edge_features.tolist() == [[0, 0, 0, 1, 1, 1]] * 12
    nodes, _, _ = data.featurise("C[NH3+]")
    assert nodes[1, o[2] + 2] == 1  # formal charge +1


def test_split_is_deterministic_disjoint_and_complete():
    a, b = data.split_indices(data.NUM_MOLECULES), data.split_indices(data.NUM_MOLECULES)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert [len(a[n]) for n in ("train", "validation", "test")] == [110_831, 10_000, 10_000]
    rows = np.concatenate(list(a.values()))
    assert len(np.unique(rows)) == data.NUM_MOLECULES == len(rows)


def test_no_molecule_in_two_splits(workload):
    _, splits = workload
    ids = {
        name: set(split["molecule_index"][split["weights"] > 0])
        for name, split in [
            ("train", splits.train),
            ("validation", splits.validation),
            ("test", splits.test),
        ]
    }
    assert not ids["train"] & ids["validation"] and not ids["train"] & ids["test"]
    assert not ids["validation"] & ids["test"]
    assert sum(len(v) for v in ids.values()) == SUBSET


def test_cache_is_reused_and_rebuilt_when_corrupt_or_stale(workload, cache_root):
    graphs, built = data.load_graphs(max_molecules=SUBSET)  # the fixture built it already
    assert not built
    path = data.cache_path(data.files_sha256(data.find_csv_files()), SUBSET)
    assert path.parent == cache_root / "qm9" and path.is_file()

    path.write_bytes(b"garbage, not a zip file" * 100)
    with pytest.warns(UserWarning, match="unusable"):
        rebuilt, built = data.load_graphs(max_molecules=SUBSET)
    assert built
    for key in data.GRAPH_KEYS:
        np.testing.assert_array_equal(rebuilt[key], graphs[key])
    assert not data.load_graphs(max_molecules=SUBSET)[1]  # the rebuilt file is good

    with open(path, "wb") as f:  # a readable file made from other CSV files
        np.savez(f, csv_sha256=np.array("0" * 64), featuriser_version=np.array(1), **graphs)
    with pytest.warns(UserWarning, match="other CSV files"):
        assert data.load_graphs(max_molecules=SUBSET)[1]

    with open(path, "wb") as f:  # right header, truncated arrays
        np.savez(
            f,
            csv_sha256=np.array(data.files_sha256(data.find_csv_files())),
            featuriser_version=np.array(data.FEATURISER_VERSION),
            **{k: v[:-1] if k == "gap_ev" else v for k, v in graphs.items()},
        )
    with pytest.warns(UserWarning, match="inconsistent"):
        assert data.load_graphs(max_molecules=SUBSET)[1]


def test_epoch_permutations_are_seeded_epochs_of_a_permutation():
    def take(seed, n=10):
        stream = epoch_permutations(100, 32, seed)
        return np.stack([next(stream) for _ in range(n)])

    a, b, c = take(0), take(0), take(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a[:3])) == 96  # 3 full batches of one epoch, no repeats; 4 dropped
    assert not np.array_equal(a[:3], a[3:6])  # the next epoch is a new permutation


def test_batches_have_static_shapes_and_are_deterministic(workload):
    w, splits = workload
    train = w.to_device(splits.train)
    one, two = w.train_batches(train, 32, seed=5), w.train_batches(train, 32, seed=5)
    for _ in range(3):
        a, b = next(one), next(two)
        for key in a:
            assert torch.equal(a[key], b[key])
    assert a["inputs"].shape == (32, 9, 22) and a["edge_index"].shape == (32, 26, 2)
    assert a["edge_features"].shape == (32, 26, 6) and a["targets"].shape == (32,)
    assert bool(a["weights"].eq(1).all())
    # Eval splits are padded to whole eval batches with weight-0 graphs.
    validation = splits.validation
    assert len(validation["targets"]) % w.eval_batch_size == 0
    real = validation["weights"] > 0
    assert real.sum() == SUBSET // 13 and not validation["node_mask"][~real].any()


def test_targets_are_standardised_on_train(workload):
    w, splits = workload
    targets = splits.train["targets"]
    assert abs(targets.mean()) < 1e-4 and abs(targets.std() - 1) < 1e-3
    assert 5 < w.gap_mean_ev < 9 and 0.5 < w.gap_std_ev < 2


def test_model_output_shape_initial_loss_and_metric(workload):
    w, splits = workload
    model, _ = w.init_model_fn(0)
    batch = next(w.train_batches(w.to_device(splits.train), 64, seed=0))
    outputs, _ = w.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True)
    assert outputs.shape == (64,)
    loss = w.loss_fn(batch["targets"], outputs, batch["weights"])
    assert 0.5 < float(loss["summed"].detach()) / float(loss["n_valid_examples"]) < 1.3  # ~0.8
    metrics = w.eval_metrics(model, None, w.to_device(splits.validation))
    assert metrics["mae_ev"] == pytest.approx(metrics["loss"] * w.gap_std_ev)


def test_padding_never_changes_a_prediction(workload):
    w, splits = workload
    model, _ = w.init_model_fn(0)
    batch = next(w.train_batches(w.to_device(splits.train), 16, seed=0))
    clean, _ = w.model_fn(model, batch, None, ForwardPassMode.EVAL, None, False)
    noisy = dict(batch)
    pad_nodes = ~batch["node_mask"]
    pad_edges = ~batch["edge_mask"]
    noisy["inputs"] = torch.where(pad_nodes[..., None], torch.ones_like(batch["inputs"]), batch["inputs"])
    noisy["edge_features"] = torch.where(
        pad_edges[..., None], torch.ones_like(batch["edge_features"]), batch["edge_features"]
    )
    noisy["edge_index"] = torch.where(
        pad_edges[..., None], torch.full_like(batch["edge_index"], 3), batch["edge_index"]
    )
    assert pad_nodes.any() and pad_edges.any()
    perturbed, _ = w.model_fn(model, noisy, None, ForwardPassMode.EVAL, None, False)
    torch.testing.assert_close(perturbed, clean)


def test_one_step_decreases_loss_on_a_fixed_batch(workload):
    w, splits = workload
    model, _ = w.init_model_fn(0)
    batch = next(w.train_batches(w.to_device(splits.train), 128, seed=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss():
        outputs, _ = w.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True)
        out = w.loss_fn(batch["targets"], outputs, batch["weights"])
        return out["summed"] / out["n_valid_examples"]

    before = loss()
    before.backward()
    optimizer.step()
    assert float(loss().detach()) < float(before.detach()) - 1e-3


@pytest.mark.parametrize("name", ["qm9", "qm9_mean"])
def test_parameter_types_cover_every_parameter(name):
    w = workload_class(name, "torch")("small")
    model, _ = w.init_model_fn(0)
    types = w.param_types
    assert list(types) == [n for n, _ in model.named_parameters()]
    for param_name, kind in types.items():
        if ".norm" in param_name or param_name.startswith("norm_final"):
            scale = param_name.endswith("weight")
            assert kind is (ParamType.NORM_SCALE if scale else ParamType.NORM_BIAS)
        elif param_name.endswith("bias"):
            assert kind is ParamType.BIAS
        else:
            assert kind is ParamType.WEIGHT
    assert sum(k is ParamType.NORM_SCALE for k in types.values()) == w.options["num_layers"] + 1


def test_mean_readout_variant(workload):
    w, splits = workload
    mean = workload_class("qm9_mean", "torch")("small")
    assert mean.full_name == "qm9_mean" and mean.readout == "mean" and w.readout == "sum"
    # Its own targets, set by its own runs (at the small size they round to the base's 0.28).
    assert mean.sizes is not w.sizes and mean.sizes["medium"].target != w.sizes["medium"].target
    model, _ = mean.init_model_fn(0)
    assert model.readout == "mean"
