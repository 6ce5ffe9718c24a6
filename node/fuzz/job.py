"""One fuzzing job in its own process: `python -m node.fuzz.job '<json>'` (started by `pocnet fuzz`).

A process of its own because statement coverage must start before the first module of the project is
imported (else every `def` line counts as missed), because atheris instruments modules as they are
imported, and because `--jobs N` runs N of them on N cores. The JSON holds `Campaign`'s fields plus
`engine` ("mutational" or "atheris") and `coverage_file` (empty: no coverage).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

# Packages whose statement coverage a campaign reports (and that atheris instruments), less the fuzzer's
# own code: its coverage says nothing about pocnet's.
MEASURED = ["protocols", "node"]
NOT_MEASURED = ["*/node/fuzz/*", "*/protocols/fuzz/*"]


def start_coverage(data_file: str) -> Any:
    import coverage

    cov = coverage.Coverage(data_file=data_file, source_pkgs=MEASURED, omit=NOT_MEASURED)
    cov.start()
    return cov


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    # A fuzzed node logs every rejection it makes (thousands a second): only its errors belong on the
    # campaign's console, between the progress lines.
    # The handler's level, not only the root's: libp2p's records propagate from a logger set to WARNING.
    handler = logging.StreamHandler()
    handler.setLevel(logging.ERROR)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s", handlers=[handler])
    cov = start_coverage(spec.pop("coverage_file")) if spec.get("coverage_file") else None
    spec.pop("coverage_file", None)
    engine = spec.pop("engine")
    try:
        if engine == "atheris":
            from node.fuzz.libfuzzer import run_atheris

            run_atheris(spec, on_exit=lambda: _save(cov))  # never returns: libFuzzer exits the process
            return 0
        from pathlib import Path

        from node.fuzz.runner import Campaign, run_campaign

        paths = {k: Path(v) for k, v in spec.items() if k in ("corpus", "crash_dir") and v is not None}
        stats = run_campaign(Campaign(**{**spec, **paths}))
        return 1 if stats.crash_files else 0
    finally:
        _save(cov)


def _save(cov: Any) -> None:
    if cov is not None:
        cov.stop()
        cov.save()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
