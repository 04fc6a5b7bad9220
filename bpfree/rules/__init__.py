"""Learning rules: each writes ``.grad`` of the model's parameters; an optimizer applies it.

>>> rule = bpfree.rules.build("pepita", model)
>>> result = rule.step(x, y)   # result.loss, result.output
>>> optimizer.step()
"""

from bpfree.rules.base import Rule, StepResult
from bpfree.rules.bp import BP
from bpfree.rules.feedback import BRSF, FA, FRSF, KP, PFA, USF, WM, PFAOrthogonal
from bpfree.rules.forward_forward import FF, FFTopDown
from bpfree.rules.forward_gradient import FGActivity, FGWeight
from bpfree.rules.forward_only import (
    AFA,
    PEPITA,
    PEPITAHebbian,
    PEPITATimeLocal,
    PEPITAWeightMirror,
)
from bpfree.rules.projection import DFA, DRTP, GrAPE
from bpfree.rules.registry import RULES, build, get_rule, rule_options

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
    "FFTopDown",
    "FGActivity",
    "FGWeight",
    "GrAPE",
    "PEPITAHebbian",
    "PEPITATimeLocal",
    "PEPITAWeightMirror",
    "PFAOrthogonal",
    "Rule",
    "StepResult",
    "build",
    "get_rule",
    "rule_options",
]
