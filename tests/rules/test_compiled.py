"""The compiled step: every rule that claims capture is one graph (``fullgraph=True`` raises at
a graph break) and trains the weights its eager step trains through inductor, dropout on; a rule
that cannot be captured says why and runs eagerly."""

import logging

import pytest
import torch

import bpfree
from bpfree.rules import RULES
from bpfree.rules.common import buffers
from bpfree.training import TrainConfig, TrainingState

CAPTURED = [name for name in RULES if RULES.lookup(name).uncapturable is None]
EAGER = [name for name in RULES if name not in CAPTURED]


def state(rule, seed=0, **options):
    config = TrainConfig(
        rule=rule, hidden=[16, 16], dropout=0.1, lr=0.05, seed=seed, rule_options=options
    ).resolved()
    return TrainingState.from_config(config, input_shape=(1, 6, 6), num_classes=4)


def batches():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(5, 8, 1, 6, 6, generator=generator)
    return list(zip(x, torch.randint(0, 4, (5, 8), generator=generator), strict=True))


def train(training, step):
    torch.manual_seed(1)  # the same dropout masks in both
    for x, y in batches():
        step(x, y)
    return [p.detach().clone() for p in training.model.parameters()]


def test_every_rule_but_three_claims_capture():
    """The rules that draw from their own seeded streams are captured (their draws are opaque
    calls in the graph); PFA's and time-local's steps say why not."""
    assert sorted(EAGER) == ["pepita-time-local", "pfa", "pfa-o"]
    assert all(isinstance(RULES.lookup(name).uncapturable, str) for name in EAGER)


def assert_compiled_trains_the_eager_weights(rule, backend="inductor", **options):
    eager = state(rule, **options)
    expected = train(eager, lambda x, y: eager.step(x, y))
    compiled = state(rule, **options)
    step = bpfree.compiled_step(compiled.rule, compiled.optimizer, backend=backend)
    weights = train(compiled, step)
    assert step.captured
    for a, b in zip(weights, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    rule_state, eager_state = compiled.rule.state_dict(), eager.rule.state_dict()
    for name, value in eager_state.items():  # feedback, running averages, stream positions
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(rule_state[name], value, rtol=1e-5, atol=1e-6)
    initial = state(rule, **options).model.parameters()
    assert not all(torch.equal(a, b) for a, b in zip(weights, initial, strict=True))
    x, _ = batches()[0]  # the model's own forward pass afterwards: no perturbation left on
    compiled.model.eval(), eager.model.eval()
    torch.testing.assert_close(compiled.model(x), eager.model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rule", CAPTURED)
def test_a_compiled_step_trains_the_weights_of_the_eager_step(rule):
    """Through inductor, the compiler ``bpfree train --compile`` uses: its own passes rewrite
    the graph (one of them drops an add's α, see ``buffers.add_scaled_``)."""
    assert_compiled_trains_the_eager_weights(rule)


@pytest.mark.parametrize(
    ("rule", "options"),
    [
        ("grape", {"perturbations": 3}),
        ("fg-activity", {"perturbations": 2}),
        ("ff", {"negatives": "hybrid"}),
    ],
)
def test_the_options_that_draw_more_are_captured_too(rule, options):
    """GrAPE's further perturbations take tangent passes of their own (through its point
    hooks), fg-activity's a second pass through its hooks; FF's hybrid negatives draw masks and
    a permutation of the batch from its stream."""
    assert_compiled_trains_the_eager_weights(rule, **options)


def test_add_scaled_keeps_its_alpha_in_a_graph():
    """out + α (a @ b) through inductor: the graph's add of a matrix product keeps α."""

    def update(out, a, b):
        return buffers.add_scaled_(out, a.T @ b, alpha=0.125)

    a, b = torch.rand(5, 3, dtype=torch.float64), torch.rand(5, 4, dtype=torch.float64)
    out = torch.rand(3, 4, dtype=torch.float64)
    expected = update(out.clone(), a, b)
    compiled = torch.compile(update, fullgraph=True)(out.clone(), a, b)
    torch.testing.assert_close(compiled, expected)
    torch.testing.assert_close(expected, out + (a.T @ b) / 8)


@pytest.mark.parametrize("rule", EAGER)
def test_a_rule_that_cannot_be_captured_says_why_and_runs_eagerly(rule, caplog):
    eager = state(rule)
    expected = train(eager, lambda x, y: eager.step(x, y))
    compiled = state(rule)
    with caplog.at_level(logging.WARNING, logger="bpfree.rules.compiled"):
        step = bpfree.compiled_step(compiled.rule, compiled.optimizer)
    assert not step.captured
    (record,) = caplog.records
    assert record.getMessage() == (
        f"{rule}'s step runs eagerly, not compiled: {RULES.lookup(rule).uncapturable}"
    )
    for a, b in zip(train(compiled, step), expected, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("rule", ["pepita-hebbian", "ff-topdown"])
def test_a_compiled_step_writes_the_kept_gradient_buffers_in_place(rule):
    """Through inductor, a rule that writes its own updates trains the eager weights, and its
    graph writes them into the gradient buffers kept from step to step (CPU): the same tensors
    are ``.grad`` after every step, and no weight-sized tensor is copied into them. PEPITA-
    Hebbian's first layer and FF top-down's add a second product to the first
    (``addmm_into`` with β = 1)."""
    eager = state(rule)
    expected = train(eager, lambda x, y: eager.step(x, y))
    compiled = state(rule)
    step = bpfree.compiled_step(compiled.rule, compiled.optimizer)
    weights = train(compiled, step)
    for a, b in zip(weights, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

    params = [p for p in compiled.model.parameters() if p.grad is not None]
    kept = [p.grad for p in params]
    x, y = batches()[0]
    with torch.profiler.profile(record_shapes=True) as profile:
        step(x, y)
    assert all(p.grad is grad for p, grad in zip(params, kept, strict=True))
    weight_shapes = [list(p.shape) for p in params if p.dim() == 2]
    copies = [
        event.input_shapes
        for event in profile.events()
        if event.name == "aten::copy_" and event.input_shapes[:1] in ([s] for s in weight_shapes)
    ]
    assert copies == []


@pytest.mark.parametrize("rule", ["pepita-hebbian", "ff-topdown"])
def test_a_compiled_step_into_fresh_gradients_trains_the_eager_weights(rule, monkeypatch):
    """The path a CUDA graph takes (a fresh gradient tensor in the graph, ``addmm_into`` on
    it), taken on the CPU."""
    eager = state(rule)
    expected = train(eager, lambda x, y: eager.step(x, y))
    asked = []
    monkeypatch.setattr(buffers, "fresh_in_graph", lambda param: asked.append(param) or True)
    compiled = state(rule)
    step = bpfree.compiled_step(compiled.rule, compiled.optimizer, backend="aot_eager")
    for a, b in zip(train(compiled, step), expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert asked  # the graph took the fresh path


@pytest.mark.parametrize("rule", ["fa", "kp"])
def test_a_compiled_feedback_step_on_a_conv_net_trains_the_eager_weights(rule, residual_cnn):
    """Through inductor, on convolutions of every geometry (stride 2 with a row unreached,
    dilation, groups) with BatchNorm and a residual addition: the graph takes a layer's δx and
    δW in one ``convolution_backward`` call, the eager step in two."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, 3, 8, 8, generator=generator)
    y = torch.randint(0, 4, (5, 6), generator=generator)
    weights = []
    for compile in (False, True):
        torch.manual_seed(0)
        model = residual_cnn(groups=2)
        rule_ = bpfree.build(rule, model, seed=0)
        optimizer = bpfree.optimizer(rule_, torch.optim.SGD, lr=0.05, momentum=0.9)
        step = bpfree.compiled_step(rule_, optimizer) if compile else None
        for batch, labels in zip(x, y, strict=True):
            if step is None:
                rule_.step(batch, labels)
                optimizer.step()
            else:
                step(batch, labels)
        trained = [*model.parameters(), *rule_.parameters()]  # KP's B too
        weights.append([p.detach().clone() for p in trained])
    for a, b in zip(*weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_compiled_pepita_step_on_its_conv_net_trains_the_eager_weights():
    """Inside a graph PEPITA's walk max-pools by inductor's own pooling, eagerly by a maximum
    over strided slices (``walk.pooling.pooled``): the same values."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(5, 8, 1, 12, 12, generator=generator)
    y = torch.randint(0, 4, (5, 8), generator=generator)
    weights = []
    for compile in (False, True):
        config = TrainConfig(rule="pepita", model="pepita-conv", lr=0.05, seed=0).resolved()
        training = TrainingState.from_config(config, input_shape=(1, 12, 12), num_classes=4)
        step = bpfree.compiled_step(training.rule, training.optimizer) if compile else None
        torch.manual_seed(1)
        for batch, labels in zip(x, y, strict=True):
            training.step(batch, labels) if step is None else step(batch, labels)
        weights.append([p.detach().clone() for p in training.model.parameters()])
    assert step.captured
    for a, b in zip(*weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
