"""A rule's training step captured by ``torch.compile``: the rule's step as one graph, so that a
small network's step costs its arithmetic rather than the launch of every kernel and the Python
between them.

>>> step = bpfree.compiled_step(rule, opt)            # mode="reduce-overhead": CUDA graphs
>>> for x, y in batches:
...     result = step(x, y)                           # rule.step compiled, then opt.step

A rule whose step cannot be captured whole says why (``Rule.uncapturable``); its step then runs
eagerly, after one logged line that says so.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from contextlib import ExitStack

import torch

from bpfree.rules.base import Rule, StepResult

logger = logging.getLogger(__name__)


class CompiledStep:
    """``step(x, y)``: the rule's step through ``torch.compile``, then the optimizer's step.

    The rule's step goes through ``torch.compile(fullgraph=True)``: it is one graph, or its first
    compiled call raises. The batch is not checked in it (``check=False``: check the data where
    it enters). ``mode`` and ``backend`` are ``torch.compile``'s (``mode="reduce-overhead"``
    replays the graph as a CUDA graph). The optimizer's step runs eagerly after it: torch's
    optimizers switch the grad mode between two graph breaks, and a graph that writes ``.grad``
    cannot hand them over to an optimizer in the same graph (a mutation pending on a
    parameter); compiled apart, torch 2.13 replays the wrong frame after a rule graph that
    traced ``backward()``. SGD's step is a few fused (``foreach``) kernels.

    The first step runs eagerly (and any step after ``eager_next()``): it builds what a rule
    learns at its first step, so that the graph only updates state that exists. Each batch
    shape is a static graph of its own (``dynamic=False``: the last, smaller batch of an epoch
    is a second graph), so that a step's kernels do not depend on the shapes seen before it.
    Dropout masks in the graph come from torch's generators, as in the eager step
    (``fallback_random``): a compiled run draws the masks the eager one would.
    """

    def __init__(
        self,
        rule: Rule,
        optimizer: torch.optim.Optimizer,
        *,
        mode: str | None = None,
        backend: str = "inductor",
    ) -> None:
        self.rule, self.optimizer = rule, optimizer
        self.reason = type(rule).uncapturable
        self.warm = False  # whether the eager first step has run
        if self.reason is not None:
            logger.warning("%s's step runs eagerly, not compiled: %s", rule.name, self.reason)
            return
        self._rule_step = torch.compile(
            _own_code(_rule_step_of(rule)),
            fullgraph=True,
            dynamic=False,
            mode=mode,
            backend=backend,
        )

    @property
    def captured(self) -> bool:
        """Whether the rule's step runs compiled (after the first)."""
        return self.reason is None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """One training step on (x, y)."""
        result = self.rule_step(x, y)
        self.optimizer.step()
        return result

    def eager_next(self) -> None:
        """Run the next step eagerly, as the first. The trainer asks it at each epoch's first
        step: a run resumed at an epoch, whose first step must be eager, then steps exactly as
        the uninterrupted run."""
        self.warm = False

    def rule_step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """``rule.step(x, y, check=False)``, compiled after the first call."""
        if not self.captured or not self.warm:
            self.warm = True
            return self.rule.step(x, y, check=False)
        with _compiling():
            loss, output = self._rule_step(x, y)
        return StepResult(loss, output)


def mode_for(device: torch.device) -> str | None:
    """``torch.compile``'s mode for a step on ``device``: CUDA graphs on a GPU
    (``"reduce-overhead"``), the default (inductor's kernels) elsewhere."""
    return "reduce-overhead" if device.type == "cuda" else None


def _rule_step_of(rule: Rule) -> Callable[[torch.Tensor, torch.Tensor], tuple]:
    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        result = rule.step(x, y, check=False)
        return result.loss, result.output

    return step


def _own_code(function: Callable) -> Callable:
    """``function`` with a code object of its own. ``torch.compile`` keeps its graphs, and
    checks their guards at every call, per code object: each compiled step then holds only its
    own graphs (one per batch shape), however many steps a process compiles."""
    return types.FunctionType(
        function.__code__.replace(),
        function.__globals__,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )


def _compiling() -> ExitStack:
    """The compiler settings a captured step needs, set while it is traced (and replayed):
    ``loss.backward()`` traced into the graph, and random draws by torch's generators."""
    stack = ExitStack()
    stack.enter_context(torch._dynamo.config.patch(trace_autograd_ops=True))
    stack.enter_context(torch._inductor.config.patch(fallback_random=True))
    return stack


def compiled_step(
    rule: Rule,
    optimizer: torch.optim.Optimizer,
    *,
    mode: str | None = None,
    backend: str = "inductor",
) -> CompiledStep:
    """The training step of ``rule`` with ``optimizer``, compiled (see ``CompiledStep``).

    Example:
        >>> rule = bpfree.build("dfa", model)
        >>> opt = bpfree.optimizer(rule, torch.optim.SGD, lr=0.01, momentum=0.9)
        >>> step = bpfree.compiled_step(rule, opt, mode="reduce-overhead")
        >>> for x, y in batches:
        ...     step(x, y)
    """
    return CompiledStep(rule, optimizer, mode=mode, backend=backend)
