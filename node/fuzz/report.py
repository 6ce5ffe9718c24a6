"""Statement coverage of a campaign, per module, from the jobs' coverage data files (`coverage` package,
part of the optional extra `pocnet[fuzz]`)."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import TextIO

from node.fuzz.job import MEASURED, NOT_MEASURED


def coverage_available() -> bool:
    return importlib.util.find_spec("coverage") is not None


def report_coverage(data_files: list[Path], out: TextIO) -> dict[str, float]:
    """Combine the jobs' data files, print a table per module and a line per package; return the
    per-package percentages (`protocols`, `node`)."""
    import coverage

    existing = [str(f) for f in data_files if f.exists()]
    if not existing:
        print("no coverage data (did every job fail to start?)", file=out)
        return {}
    base = Path(existing[0]).with_name("coverage-combined")
    cov = coverage.Coverage(data_file=str(base), source_pkgs=MEASURED, omit=NOT_MEASURED)
    cov.combine(existing, keep=False)
    cov.save()
    print("\nstatement coverage per module:", file=out)
    cov.report(file=out, skip_covered=False, skip_empty=True, ignore_errors=True)
    totals = {}
    for package in MEASURED:
        totals[package] = cov.report(include=[f"*/{package}/*"], file=io.StringIO(), ignore_errors=True)  # its total only
    print("  ".join(f"{package}/: {percent:.1f}%" for package, percent in totals.items()), file=out)
    return totals
