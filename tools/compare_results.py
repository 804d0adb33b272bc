"""Put several runs' tta_results.json side by side (they must share one stream).

    python tools/compare_results.py RESULTS.json [RESULTS.json ...] [--labels A B ...]
                                    [--out DIR]
    python tools/compare_results.py --from OUT/comparison.json --out DIR

Prints the markdown table (rows: runs named method+regularizers and the label; columns: every
domain of every round, then the mean and images/s; best per column in bold). With ``--out``
also writes comparison.md, comparison.csv and comparison.png (the metric along the stream,
domain boundaries marked) there, and comparison.json, the runs' records they are made from,
which ``--from`` makes them again from. Results of different streams (domains, rounds, metric or
domain sizes) are refused.
"""
import argparse
import json
import sys

from stag_seg.evaluation import (compare_markdown, comparison_entry, load_results,
                                 write_comparison)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='compare continual TTA results')
    parser.add_argument('results', nargs='*', help='tta_results.json files')
    parser.add_argument('--from', dest='source',
                        help='a comparison.json this tool wrote, instead of results files')
    parser.add_argument('--labels', nargs='+',
                        help='one label per results file, added to its method name ("" for none)')
    parser.add_argument('--out', help='folder for comparison.{md,csv,png}')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if bool(args.results) == bool(args.source):
        sys.exit('compare_results.py: give results files or --from a comparison.json')
    if args.labels and len(args.labels) != len(args.results):
        sys.exit(f'--labels has {len(args.labels)} names for {len(args.results)} files')
    try:
        if args.source:
            with open(args.source) as f:
                document = json.load(f)
        else:
            document = dict(labels=args.labels, runs=[comparison_entry(load_results(path))
                                                      for path in args.results])
        table = compare_markdown(document['runs'], document.get('labels'))
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'compare_results.py: {err}')
    print(table)
    if args.out:
        paths = write_comparison(document, args.out, save=not args.source)
        print('\nwritten: ' + ', '.join(paths))


if __name__ == '__main__':
    main()
