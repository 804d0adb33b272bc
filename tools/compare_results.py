"""Put several runs' tta_results.json side by side (same stream: domains, rounds, metric).

    python tools/compare_results.py A/tta_results.json B/tta_results.json [--labels a b]
                                    [--out DIR]

Prints a markdown table; with ``--out`` also writes comparison.md and comparison.png there.
"""
import argparse
import os
import os.path as osp

from stag_seg.evaluation import compare_markdown, load_results, plot_results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='compare continual TTA results')
    parser.add_argument('results', nargs='+', help='tta_results.json files')
    parser.add_argument('--labels', nargs='+', help='one name per results file')
    parser.add_argument('--out', help='folder for comparison.md and comparison.png')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.labels and len(args.labels) != len(args.results):
        raise SystemExit(f'--labels has {len(args.labels)} names for {len(args.results)} files')
    docs = [load_results(path) for path in args.results]
    table = compare_markdown(docs, args.labels)
    print(table)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(osp.join(args.out, 'comparison.md'), 'w') as f:
            f.write(table + '\n')
        plot_results(docs, osp.join(args.out, 'comparison.png'), args.labels)
        print(f'\nwritten: {osp.join(args.out, "comparison.md")}, '
              f'{osp.join(args.out, "comparison.png")}')


if __name__ == '__main__':
    main()
