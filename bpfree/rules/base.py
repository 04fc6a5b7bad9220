"""What every learning rule is: a module holding its own state, with one ``step`` per batch.

The contract, which every rule of bpfree keeps and a new rule builds on (docs/extending.md):

- A rule is built from a model and keyword options, ``Rule(model, **options)``. Options are
  declared on the class (``Option``) and checked there; an unknown one is an error.
- ``rule.step(x, y)`` checks the batch, sets every ``.grad`` of the model and of the rule to
  None, then runs the rule's own ``_step``: its passes on the batch, which write ``.grad`` of
  every parameter it trains (the direction to descend, averaged over the batch, as autograd
  would) and update the rule's feedback state. It returns the loss and the clean pass's output,
  both on the device: a step reads nothing back to the host (what Python decides from, such as
  counters and random-stream positions, lives on the host, ``common.buffers.HostState``).
- A ``torch.optim`` optimizer then applies the gradients. ``optimizer(rule, torch.optim.SGD,
  lr=...)`` builds one over every parameter the rule's training moves: the model's and the
  rule's own (Kolen-Pollack's B, PFA's R).
- The rule's state (feedback matrices, counters, random-stream positions) is ``rule.state_dict()``;
  the model's weights stay in ``model.state_dict()``. ``rule.to(...)`` moves only the rule's state.
- ``rule.alignment()`` reports how the rule's feedback aligns with what it stands for.
- Under data parallelism (``bpfree.parallel``) each replica steps on its rows of a global
  batch: a rule draws per-sample randomness for the whole batch and keeps its rows
  (``batch_rows``), sums what it learns from data outside ``.grad`` over the replicas
  (``sum_across_replicas``), and says how each update scales with the batch (``batch_power``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from bpfree.core.checks import Check, is_int
from bpfree.core.registry import reject_unknown
from bpfree.rules.common.buffers import GradBuffers
from bpfree.rules.common.options import Option, declared_options


@dataclass(frozen=True)
class StepResult:
    """What ``Rule.step`` returns: the batch's loss (a 0-d tensor on the model's device, so that
    a step never waits for the device: ``float(result.loss)`` reads it) and the logits of the
    clean forward pass."""

    loss: torch.Tensor
    output: torch.Tensor


CLASS_COUNT = Check("None or an integer at least 2", lambda v: v is None or (is_int(v) and v >= 2))


class Rule(nn.Module):
    """Base class of the learning rules (the contract is in this module's docstring).

    A subclass names itself (``name``), declares its options (``Option``), builds its state in
    ``__init__(model, **options)`` after calling this one, and implements ``_step(x, y)``.

    The model is referenced, not registered as a submodule: ``rule.state_dict()`` holds only the
    rule's own state, and ``rule.to(...)`` moves only that state.
    """

    name: ClassVar[str]
    # True for a rule that applies its updates itself during ``step``, through the optimizer
    # built by ``optimizer(rule, ...)`` (PEPITA time-local); its ``step`` leaves ``.grad`` None,
    # so the caller's ``optimizer.step()`` after it changes nothing.
    applies_own_updates: ClassVar[bool] = False
    # None where ``torch.compile(fullgraph=True)`` captures the rule's step whole
    # (``bpfree.rules.compiled``); otherwise why it cannot, said when its step runs eagerly.
    uncapturable: ClassVar[str | None] = None
    # Whether the rule trains a sequence model, whose logits (n, t, c) hold one prediction per
    # position (a language model): its error is one vector per position.
    trains_sequences: ClassVar[bool] = False

    num_classes = Option(None, CLASS_COUNT)

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"a rule trains an nn.Module, got {type(model).__name__}")
        object.__setattr__(self, "model", model)
        declared = declared_options(type(self))
        reject_unknown(options, declared, what="option", where=f"of rule {self.name!r}")
        for key, option in declared.items():
            setattr(self, key, option.value(options.get(key, option.default), self.name))
        if self.num_classes is None:
            self.num_classes = CLASS_COUNT(infer_num_classes(model), f"{self.name} num_classes")
        self.grads = GradBuffers()
        object.__setattr__(self, "_optimizer", None)
        object.__setattr__(self, "_replicas", None)
        object.__setattr__(self, "_rows", None)

    @classmethod
    def options(cls) -> dict[str, Any]:
        """The rule's options with their defaults, in the order the class declares them."""
        return {name: option.default for name, option in declared_options(cls).items()}

    def step(self, x: torch.Tensor, y: torch.Tensor, *, check: bool = True) -> StepResult:
        """Run the rule on one batch ``x`` with integer labels ``y`` and write every ``.grad``.

        The batch is checked first (``check_batch``), nothing is changed when it is refused;
        then every ``.grad`` of the model and of the rule is set to None, and ``_step`` runs.
        The check reads the batch on the host; ``check=False`` skips it for data checked where
        it entered (``load_dataset`` checks every label of the files it reads, and their images
        are bytes scaled to [0, 1]: the trainer steps so), and then nothing in a step waits for
        the device.
        """
        if check:
            self.check_batch(x, y)
        self.model.zero_grad(set_to_none=True)
        self.zero_grad(set_to_none=True)
        return self._step(x, y)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """The rule's passes on a checked batch: write ``.grad``, update the feedback state."""
        raise NotImplementedError

    def alignment(self) -> dict[str, dict[str, float]]:
        """How each feedback aligns with what it stands for, by name (e.g. its angle in
        degrees and norm ratio against Wᵀ); empty for a rule without feedback."""
        return {}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (n, classes) whose argmax is the prediction: the model's logits, unless
        the rule predicts otherwise (Forward-Forward: the goodness of each label)."""
        return self.model(x)

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss the rule descends (softmax cross-entropy), also BP's reference for it; of a
        sequence model's logits (n, t, c) and next tokens (n, t), the mean over every token."""
        return F.cross_entropy(output.flatten(0, -2), y.flatten())

    def trained_parameters(self) -> list[nn.Parameter]:
        """Every parameter the rule's training moves: the model's, then the rule's own."""
        return [*self.model.parameters(), *self.parameters()]

    @property
    def attached_optimizer(self) -> torch.optim.Optimizer | None:
        """The optimizer built for this rule by ``optimizer(rule, ...)``, if any."""
        return self._optimizer

    @contextmanager
    def attached(self, optimizer: torch.optim.Optimizer) -> Iterator[None]:
        """Within it, ``optimizer`` is the rule's optimizer; the previous one comes back after."""
        previous = self._optimizer
        object.__setattr__(self, "_optimizer", optimizer)
        try:
            yield
        finally:
            object.__setattr__(self, "_optimizer", previous)

    @contextmanager
    def replicated(self, replicas: Any, start: int, total: int) -> Iterator[None]:
        """Within it, a step's batch is rows ``start:start + n`` of a global batch of ``total``
        spread over ``replicas`` (an object with ``all_reduce_sum_(tensors)``, such as
        ``bpfree.parallel.Replicas``)."""
        object.__setattr__(self, "_replicas", replicas)
        object.__setattr__(self, "_rows", (start, total))
        try:
            yield
        finally:
            object.__setattr__(self, "_replicas", None)
            object.__setattr__(self, "_rows", None)

    def batch_rows(self, n: int) -> tuple[int, int]:
        """(start, total): where this step's n samples lie in the global batch, (0, n) outside
        data parallelism. A per-sample random draw gives this step's rows of the draw for all
        ``total`` rows (``RandomStream.normal``), so that every replica draws what one process
        would."""
        return (0, n) if self._rows is None else self._rows

    def sum_across_replicas(self, tensors: list[torch.Tensor]) -> None:
        """Sum ``tensors`` (state learnt from this step's samples) over the replicas, in place;
        nothing outside data parallelism."""
        if self._replicas is not None:
            self._replicas.all_reduce_sum_(tensors)

    def batch_power(self, param: nn.Parameter) -> int:
        """k such that the update the rule writes for ``param`` scales as n^−k with the batch
        size n: 1 for a mean over the batch (every rule's, by default), 0 for a sum."""
        return 1

    def check_batch(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Raise a ``ValueError`` that says what is wrong with a batch: no samples, a non-finite
        input, or labels of the wrong shape, type or range. One host sync for all of it."""
        if x.shape[0] == 0:
            raise ValueError(f"the batch is empty (shape {tuple(x.shape)}): a step needs a sample")
        if y.shape != x.shape[:1] and (x.is_floating_point() or y.shape != x.shape):
            raise ValueError(
                f"labels must have shape (batch,) = ({x.shape[0]},), or for token inputs their "
                f"shape {tuple(x.shape)} (the next tokens), got {tuple(y.shape)}"
            )
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
        out_of_range = (y < 0) | (y >= self.num_classes)
        non_finite = ~torch.isfinite(x)
        labels_bad, inputs_bad = torch.stack([out_of_range.any(), non_finite.any()]).tolist()
        if labels_bad:
            raise ValueError(
                f"label {y[out_of_range][0].item()} is out of range: labels must lie in "
                f"[0, {self.num_classes - 1}] for a model with {self.num_classes} outputs"
            )
        if inputs_bad:
            raise ValueError(
                f"the batch holds {int(non_finite.sum())} non-finite input values (NaN or inf): "
                "check the data and its preprocessing"
            )

    def extra_repr(self) -> str:
        defaults = self.options()
        changed = [
            f"{key}={getattr(self, key)!r}"
            for key, default in defaults.items()
            if key != "num_classes" and _differs(getattr(self, key), default)
        ]
        return ", ".join([f"model={type(self.model).__name__}", *changed])


def _differs(value: Any, default: Any) -> bool:
    if isinstance(value, torch.Tensor) or isinstance(default, torch.Tensor):
        return value is not default
    try:
        return bool(value != default)
    except (TypeError, RuntimeError):
        return value is not default


def optimizer(
    rule: Rule, optimizer_class: type[torch.optim.Optimizer], **hyperparameters: Any
) -> torch.optim.Optimizer:
    """The optimizer of a rule's training: ``optimizer_class`` over ``rule.trained_parameters()``
    (the model's parameters and the rule's own, such as KP's B and PFA's R), attached to the
    rule for the rules that apply their updates during ``step``.

    Example:
        >>> rule = bpfree.build("kp", model)
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01, momentum=0.9)
        >>> rule.step(x, y); opt.step()
    """
    built = optimizer_class(rule.trained_parameters(), **hyperparameters)
    object.__setattr__(rule, "_optimizer", built)
    return built


def infer_num_classes(model: nn.Module) -> int:
    """The output width of the model's last ``nn.Linear``: its number of classes."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"cannot infer the number of classes of {type(model).__name__}: it has no nn.Linear; "
            "pass num_classes= to the rule"
        )
    return linears[-1].out_features
