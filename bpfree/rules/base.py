"""What every learning rule is: a module holding its own state, with one ``step`` per batch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class StepResult:
    """What ``Rule.step`` returns: the batch's loss and the logits of the clean forward pass."""

    loss: float
    output: torch.Tensor


class Rule(nn.Module):
    """Base class of the learning rules.

    A rule is built from a model and its hyperparameters. ``step(x, y)`` runs the rule's passes on
    one batch, writes ``.grad`` of every trainable parameter of the model (the direction to
    descend, averaged over the batch, as autograd would) and updates the rule's own feedback
    state; a ``torch.optim`` optimizer then applies the gradients.

    The model is referenced, not registered as a submodule: ``rule.state_dict()`` holds only the
    rule's own state (feedback matrices and the like), and ``rule.to(...)`` moves only that state.
    """

    name: ClassVar[str]
    # True for a rule that applies its updates itself, through the optimizer given to
    # ``bind_optimizer``, during its passes (PEPITA time-local); its ``step`` leaves ``.grad`` None.
    applies_own_updates: ClassVar[bool] = False

    def __init__(self, model: nn.Module, *, num_classes: int | None = None) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"a rule trains an nn.Module, got {type(model).__name__}")
        object.__setattr__(self, "model", model)
        self.num_classes = infer_num_classes(model) if num_classes is None else int(num_classes)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")

    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """Run the rule on one batch ``x`` with integer labels ``y`` and write every ``.grad``."""
        raise NotImplementedError

    def bind_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Give the rule the optimizer of its model. Only rules that apply their own updates
        (``applies_own_updates``) use it; for the others the caller's ``optimizer.step()``
        applies what ``step`` wrote."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (n, classes) whose argmax is the prediction: the model's logits, unless
        the rule predicts otherwise (Forward-Forward: the goodness of each label)."""
        return self.model(x)

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss the rule descends (softmax cross-entropy), also BP's reference for it."""
        return F.cross_entropy(output, y)

    def check_batch(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Raise a ``ValueError`` that says what is wrong with a batch: no samples, a non-finite
        input, or labels of the wrong shape, type or range. One host sync for all of it."""
        if x.shape[0] == 0:
            raise ValueError(f"the batch is empty (shape {tuple(x.shape)}): a step needs a sample")
        if y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"labels must have shape (batch,) = ({x.shape[0]},), got {tuple(y.shape)}"
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
        return f"model={type(self.model).__name__}, num_classes={self.num_classes}"


def infer_num_classes(model: nn.Module) -> int:
    """The output width of the model's last ``nn.Linear``: its number of classes."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"cannot infer the number of classes of {type(model).__name__}: it has no nn.Linear; "
            "pass num_classes= to the rule"
        )
    return linears[-1].out_features


def feedback_generator(seed: int, rule_name: str) -> torch.Generator:
    """The generator a rule draws its random feedback from, for a given seed.

    The stream is derived from (seed, rule name), so it never coincides with a model initialised
    from ``torch.Generator().manual_seed(seed)``: with the same seed, a shared stream would draw
    FA's B_l equal to W_lᵀ.
    """
    digest = hashlib.sha256(f"bpfree feedback {rule_name} {seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def check_sparsity(sparsity: float) -> float:
    """A fraction of feedback weights held at zero (PFA paper Sec. 7), checked to lie in [0, 1)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must lie in [0, 1), got {sparsity!r}")
    return float(sparsity)


def sparse_mask(
    shape: torch.Size, sparsity: float, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """A fixed 0/1 mask holding a fraction ``sparsity`` of the feedback weights at zero."""
    keep = torch.rand(shape, generator=generator) >= sparsity
    return keep.to(device=like.device, dtype=like.dtype)


def one_hot(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """The one-hot targets t (n, c) of integer labels y (n,)."""
    t = torch.zeros(y.shape[0], num_classes, dtype=dtype, device=y.device)
    return t.scatter_(1, y.unsqueeze(1), 1.0)


def clear_grads(model: nn.Module) -> None:
    """Drop every ``.grad`` so that the next backward writes fresh gradients instead of adding."""
    for p in model.parameters():
        p.grad = None


class BufferList(nn.Module):
    """An indexable list of registered buffers (``B.0``, ``B.1``, ... in the state dict)."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        super().__init__()
        for i, tensor in enumerate(tensors):
            self.register_buffer(str(i), tensor)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self._buffers[str(index % len(self))]

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self):
        return iter(self._buffers.values())
