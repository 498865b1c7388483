"""``python -m bench``: validate, run, inspect and report ablation suites.

    python -m bench validate all_arms                   # check a suite file without running it
    python -m bench run all_arms [--results DIR] [--only 'v2*'] [--dry-run] [--workers 2]
    python -m bench status all_arms [--results DIR]     # done / running / submitted / failed / pending
    python -m bench time all_arms [--results DIR] [--only 'v2*']  # redo the timing pass (run does it once at the end)
    python -m bench report --results DIR --out DIR      # Markdown report from the results alone

A suite is a path to a YAML file or a name: NAME.yaml in $DIFFUSEQ_SUITES_DIR, ./ablations/suites,
then the built-in suites. Results default to results/<suite name>/. Named datasets are read from
$DIFFUSEQ_DATA_ROOT. Exit status: 0 done, 2 a clean error (one `error:` line), 1 a bug or failed cells.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from diffuseq.cli import run_command


def _plan_and_results(args: argparse.Namespace):
    from bench.parallel import resolve
    from bench.plan import load_plan

    plan = resolve(load_plan(args.suite), getattr(args, "workers", None))
    return plan, args.results or Path("results") / plan.suite.name


def cmd_validate(args: argparse.Namespace) -> int:
    plan, _ = _plan_and_results(args)
    suite = plan.suite
    print(f"{plan.source}: ok — {len(plan.cells)} cells, {len(plan.groups)} distinct models "
          f"({len(suite.arms)} arms × {len(suite.datasets)} datasets × {len(suite.seeds)} seeds"
          + (f"; {len(suite.imported)} imported, decoded once)" if suite.imported else ")"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench.executors import LocalExecutor
    from bench.runner import make_executor, run_suite
    from bench.store import Store

    plan, results = _plan_and_results(args)
    if args.dry_run:
        store, part = Store(results), plan.select(args.only)
        todo = [c for c in part.cells if not store.is_done(c.cell_id)]
        for g in part.groups:
            print(f"model {g.train_key} ({', '.join(g.arms)}; {g.cells[0].dataset}, seed {g.cells[0].seed})")
            for c in g.cells:
                print(f"  {'todo' if c in todo else 'done'}  {c.cell_id}")
        print(f"{len(todo)} of {len(part.cells)} cells to run in {results}")
        return 0
    executor = None
    if args.workers:
        executor = LocalExecutor(args.workers, progress=False)
    elif args.executor:
        executor = make_executor(plan.suite, Store(results), args.executor)
    summary = run_suite(plan, results, args.only, executor, args.fail_fast, progress=not args.no_progress)
    elsewhere = f"{summary.elsewhere} finished by an earlier run's jobs, " if summary.elsewhere else ""
    print(f"{plan.suite.name}: {summary.done} cells run, {summary.skipped} already done, {elsewhere}"
          f"{len(summary.failed)} failed, {summary.wall_s:.0f} s; results in {results}")
    for cell, err in summary.failed.items():
        print(f"  FAILED {cell}: {err} (details: {results}/errors/{cell}.json)")
    return 1 if summary.failed else 0


def cmd_time(args: argparse.Namespace) -> int:
    from bench.runner import timing_pass
    from bench.store import Store

    plan, results = _plan_and_results(args)
    store = Store(results)
    if not timing_pass(plan.select(args.only), store, force=True):
        part = f" selected by --only {args.only!r}" if args.only else ""
        print(f"error: {results}: not every model{part} of suite {plan.suite.name} is trained yet; "
              "run `python -m bench run` first (or time the trained part with --only)", file=sys.stderr)
        return 2
    store.consolidate()
    print(f"{plan.suite.name}: timing pass written to {results / 'timing.parquet'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bench.status import cell_states

    plan, results = _plan_and_results(args)
    rows = cell_states(plan, results)
    for row in rows:
        print(f"{row.state:9s} {row.cell_id}" + (f"  ({row.detail})" if row.detail else ""))
    counts = {s: sum(1 for r in rows if r.state == s) for s in ("done", "running", "submitted", "failed", "pending")}
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report.cli import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, help_ in (("validate", cmd_validate, "check a suite file"), ("run", cmd_run, "run a suite (resumes)"),
                            ("status", cmd_status, "show each cell's state"),
                            ("time", cmd_time, "redo the timing pass that speed figures come from (e.g. on a quiet machine)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("suite", help="suite name (built in, or NAME.yaml in $DIFFUSEQ_SUITES_DIR or ./ablations/suites) or path")
        p.add_argument("--results", type=Path, help="results directory (default: results/<suite name>)")
        p.set_defaults(func=fn)
        if name in ("run", "time"):
            p.add_argument("--only", help="glob(s) on cell ids or arm names, comma-separated, e.g. 'v2*' or 'copy_source,nearest_train_target'")
        if name == "run":
            p.add_argument("--dry-run", action="store_true", help="list the cells and what is left to do")
            p.add_argument("--workers", type=int, help="run N model groups at a time locally (overrides the suite's executor)")
            p.add_argument("--executor", choices=["local", "slurm", "submitit_local", "debug"],
                           help="override the suite's executor.kind (slurm submits one job per model via submitit)")
            p.add_argument("--fail-fast", action="store_true", help="stop at the first failing cell")
            p.add_argument("--no-progress", action="store_true")
    from bench.report.cli import add_arguments

    p = sub.add_parser("report", help="write the Markdown report from a results directory")
    add_arguments(p)
    p.set_defaults(func=cmd_report)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops workers and jobs cleanly, like Ctrl-C
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
