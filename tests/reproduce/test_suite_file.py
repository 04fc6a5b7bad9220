"""Suite files: the shipped ones load, and a malformed one names its row and key."""

import pytest

from bpfree.reproduce import SuiteError, available_suites, load_suite
from bpfree.reproduce.suite import parse_suite

GOOD = """
title: a table
seeds: [0, 1]
tolerance: 0.5
defaults: {hidden: [8], epochs: 2}
rows:
  - {name: a, config: {rule: bp, dataset: mnist}, paper: {mean: 90.0, std: 1.0}}
  - {name: b, config: {rule: pepita, dataset: mnist, epochs: 3}, paper: 80, tolerance: 2}
  - {name: c, config: {rule: not-yet-a-rule, dataset: mnist}}
"""


@pytest.mark.parametrize("name", available_suites())
def test_every_shipped_suite_loads(name):
    suite = load_suite(name)
    assert suite.rows and suite.seeds


def test_a_good_suite_merges_defaults_and_row_settings():
    suite = parse_suite(GOOD, name="t")
    a, b, c = suite.rows
    assert a.config == {"hidden": [8], "epochs": 2, "rule": "bp", "dataset": "mnist"}
    assert (a.paper.mean, a.paper.std, a.tolerance) == (90.0, 1.0, 0.5)
    assert (b.config["epochs"], b.paper.mean, b.paper.std, b.tolerance) == (3, 80.0, None, 2.0)
    assert b.train_config(seed=1).seed == 1 and b.train_config(seed=1).lr == 0.1
    assert c.rule == "not-yet-a-rule" and suite.run_folder == "t"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("paper: 80, tolerance: 2", "paper: 80, tolerence: 2"),
            r"row 2 \(b\): unknown key 'tolerence'",
        ),
        (("epochs: 3}", "epochs: 3, wings: 2}"), r"unknown key 'wings' in .*row 2 \(b\)"),
        (("epochs: 3}", "epochs: many}"), r"'epochs' in .*row 2 \(b\) must be"),
        (("epochs: 3}", "epochs: 0}"), r"row 2 \(b\).*'epochs'"),
        (("paper: 80,", "paper: {avg: 80},"), r"row 2 \(b\): 'paper' must be"),
        (
            ("{name: b, config: {rule: pepita, dataset: mnist, epochs: 3}, ", "{name: b, "),
            r"row 2 \(b\): missing key 'config'",
        ),
        (("name: c", "name: a"), "repeated: a"),
        (("seeds: [0, 1]", "seeds: []"), "'seeds' must be a non-empty list"),
        (("seeds: [0, 1]", "seeds: [0, 0]"), "lists a seed twice"),
        (
            ("dataset: mnist}, paper: {", "dataset: mnist, seed: 3}, paper: {"),
            r"row 1 \(a\): 'config' sets 'seed'",
        ),
        (("title: a table", "titel: a table"), "unknown key 'titel'"),
    ],
)
def test_a_malformed_suite_names_the_row_and_the_key(change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(SuiteError, match=message):
        parse_suite(GOOD.replace(old, new, 1), name="t")


def test_unknown_suite_and_missing_file(tmp_path):
    with pytest.raises(
        SuiteError, match=r"no suite named 'nope'; shipped suites: .*icml-table1-fc"
    ):
        load_suite("nope")
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite(tmp_path / "missing.yaml")


def test_a_text_suite_takes_the_lowest_validation_perplexity_and_may_only_show_the_paper():
    from bpfree.reproduce.aggregate import RowResult, run_value

    curve = [{"val_ppl": 90.0, "test_acc": 10.0}, {"val_ppl": 70.0, "test_acc": 12.0},
             {"val_ppl": 75.0, "test_acc": 11.0}]  # fmt: skip
    assert run_value("best_val_ppl", curve) == 70.0
    assert run_value("best_test_acc", curve) == 12.0 and run_value("test_acc", curve) == 11.0
    suite = load_suite("grape-table3-text")
    assert suite.metric == "best_val_ppl"
    row = next(r for r in suite.rows if r.name == "micro-grape")
    assert row.tolerance is None and row.paper.mean == 84.8
    config = row.train_config(0)
    assert config.rule_options == {"points": "micro", "feedback_lr": 1.0} and config.lr == 1e-3
    result = RowResult(row, status="complete", seeds_planned=1, value=70.0)
    assert result.verdict == "for reference"
