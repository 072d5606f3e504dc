"""Compare the metrics of two `summary.md` files (e.g. Debian 12's and a Debian 13 chroot's).

    python3 scripts/compare_summaries.py A.md B.md

Every table cell of the two files is compared, except the `wall_time_s` column (a timing). A cell
that is a number, or `mean ± std`, agrees when each number agrees to 1e-3 of the mean (the tables
print 4 significant digits, so a roundoff difference between two stacks may flip the last one);
any other cell must be equal as text. Prints `same metrics (N numbers)` and exits 0, or one line
per differing cell and exits 1. Standard library only (runs with any Python 3).
"""
import re
import sys

SKIPPED_COLUMNS = {"wall_time_s"}
RELATIVE_TOLERANCE = 1e-3
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def table_cells(path: str) -> dict[tuple[str, str, str], str]:
    """{(section, row label, column): cell text} of every markdown table in the file."""
    cells, section, header = {}, "", None
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if line.startswith("#"):
                section, header = line.lstrip("# "), None
            elif not line.startswith("|"):
                header = None
            elif header is None:
                header = [c.strip() for c in line.strip("|").split("|")]
            elif not set(line) <= set("|-: "):
                row = [c.strip() for c in line.strip("|").split("|")]
                for column, value in zip(header[1:], row[1:]):
                    if column not in SKIPPED_COLUMNS:
                        cells[(section, row[0], column)] = value
    return cells


def numbers(cell: str) -> list[float] | None:
    """The numbers of a cell (`x` or `x ± y`), or None when it is not numeric."""
    parts = [p.strip() for p in cell.split("±")]
    if all(NUMBER.match(p) for p in parts):
        return [float(p) for p in parts]
    return None


def agree(a: str, b: str) -> bool:
    """Whether two cells show the same value (numbers to RELATIVE_TOLERANCE)."""
    x, y = numbers(a), numbers(b)
    if x is None or y is None or len(x) != len(y):
        return a == b
    scale = max(abs(x[0]), abs(y[0]))   # a std is judged on its mean's scale
    return all(abs(p - q) <= RELATIVE_TOLERANCE * scale + 1e-12 for p, q in zip(x, y))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("error: usage: compare_summaries.py A.md B.md", file=sys.stderr)
        return 2
    a, b = (table_cells(path) for path in argv)
    if not a:
        print(f"error: {argv[0]} has no metric tables", file=sys.stderr)
        return 2
    differences = [f"{' / '.join(key)}: {a.get(key, '(missing)')} vs {b.get(key, '(missing)')}"
                   for key in sorted(set(a) | set(b)) if not agree(a.get(key, ""), b.get(key, ""))]
    for line in differences:
        print(f"differs: {line}")
    if differences:
        return 1
    print(f"same metrics ({sum(len(numbers(v) or []) for v in a.values())} numbers)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
