"""A teacher-student run written to a folder: its curves as CSV and JSON, and its figures."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from bpfree.core.files import write_text
from bpfree.theory.plots import plot_alignment, plot_generalisation_error
from bpfree.theory.result import TheoryRun


def save(result: TheoryRun, folder: Path) -> list[Path]:
    """Write ``curves.csv``, ``curves.json`` (settings, summary, curves; NaN as null) and, when
    matplotlib is installed, ``eps_g.png`` and ``angles.png`` into folder; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    curves = result.curves()
    csv_path, json_path = folder / "curves.csv", folder / "curves.json"
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(curves)
    writer.writerows(np.column_stack(list(curves.values())).tolist())
    write_text(csv_path, table.getvalue())
    document = {
        "settings": result.settings,
        "summary": result.summary(),
        "curves": {name: values.tolist() for name, values in curves.items()},
    }
    write_text(json_path, json.dumps(_nan_to_none(document), indent=1) + "\n")
    written = [csv_path, json_path]
    for name, plot in (("eps_g.png", plot_generalisation_error), ("angles.png", plot_alignment)):
        if plot(result, folder / name):
            written.append(folder / name)
    return written


def _nan_to_none(value: Any) -> Any:
    """The value with every float NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
