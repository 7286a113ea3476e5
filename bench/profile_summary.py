"""Top costs in a py-spy raw profile (collapsed stacks), as text: by own time and by total time.

    .venv/bin/python bench/ws_load.py --stack postgres --profile-dir /tmp/prof
    .venv/bin/python bench/profile_summary.py /tmp/prof/postgres.txt --top 15

A line of `py-spy record --format raw` is one stack, outermost frame first, `;`-separated, then
a space and its sample count; a frame reads `function (file:line)`. Functions are counted
without their line numbers. "own" is the share of samples where the function is the leaf
(running itself); "total" the share where it is anywhere on the stack (itself and what it
calls, once per stack however deep the recursion). --ours keeps the total view to this
repository's files, which is where a change can be made; --lines says which line of ours each
sample was on (the innermost frame of this repository's code, with its line number), which
points at the query or call that costs.
"""

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
ROOT = Path(__file__).resolve().parents[1]
# py-spy names files relative to sys.path, so this repository's files start with one of its packages.
OURS = frozenset(p.name for p in ROOT.iterdir() if p.is_dir() and any(p.glob("*.py")))


def parse(path: Path, keep_lines: bool = False) -> list[tuple[list[str], int]]:
    """The stacks and their sample counts; frames as `function (file)`, or `function (file:line)` if kept."""
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append(([frame if keep_lines else function_of(frame) for frame in frames.split(";")], int(count)))
    return stacks


def function_of(frame: str) -> str:
    """`function (file:line)` -> `function (file)`."""
    match = FRAME.match(frame)
    return f"{match['function']} ({match['file']})" if match else frame


def is_ours(frame: str) -> bool:
    match = FRAME.match(frame)
    return bool(match) and match["file"].split("/", 1)[0] in OURS


def innermost_ours(stacks: list[tuple[list[str], int]]) -> tuple[Counter, int]:
    """Samples by the deepest frame of this repository's code (with its line); stacks without one are "elsewhere"."""
    where, samples = Counter(), 0
    for frames, count in stacks:
        samples += count
        where[next((frame for frame in reversed(frames) if is_ours(frame)), "elsewhere (no frame of ours)")] += count
    return where, samples


def costs(stacks: list[tuple[list[str], int]], ours_only: bool = False) -> tuple[Counter, Counter, int]:
    own, total = Counter(), Counter()
    samples = 0
    for frames, count in stacks:
        samples += count
        own[frames[-1]] += count
        for function in set(frames):
            if not ours_only or is_ours(function):
                total[function] += count
    return own, total, samples


def table(title: str, counts: Counter, samples: int, top: int) -> str:
    rows = [title] + [f"{100 * n / samples:6.1f}%  {function}" for function, n in counts.most_common(top)]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="a py-spy --format raw file")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--ours", action="store_true", help="total time of this repository's functions only")
    parser.add_argument("--lines", action="store_true", help="samples by the innermost line of this repository's code")
    options = parser.parse_args()
    stacks = parse(options.profile, keep_lines=options.lines)
    if not stacks:
        sys.exit(f"no stacks in {options.profile}")
    if options.lines:
        where, samples = innermost_ours(stacks)
        print(table(f"{samples} samples by the innermost line of ours:", where, samples, options.top))
        return
    own, total, samples = costs(stacks, options.ours)
    print(f"{samples} samples (all threads, idle excluded) in {options.profile}\n")
    print(table("own time (the function itself):", own, samples, options.top))
    print()
    print(table("total time (the function and what it calls):", total, samples, options.top))


if __name__ == "__main__":
    main()
