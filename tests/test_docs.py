"""What a reader meets first: the README's order and length, and links that resolve."""
import glob
import os.path as osp
import re

from conftest import ROOT

README = osp.join(ROOT, 'README.md')
LINK = re.compile(r'\]\(([^)\s]+)\)')


def _read(path):
    with open(path) as f:
        return f.read()


def test_the_readme_is_short_and_starts_with_the_two_set_up_commands():
    text = _read(README)
    assert len(text.splitlines()) <= 200
    first_block = text.split('```')[1]
    assert [line.split('#')[0].strip() for line in first_block.splitlines()[1:] if line] == [
        'make demo', 'make test']
    headings = [line[3:] for line in text.splitlines() if line.startswith('## ')]
    assert headings == ['Install', 'Quick start', 'In your own MMSeg or mmpretrain config',
                        'Methods and benchmarks', 'Results', 'Documentation',
                        'Citation and license']


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    pages = [README] + glob.glob(osp.join(ROOT, 'docs', 'en', '**', '*.md'), recursive=True)
    broken = []
    for page in pages:
        for link in LINK.findall(_read(page)):
            if re.match(r'[a-z]+:', link) or link.startswith('#'):
                continue
            target = osp.normpath(osp.join(osp.dirname(page), link.split('#')[0]))
            if not osp.exists(target):
                broken.append(f'{osp.relpath(page, ROOT)}: {link}')
    assert not broken, broken
