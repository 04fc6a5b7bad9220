"""The PEPITA paper's training settings (ICML 2022, App. A, Table 2), fully connected models."""

from __future__ import annotations

# Learning rate by dataset and rule. DFA is not in the paper's table: it takes FA's rate.
LEARNING_RATES: dict[str, dict[str, float]] = {
    "mnist": {"bp": 0.1, "fa": 0.1, "dfa": 0.1, "drtp": 0.01, "pepita": 0.1},
    "cifar10": {"bp": 0.01, "fa": 0.001, "dfa": 0.001, "drtp": 0.001, "pepita": 0.01},
    "cifar100": {"bp": 0.01, "fa": 0.001, "dfa": 0.001, "drtp": 0.001, "pepita": 0.01},
}
LEARNING_RATES["fashion-mnist"] = LEARNING_RATES["mnist"]

# Epochs at which the learning rate is multiplied by 0.1.
DECAY_EPOCHS: dict[str, list[int]] = {
    "mnist": [60],
    "fashion-mnist": [60],
    "cifar10": [60, 90],
    "cifar100": [60, 90],
}

# Hidden non-linearity by rule: DRTP ran with tanh in the paper, every other rule with ReLU.
ACTIVATIONS: dict[str, str] = {"drtp": "tanh"}

FALLBACK_LEARNING_RATE = 0.01


def default_learning_rate(dataset: str, rule: str) -> float:
    """Table 2's learning rate for (dataset, rule), or 0.01 where the paper gives none."""
    return LEARNING_RATES.get(dataset, {}).get(rule, FALLBACK_LEARNING_RATE)


def default_decay_epochs(dataset: str) -> list[int]:
    """Table 2's decay epochs for the dataset."""
    return list(DECAY_EPOCHS.get(dataset, [60, 90]))


def default_activation(rule: str) -> str:
    """The hidden non-linearity the paper used with the rule."""
    return ACTIVATIONS.get(rule, "relu")
