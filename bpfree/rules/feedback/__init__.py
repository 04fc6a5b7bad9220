"""Weight-transport-free feedback: a backward pass through separate feedback matrices."""

from bpfree.rules.feedback.fa import FA
from bpfree.rules.feedback.mechanism import FeedbackMode, FeedbackRule, convertible_layers

__all__ = ["FA", "FeedbackMode", "FeedbackRule", "convertible_layers"]
