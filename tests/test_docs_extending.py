"""docs/extending.md's worked example runs: its code blocks, in order, define a rule, train it,
and pass the rule contract and the example's closed-form test."""

import re
from pathlib import Path

import bpfree
from bpfree.rules import RULES

PAGE = Path(__file__).parents[1] / "docs" / "extending.md"


def test_the_worked_example_runs_and_passes_the_contract():
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)
    assert len(blocks) == 3
    namespace = {"bpfree": bpfree}
    try:
        for block in blocks:
            exec(compile(block, str(PAGE), "exec"), namespace)
        assert RULES["sign-dfa"] is namespace["SignDFA"]
        assert namespace["result"].output.shape == (64, 10)
    finally:
        RULES.pop("sign-dfa", None)
