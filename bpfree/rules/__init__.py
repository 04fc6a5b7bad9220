"""Learning rules: each writes ``.grad`` of the model's parameters; an optimizer applies it.

>>> rule = bpfree.rules.build("pepita", model)
>>> opt = bpfree.rules.optimizer(rule, torch.optim.SGD, lr=0.1)
>>> result = rule.step(x, y)   # result.loss, result.output
>>> opt.step()

Layout: ``base`` (the contract every rule keeps), ``common/`` (what several families use), one
folder per family (``feedback``, ``projection``, ``forward_only``, ``forward_forward``,
``forward_gradient``), each with its ``mechanism`` and one file per rule; ``bp`` the reference;
``compiled`` the step through ``torch.compile``.
"""

from bpfree.rules.base import Rule, StepResult, optimizer
from bpfree.rules.bp import BP
from bpfree.rules.common.options import Option
from bpfree.rules.compiled import CompiledStep, compiled_step
from bpfree.rules.feedback import BRSF, FA, FRSF, KP, PFA, USF, WM, FeedbackRule, PFAOrthogonal
from bpfree.rules.forward_forward import FF, FFTopDown
from bpfree.rules.forward_gradient import FGActivity, FGWeight
from bpfree.rules.forward_only import (
    AFA,
    PEPITA,
    PEPITAHebbian,
    PEPITATimeLocal,
    PEPITAWeightMirror,
    Term,
    TwoPassRule,
    TwoPassTerms,
)
from bpfree.rules.projection import DFA, DRTP, GrAPE, ProjectionRule
from bpfree.rules.registry import RULES, build, get_rule, register, rule_options

__all__ = [
    "AFA",
    "BP",
    "BRSF",
    "DFA",
    "DRTP",
    "FA",
    "FF",
    "FRSF",
    "KP",
    "PEPITA",
    "PFA",
    "RULES",
    "USF",
    "WM",
    "CompiledStep",
    "FFTopDown",
    "FGActivity",
    "FGWeight",
    "FeedbackRule",
    "GrAPE",
    "Option",
    "PEPITAHebbian",
    "PEPITATimeLocal",
    "PEPITAWeightMirror",
    "PFAOrthogonal",
    "ProjectionRule",
    "Rule",
    "StepResult",
    "Term",
    "TwoPassRule",
    "TwoPassTerms",
    "build",
    "compiled_step",
    "get_rule",
    "optimizer",
    "register",
    "rule_options",
]
