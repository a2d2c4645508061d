"""`python -m bench all [--quick]` or `python -m bench <figure> [--quick]`.

Figures (see bench/README.md): ack, ingest, e2e, slack_calls, log_reads, memory, fanout,
fanout_ssh, api_logs, soak (or 1-10).
Each prints its value beside the baseline measured in the same run, with the ratio, and is
written to bench/results.json. The exit code is 1 when a figure could not run.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.results import RESULTS_PATH, summary_table, write_results
from bench.runner import FIGURES, resolve_names, run_figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures", nargs="+", metavar="FIGURE",
                        help=f"all, or one or more of: {', '.join(FIGURES)} "
                             f"(or 1-{len(FIGURES)})")
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--no-write", action="store_true", help="do not write results.json")
    args = parser.parse_args(argv)
    try:
        names = resolve_names(args.figures)
    except ValueError as error:
        parser.error(str(error))

    started = time.monotonic()
    outcome = run_figures(names, scale="quick" if args.quick else "full", verbose=not args.quiet)
    elapsed = time.monotonic() - started
    machine = {**outcome.machine, "elapsed_s": round(elapsed, 1)}
    if not args.no_write:
        write_results(outcome.figures, machine, merge=args.figures != ["all"], quick=args.quick)
    print("\n" + summary_table(outcome.figures))
    print(f"\n{len(outcome.figures)} figures in {elapsed:.1f}s on {machine['nproc']} CPUs "
          f"({machine['cpu_model']})" + ("" if args.no_write else f"; written to {RESULTS_PATH}"))
    for name, why in outcome.problems.items():
        print(f"NOT RUN {name}: {why}")
    return 1 if outcome.problems else 0


if __name__ == "__main__":
    sys.exit(main())
