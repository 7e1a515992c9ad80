"""Summarise a ninja build log (.ninja_log): each target's wall time, the sum, the span from the
first start to the last end, and how busy the jobs kept the cores.

    python bench/ninja_summary.py build/<wheel tag>/.ninja_log [--jobs 2]
"""
import argparse
import pathlib


def entries(path: pathlib.Path) -> list[tuple[int, int, str]]:
    """(start ms, end ms, target) of the last build recorded in the log."""
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        start, end, _mtime, target, *_ = line.split("\t")
        rows.append((int(start), int(end), target))
    # Rows are written as jobs finish, so end times rise within one build; ninja appends each
    # build with its clock restarted at 0: keep the rows after the last restart.
    last = max((i for i, r in enumerate(rows) if i == 0 or r[1] < rows[i - 1][1]), default=0)
    return rows[last:]


def short(target: str) -> str:
    return target.split("CMakeFiles/")[-1].replace(".dir/", ": ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", type=pathlib.Path)
    ap.add_argument("--jobs", type=int, default=2, help="cores the build had (for the busy figure)")
    args = ap.parse_args()
    rows = entries(args.log)
    total = sum(e - s for s, e, _ in rows)
    span = max(e for _, e, _ in rows) - min(s for s, _, _ in rows)
    for s, e, t in sorted(rows, key=lambda r: r[0] - r[1]):
        print(f"{(e - s) / 1000:7.2f} s  [{s / 1000:6.1f} .. {e / 1000:6.1f}]  {short(t)}")
    print(f"{len(rows)} targets: {total / 1000:.1f} s of job time in a {span / 1000:.1f} s span "
          f"({total / span / args.jobs:.0%} of {args.jobs} cores busy)")


if __name__ == "__main__":
    main()
