"""Put several runs' tta_results.json side by side (they must share one stream).

    python tools/compare_results.py RESULTS.json [RESULTS.json ...] [--labels A B ...]
                                    [--out DIR]

Prints the markdown table (rows: runs named method+regularizers and the label; columns: every
domain of every round, then the mean and images/s; best per column in bold). With ``--out``
also writes comparison.md, comparison.csv and comparison.png (the metric along the stream,
domain boundaries marked) there. Results of different streams (domains, rounds, metric or
domain sizes) are refused.
"""
import argparse
import os
import os.path as osp
import sys

from stag_seg.evaluation import compare_csv, compare_markdown, load_results, plot_results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='compare continual TTA results')
    parser.add_argument('results', nargs='+', help='tta_results.json files')
    parser.add_argument('--labels', nargs='+',
                        help='one label per results file, added to its method name ("" for none)')
    parser.add_argument('--out', help='folder for comparison.{md,csv,png}')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.labels and len(args.labels) != len(args.results):
        sys.exit(f'--labels has {len(args.labels)} names for {len(args.results)} files')
    try:
        docs = [load_results(path) for path in args.results]
        table = compare_markdown(docs, args.labels)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'compare_results.py: {err}')
    print(table)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        paths = [osp.join(args.out, f'comparison.{ext}') for ext in ('md', 'csv', 'png')]
        with open(paths[0], 'w') as f:
            f.write(table + '\n')
        compare_csv(docs, paths[1], args.labels)
        plot_results(docs, paths[2], args.labels)
        print('\nwritten: ' + ', '.join(paths))


if __name__ == '__main__':
    main()
