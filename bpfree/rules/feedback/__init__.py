"""Weight-transport-free feedback: a backward pass through separate feedback weights."""

from bpfree.rules.feedback.fa import FA
from bpfree.rules.feedback.kp import KP
from bpfree.rules.feedback.mechanism import FeedbackMode, FeedbackRule, convertible_layers
from bpfree.rules.feedback.pfa import PFA, PFAOrthogonal
from bpfree.rules.feedback.sign_symmetry import BRSF, FRSF, USF, SignSymmetry
from bpfree.rules.feedback.wm import WM

__all__ = [
    "BRSF",
    "FA",
    "FRSF",
    "KP",
    "PFA",
    "USF",
    "WM",
    "FeedbackMode",
    "FeedbackRule",
    "PFAOrthogonal",
    "SignSymmetry",
    "convertible_layers",
]
