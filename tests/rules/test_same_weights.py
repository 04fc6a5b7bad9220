"""Every rule reaches the weights it reached before the package was redesigned (issue 19) and
before its step was rewritten to read nothing on the host and take fewer passes (issue 23).

``same_weights.py`` trains every registered rule with its default options and with the options
that hold extra state, for five seeded steps on an MLP and on each conv net it trains, and
digests the weights and feedback state. ``same_weights_table.json`` holds the digests recorded
with the code before the redesign, and the few that the redesign changed on purpose, each with
the reason (a random draw moved to the rule's own seeded stream), then those that the step's
rewrite changed (a value read on the host now computed on the device, GrAPE's two passes
made one), each with the reason; and the cases of options added later, as first recorded.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

# Kernels pinned so that the digests do not depend on the machine's vector instructions.
PINNED = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": "1"}


def test_every_rule_reaches_the_recorded_weights():
    table = json.loads((HERE / "same_weights_table.json").read_text())
    expected = dict(table["before_redesign"])
    for changes in ("changed_by_redesign", "changed_by_step_rewrite", "added_by_issue_25"):
        expected.update({case: change["sha256"] for case, change in table[changes].items()})
        assert all(change["why"] for change in table[changes].values())
    done = subprocess.run(
        [sys.executable, str(HERE / "same_weights.py")],
        env={**os.environ, **PINNED},
        capture_output=True,
        text=True,
        check=True,
    )
    digests = json.loads(done.stdout)
    assert digests.keys() == expected.keys()
    assert {case for case in digests if digests[case] != expected[case]} == set()
