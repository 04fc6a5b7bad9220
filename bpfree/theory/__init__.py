"""Teacher-student theory of BP, FA, DFA, AFA and PEPITA in two-layer networks (ICLR 2024 §3).

Online SGD simulations (`simulate`) and the closed ODEs of their order parameters
(`integrate`), run side by side by `run`; the derivation is in docs/theory.md.
"""

from bpfree.theory.files import save
from bpfree.theory.integrals import activation, activation_derivative, i2, i3, i4, j3
from bpfree.theory.model import RULES, Networks, check_rule, draw_networks, ode_rule
from bpfree.theory.odes import derivatives, integrate
from bpfree.theory.order_parameters import OrderParameters, Trajectory, angle, degenerate_angle
from bpfree.theory.result import TheoryRun, alignment_time, escape_time
from bpfree.theory.run import run, time_grid
from bpfree.theory.simulation import simulate

__all__ = [
    "RULES",
    "Networks",
    "OrderParameters",
    "TheoryRun",
    "Trajectory",
    "activation",
    "activation_derivative",
    "alignment_time",
    "angle",
    "check_rule",
    "degenerate_angle",
    "derivatives",
    "draw_networks",
    "escape_time",
    "i2",
    "i3",
    "i4",
    "integrate",
    "j3",
    "ode_rule",
    "run",
    "save",
    "simulate",
    "time_grid",
]
