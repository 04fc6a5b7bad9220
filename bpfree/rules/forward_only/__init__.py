"""Forward-only rules: two forward passes, the second on the error-modulated input, no backward."""

from bpfree.rules.forward_only.afa import AFA
from bpfree.rules.forward_only.hebbian import HEBBIAN_TERMS, PEPITAHebbian
from bpfree.rules.forward_only.mechanism import ModulatedInputRule, Term, TwoPassTerms
from bpfree.rules.forward_only.pepita import PEPITA
from bpfree.rules.forward_only.pepita_wm import PEPITAWeightMirror
from bpfree.rules.forward_only.time_local import PEPITATimeLocal
from bpfree.rules.forward_only.two_pass import TwoPassRule

__all__ = [
    "AFA",
    "HEBBIAN_TERMS",
    "PEPITA",
    "ModulatedInputRule",
    "PEPITAHebbian",
    "PEPITATimeLocal",
    "PEPITAWeightMirror",
    "Term",
    "TwoPassRule",
    "TwoPassTerms",
]
