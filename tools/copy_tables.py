"""Refresh the copies of results tables in Markdown files that cannot include them (the README,
which GitHub and PyPI render as it is).

A copy is the block between ``<!-- copy of PATH -->`` and ``<!-- end of copy -->``; its content
becomes PATH's (relative to the repository's root)::

    python tools/copy_tables.py README.md

``tests/test_results.py`` checks that every copy equals its source.
"""
import argparse
import os.path as osp
import re
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BLOCK = re.compile(r'(<!-- copy of (\S+) -->)(.*?)(<!-- end of copy -->)', re.S)


def refresh(text: str) -> str:
    """``text`` with every copy block holding its source's current content."""
    def copy(match: re.Match) -> str:
        with open(osp.join(ROOT, match.group(2))) as f:
            return f'{match.group(1)}\n{f.read().strip()}\n{match.group(4)}'
    return BLOCK.sub(copy, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('files', nargs='+', help='Markdown files with copy blocks')
    args = parser.parse_args(argv)
    for path in args.files:
        with open(path) as f:
            text = f.read()
        if not BLOCK.search(text):
            print(f'{path}: no copy block', file=sys.stderr)
            return 1
        with open(path, 'w') as f:
            f.write(refresh(text))
        print(f'{path}: copies refreshed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
