"""Direct projection: the output error (DFA, GrAPE) or target (DRTP) sent straight to each layer."""

from bpfree.rules.projection.dfa import DFA
from bpfree.rules.projection.drtp import DRTP
from bpfree.rules.projection.grape import GrAPE
from bpfree.rules.projection.mechanism import ProjectionRule

__all__ = ["DFA", "DRTP", "GrAPE", "ProjectionRule"]
