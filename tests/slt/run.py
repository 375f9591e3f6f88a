"""Run sqllogictest scripts against an engine and print the pass-rate table.

    .venv/bin/python -P tests/slt/run.py --all ../shared/conformance
    .venv/bin/python -P tests/slt/run.py --engine sqlite --max-records 500 select1.test

Exit status: 0 when every file met its target (100% for select1-3 and
evidence/, 95% otherwise), 1 when some did not, 2 when the run could not start.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# ``python -P`` does not put the script's directory on sys.path (so the source
# tree's helios is never shadowing the installed one); add just this directory.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import slt  # noqa: E402 - a sibling module, importable only after the line above


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="script files to run")
    parser.add_argument("--engine", choices=sorted(slt.ENGINES), default="helios")
    parser.add_argument("--all", dest="roots", action="append", type=Path, default=[], metavar="DIR",
                        help="run every *.test under DIR (recursive); may repeat")
    parser.add_argument("--max-records", type=int, metavar="N", help="take only the first N records of each file")
    parser.add_argument("--max-failures", type=int, metavar="N", help="stop a file after N failures")
    parser.add_argument("--show-failures", type=int, default=0, metavar="K",
                        help="print the first K failures with expected and actual results")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="per-record budget: slower records are listed (and aborted if the engine can)")
    parser.add_argument("--progress", action="store_true", help="print a line every --progress-every records")
    parser.add_argument("--progress-every", type=int, default=2000, metavar="N")
    return parser.parse_args(argv)


def _targets(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """(path, display name): files under each root are named relative to it."""
    found: list[tuple[Path, str]] = []
    for root in args.roots:
        found += [(path, str(path.relative_to(root))) for path in slt.discover(root)]
    found += [(path, str(path)) for path in args.files]
    return found


def _print_failures(reports: list[slt.FileReport], limit: int) -> None:
    shown = 0
    for report in reports:
        for failure in report.failures:
            if shown == limit:
                return
            print(slt.format_failure(failure), end="\n\n")
            shown += 1


def _print_slow(reports: list[slt.FileReport], limit: float) -> None:
    slow = [record for report in reports for record in report.slow]
    if slow:
        print(f"{len(slow)} records took longer than {limit}s:")
        for record in sorted(slow, key=lambda r: -r.seconds)[:20]:
            print(f"  {record.seconds:9.4f}s  {record.where}  {record.sql.splitlines()[0][:80]}")
        print()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    targets = _targets(args)
    missing = [name for path, name in targets if not path.is_file()]
    if not targets or missing:
        print("no script files given" if not targets else f"no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    factory = slt.ENGINES[args.engine]
    try:
        factory().close()  # fail now, clearly, if the engine cannot even open
    except slt.EngineUnavailable as exc:
        print(f"engine {args.engine} is unavailable: {exc}", file=sys.stderr)
        return 2

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    options = slt.RunOptions(max_records=args.max_records, max_failures=args.max_failures,
                             record_timeout=args.timeout, progress_every=args.progress_every,
                             progress=progress if args.progress else None)
    runner = slt.Runner(factory, options)
    reports = []
    for path, name in targets:
        report = runner.run_file(path, name)
        reports.append(report)
        if args.progress:
            progress(f"{name}: done, {100 * report.pass_rate:.2f}% of {report.run} in {report.seconds:.1f}s")
    _print_failures(reports, args.show_failures)
    if args.timeout is not None:
        _print_slow(reports, args.timeout)
    print(f"engine: {args.engine}")
    print(slt.format_table(reports))
    return 0 if all(report.met_target for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
