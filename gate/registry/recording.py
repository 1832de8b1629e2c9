"""Recording one finished run: into the registry, or into the local queue when the registry
cannot take it. Either way the run's verdict stands; the stage record says what happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gate.registry.engine import RegistryError, parse_target
from gate.registry.queue import enqueue
from gate.registry.store import Registry
from gate.result import StageRecord, StageStatus


def record_or_queue(row: dict[str, Any], location: str | Path, queue: Path,
                    *, say: Callable[[str], None]) -> StageRecord:
    start = time.perf_counter()
    registry = Registry(parse_target(location))
    try:
        run_id = registry.record_row(row)
    except RegistryError as exc:
        try:
            enqueue(queue, row)
        except OSError as os_exc:
            message = f"{exc}; the record could NOT be queued either ({queue}: {os_exc.strerror}): it is lost"
        else:
            message = (f"{str(exc).splitlines()[0]}; the verdict stands and the record was queued to {queue}: "
                       "run `gate registry sync` (same --registry / GATE_REGISTRY_URL) once the registry is back")
        return StageRecord(stage="registry", status=StageStatus.failed, seconds=time.perf_counter() - start, message=message)
    finally:
        registry.dispose()
    say(f"registry: recorded run {run_id}")
    return StageRecord(stage="registry", status=StageStatus.ok, seconds=time.perf_counter() - start,
                       message=f"run {run_id} in {registry.shown}")
