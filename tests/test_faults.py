"""Faults of a long run: a killed rank, preemption, a torn state file, a kill while writing one,
a full disk, a NaN storm in one rank, a long stream. The multi-process scenarios are those of
``tools/fault_check.py`` (which makes the table of the long-runs page), on a tiny model and
stream under two gloo processes; each asserts on the figures the scenario measured."""
import errno
import importlib.util
import json
import os
import os.path as osp

import pytest
import torch
from conftest import ROOT

from stag_seg.engine.state_files import (StateFileError, check_state, list_states, read_state,
                                         state_name, write_state)
from stag_seg.evaluation import results_files

# several seconds each (two processes, whole streams): make test-fast leaves them out
slow = pytest.mark.slow
# the two-process scenarios (about 3.5 minutes): `make test-faults` and CI, not `make test`
scenario = pytest.mark.faults

#: How long a job may take to end after one of its ranks is killed: torchrun notices a dead
#: process within its monitor interval (0.1 s), then sends SIGTERM to the others and gives them
#: 30 s (its shutdown timeout) before SIGKILL; a survivor blocked in a gloo collective sees the
#: peer's socket close at once. 30 s, plus the start of the interpreter's teardown, plus slack
#: for a loaded machine.
KILLED_RANK_BOUND_S = 45


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fault_check = _tool('fault_check')


@pytest.fixture(scope='module')
def check(tmp_path_factory):
    """Two processes, 3 rounds of fog and snow with 4 images each at batch size 1: 12 steps per
    rank, a state every 2 (``Check.tiny``: a SegFormer of about 30k parameters with GroupNorm in
    the head, so that the ranks' weights are identical)."""
    return fault_check.Check.tiny(str(tmp_path_factory.mktemp('faults')), nproc=2, rounds=3,
                                  interval=2, timeout=300)


# ------------------------------------------------------------------------ 1. a killed rank


@slow
@scenario
def test_a_killed_rank_ends_the_job_naming_it_and_resumes_identically(check):
    row = check.killed_rank(rank=1)
    assert row['exit'] not in (0, None), row  # None: it did not end by itself
    assert row['seconds_to_end'] < KILLED_RANK_BOUND_S, row
    assert row['left_behind'] == 0, row
    assert any('rank(s) 1 of node 0 died without a word' in m for m in row['messages']), row
    assert row['kept'] == {0: [4, 6], 1: [4, 6]}, row  # the last two on each rank
    # another process count is refused, saying why, and the states are left as they were
    assert row['other_nproc'] == 1 and row['other_exit'] not in (0, None), row
    assert any('holds the state of a run with 2 process(es); this run has 1' in m
               for m in row['other_messages']), row
    assert row['kept_after_other'] == row['kept'], row
    assert row['resume_exit'] == 0 and row['resume_identical'], row
    assert row['resume_left_behind'] == 0, row


# ------------------------------------------------------------------------ 2. preemption


@slow
@scenario
@pytest.mark.parametrize('sig, to, workers', [
    ('SIGTERM', 'all', 2),  # slurm: every process of the job, the loader's workers too
    ('SIGINT', 'group', None),  # Ctrl-C: the launcher, which forwards it to its processes
], ids=['SIGTERM-to-all', 'SIGINT-to-launcher'])
def test_preemption_saves_at_the_next_step_exits_75_and_resumes_identically(check, sig, to,
                                                                            workers):
    row = check.preemption(sig, to, workers=workers)
    assert row['exit'] == 75, row
    step = row['step'] + 1  # the signal came during this step; saved after it, on every rank
    assert row['kept'] == {0: [row['step'], step], 1: [row['step'], step]}, row
    assert row['left_behind'] == 0, row
    assert row['partial'] and not any(row['partial'].values()), row  # marked partial
    assert row['resume_exit'] == 0 and row['resume_identical'], row


# ------------------------------------------------------------------ 3. a torn state file


@slow
@scenario
def test_a_torn_or_corrupted_newest_state_is_refused_and_the_previous_one_resumes(check):
    row = check.torn_state()
    assert row['exit'] == 75, row
    assert set(row['damaged'].values()) == {'truncated', 'corrupted'}, row
    assert row['refused_with_reason'], row
    assert row['resumed_from'] == row['kept_before'][0][0], row  # the previous, kept
    assert row['damaged_kept'], row
    assert row['resume_exit'] == 0 and row['resume_identical'], row


def _state(tmp_path, value=0.0, step=2):
    path = str(tmp_path / state_name(step, 0, 1))
    write_state(path, dict(w=torch.full((500, ), value), step=step))
    return path


@pytest.mark.parametrize('damage, problem', [
    ('truncate', r'truncated: \d+ bytes after the header, which says \d+'),
    ('flip', r'corrupted: the SHA-256 of its contents is'),
    ('append', r'longer than written'),
    ('header', r'not a stag_seg state file of this layout'),
    ('short', r'truncated: \d+ bytes, shorter than the 56-byte header'),
])
def test_a_damaged_state_file_is_refused_naming_it_and_what_is_wrong(tmp_path, damage,
                                                                     problem):
    path = _state(tmp_path)
    size = osp.getsize(path)
    with open(path, 'r+b') as f:
        if damage == 'truncate':
            f.truncate(size - 100)
        elif damage == 'flip':  # one bit, in the tensor's bytes (torch.load alone takes it)
            f.seek(size - 700)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 1]))
        elif damage == 'append':
            f.seek(0, os.SEEK_END)
            f.write(b'\0')
        elif damage == 'header':
            f.write(b'PK')
        else:
            f.truncate(20)
    with pytest.raises(StateFileError, match=problem) as info:
        read_state(path)
    assert str(info.value).startswith(path + ': ')


def test_a_kill_at_any_point_of_a_state_write_leaves_the_old_state_or_the_new_one(tmp_path):
    row = fault_check.write_kill(str(tmp_path))
    assert row['outcomes'] == dict(header='old', half_written='old', before_fsync='old',
                                   before_rename='old', after_rename='new'), row
    assert row['loaded_wrongly'] == 0
    # what a kill left is a temporary file, which no listing takes for a state
    assert list(list_states(str(tmp_path))) == [str(tmp_path / row['file'])]


# ------------------------------------------------------------------------- 4. a full disk


def test_a_full_disk_while_writing_a_state_keeps_the_previous_one(tmp_path, monkeypatch):
    from stag_seg.engine import state_files
    path = _state(tmp_path, 1.0)

    def write(self, data):
        self.file.write(bytes(data)[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(state_files._HashingWriter, 'write', write)
    with pytest.raises(OSError, match='No space left on device'):
        write_state(path, dict(w=torch.zeros(500), step=4))
    check_state(path)
    assert torch.equal(read_state(path)['w'], torch.full((500, ), 1.0))
    assert os.listdir(tmp_path) == [osp.basename(path)]  # no temporary file left


def test_a_full_disk_while_writing_results_leaves_no_file_that_claims_completeness(
        tmp_path, monkeypatch):
    doc = json.load(open(osp.join(ROOT, 'results', 'demo', 'comparison.json')))['runs'][0]
    doc = dict(doc, checkpoint='source.pth', seed=0, environment={}, versions={})
    results_files.write_run(doc, str(tmp_path / 'before'))
    written = sorted(os.listdir(tmp_path / 'before'))
    original = results_files._fsync_write

    def fsync_write(path, write):
        if path.endswith('.tmp.json') and 'environment' not in path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(path, write)
    monkeypatch.setattr(results_files, '_fsync_write', fsync_write)
    with pytest.raises(OSError, match='No space left on device'):
        results_files.write_run(doc, str(tmp_path / 'full'))
    assert os.listdir(tmp_path / 'full') == []  # not a csv, md or png without its json
    # over an earlier complete set, the earlier set stays whole
    with pytest.raises(OSError):
        results_files.write_run(dict(doc, seed=1), str(tmp_path / 'before'))
    assert sorted(os.listdir(tmp_path / 'before')) == written
    assert json.load(open(tmp_path / 'before' / 'tta_results.json'))['seed'] == 0


@slow
@scenario
@pytest.mark.parametrize('where', ['state', 'results'])
def test_a_full_disk_in_a_run_stops_it_clearly_and_a_resume_completes_it(check, where):
    row = check.full_disk(where)
    assert row['exit'] not in (0, None), row
    assert row['messages'], row  # "No space left on device", with the file
    assert row['partial'] and not any(row['partial'].values()), row
    assert row['complete_files'] == [] and row['temporary_files'] == [], row
    if where == 'state':  # rank 0 could not save the state after row['step'] + 2
        assert max(row['kept'][0]) == row['step'], row
    assert row['left_behind'] == 0, row
    assert row['resume_exit'] == 0 and row['resume_identical'], row


# ------------------------------------------------------------------------- 5. a NaN storm


@slow
@scenario
def test_a_nan_storm_in_one_rank_is_skipped_by_every_rank_together(check):
    row = check.nan_storm(rank=1, steps=3)
    assert row['exit'] == 0, row
    assert row['steps_checked'] == check.stream_steps and row['identical_every_step'], row
    assert row['unchanged_steps'] == 3, row  # no update during the storm, on any rank
    assert row['nonfinite_steps'] == 3, row  # counted once, not once per rank


# ---------------------------------------------------------------------------- 6. load


@slow
@scenario
def test_twenty_rounds_keep_memory_files_and_states_flat(check):
    row = check.load(rounds=20, interval=1)
    assert row['exit'] == 0 and row['left_behind'] == 0, row
    for rank in row['ranks']:
        assert rank['steps'] == 20 * 4, rank
        assert rank['state_files_max'] == 2, rank  # pruned to the last two
        assert rank['fds_max_from_round_2'] == rank['fds_round_2'], rank
        assert rank['rss_mb_max_from_round_2'] < rank['rss_mb_round_2'] * 1.05, rank
        assert rank['state_mb_max'] < rank['state_mb_round_2'] * 1.2, rank
