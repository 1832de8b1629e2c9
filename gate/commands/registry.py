"""`gate registry ...`: list, show, diff, export (jsonl, csv, MLflow), import, sync; incidents."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gate.errors import InputError

HELP = "query the run registry (list, show, diff, export, import, sync, incident, migrate)"

VERDICTS = ("pass", "fail", "inconclusive", "error")


def add_registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", default=None, metavar="PATH|URL",
                        help="registry: a SQLite path or postgresql://USER:PASSWORD@HOST:5432/DB "
                             "(default: $GATE_REGISTRY_URL, else .gate/registry.db)")


def registry_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from gate.registry import Registry

    return Registry(args.registry)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="registry_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="list runs, newest first")
    p.add_argument("--model")
    p.add_argument("--verdict", choices=VERDICTS)
    p.add_argument("--since", help="ISO date or timestamp (inclusive)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--format", choices=["terminal", "json"], default="terminal")
    add_registry_option(p)
    p = sub.add_parser("show", help="show one run")
    p.add_argument("id", type=int)
    add_registry_option(p)
    p = sub.add_parser("diff", help="what changed between two runs (config, versions, metrics)")
    p.add_argument("a", type=int)
    p.add_argument("b", type=int)
    add_registry_option(p)
    p = sub.add_parser("export", help="export runs (jsonl keeps everything; csv for spreadsheets; mlflow back-fills "
                                      "a tracking server)")
    p.add_argument("--format", choices=["jsonl", "csv", "mlflow"], default="jsonl")
    p.add_argument("--out", type=Path, default=None, help="file to write (default: stdout; not for mlflow)")
    add_mlflow_options(p)
    add_registry_option(p)
    p = sub.add_parser("sync", help="upload runs queued while the registry was unreachable")
    p.add_argument("--queue", type=Path, default=None,
                   help="queue file (default: $GATE_REGISTRY_QUEUE, else .gate/registry-queue.jsonl)")
    add_registry_option(p)
    p = sub.add_parser("import", help="import a jsonl export (runs already present are skipped)")
    p.add_argument("file", type=Path)
    add_registry_option(p)
    p = sub.add_parser("incident", help="record a regression incident that reached production")
    p.add_argument("model")
    p.add_argument("--note", required=True)
    p.add_argument("--run", type=int, default=None, help="the run id the incident is attributed to")
    add_registry_option(p)
    p = sub.add_parser("migrate", help="create or upgrade the registry schema")
    add_registry_option(p)


def run(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    action = args.registry_command
    if action == "list":
        records = registry.list_runs(model=args.model, verdict=args.verdict, since=args.since, limit=args.limit)
        if args.format == "json":
            print(json.dumps([_summary(r) for r in records], indent=2))
        else:
            _print_list(records)
        return 0
    if action == "show":
        record = registry.get(args.id)
        print(json.dumps({**_summary(record), "runtime": record.runtime, "result": record.result}, indent=2))
        return 0
    if action == "diff":
        from gate.registry.diff import diff_runs

        changes = diff_runs(registry.get(args.a), registry.get(args.b))
        if not changes:
            print(f"runs {args.a} and {args.b} are identical in config, runtime and metrics")
        for change in changes:
            print(f"{change.section:8} {change.key}: {change.before} -> {change.after}")
        return 0
    if action == "export" and args.format == "mlflow":
        return _export_mlflow(registry, args)
    if action == "export":
        from gate.registry.exchange import export_csv, export_jsonl

        records = registry.list_runs(limit=None)[::-1]
        text = export_jsonl(records) if args.format == "jsonl" else export_csv(records)
        if args.out:
            args.out.write_text(text, encoding="utf-8")
            print(f"exported {len(records)} runs to {args.out}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0
    if action == "import":
        from gate.registry.exchange import read_jsonl

        imported, skipped = registry.import_rows(read_jsonl(args.file))
        print(f"imported {imported} runs, skipped {skipped} already present")
        return 0
    if action == "sync":
        from gate.registry.queue import pending, queue_path, sync

        queue = queue_path(args.queue)
        waiting = pending(queue)
        if not waiting:
            print(f"nothing to sync: {queue} holds no queued runs")
            return 0
        imported, skipped = sync(queue, registry)
        print(f"synced {waiting} queued runs to {registry.shown}: {imported} recorded, {skipped} already present")
        return 0
    if action == "incident":
        incident_id = registry.add_incident(args.model, args.note, run_id=args.run)
        print(f"recorded incident {incident_id} for {args.model}")
        return 0
    if action == "migrate":
        print(f"registry schema version {registry.migrate()}")
        return 0
    raise InputError(f"unknown registry action {action!r}")


def add_mlflow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mlflow-uri", dest="mlflow_uri", default=None, metavar="URI",
                        help="MLflow tracking server (default: $MLFLOW_TRACKING_URI)")
    parser.add_argument("--mlflow-experiment", dest="mlflow_experiment", default=None, metavar="NAME",
                        help="MLflow experiment (default: $MLFLOW_EXPERIMENT_NAME, else quant-gate)")


def mlflow_uri_from(args: argparse.Namespace) -> str | None:
    import os

    from gate.registry.mlflow_export import URI_ENV

    return args.mlflow_uri or os.environ.get(URI_ENV) or None


def _export_mlflow(registry, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from gate.registry.mlflow_export import MlflowUnavailable, experiment_name, log_rows, shown_uri
    from gate.registry.store import RUN_COLUMNS

    uri = mlflow_uri_from(args)
    if not uri:
        raise InputError("--format mlflow needs a tracking server",
                         hint="pass --mlflow-uri http://mlflow.internal:5000 or set MLFLOW_TRACKING_URI")
    if args.out is not None:
        raise InputError("--out does not apply to --format mlflow", hint="drop --out: runs go to the tracking server")
    records = registry.list_runs(limit=None)[::-1]
    rows = [{c: getattr(r, c) for c in RUN_COLUMNS} for r in records]
    try:
        logged, skipped = log_rows(rows, uri, experiment=args.mlflow_experiment)
    except MlflowUnavailable as exc:
        raise InputError(str(exc), hint="check the URI and that the server is up; runs already logged are "
                                        "skipped when you retry") from None
    print(f"exported {len(logged)} runs to MLflow at {shown_uri(uri)} (experiment "
          f"{experiment_name(args.mlflow_experiment)!r}), skipped {skipped} already there")
    return 0


def _summary(record) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {
        "id": record.id, "recorded_at": record.recorded_at, "model": record.model, "verdict": record.verdict,
        "method": record.method, "bits": record.bits, "group_size": record.group_size, "format": record.format,
        "git_commit": record.git_commit, "spec_sha256": record.spec_sha256, "duration_s": record.duration_s,
    }


def _print_list(records) -> None:  # type: ignore[no-untyped-def]
    from gate.registry.listing import render_runs

    sys.stdout.write(render_runs(records))
