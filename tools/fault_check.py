"""Faults of a long multi-process run, injected and watched: a killed rank, preemption, a torn
state file, a full disk, a NaN storm in one rank, and a long stream.

    python tools/fault_check.py CONFIG CHECKPOINT [--nproc 2] [--out work_dirs/faults]
        [--rounds 3] [--interval 2] [--load-rounds 20] [--cfg-options KEY=VALUE ...]
        [--only killed_rank preemption ...]

Every scenario runs CONFIG through ``tools/dist_test_tta.sh`` with NPROC processes (gloo on the
CPU where there is no GPU), injects its fault, and records what happened: the exit status and
how long the job took to end, the messages, the processes left behind, the state files kept,
and the records of the resumed run against those of an uninterrupted one. The figures go to
``<out>/faults.json`` and the table of ``docs/en/user_guides/long_runs.md`` to
``<out>/faults.md`` (:func:`faults_markdown`); ``tests/test_faults.py`` runs the same scenarios
on a tiny model and stream and asserts on the figures.

The worker processes import this file (``custom_imports``, with ``tools/`` on the
``PYTHONPATH``) for two test-only hooks: :class:`FaultInjector` (the fault) and
:class:`FaultProbe` (a digest of the weights, the resident memory, the open files and the state
files after every step).
"""
from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(ROOT, 'tools')
TAG_ENV = 'STAG_SEG_FAULT_TAG'
#: The config the tiny setup shrinks (:meth:`Check.tiny`).
DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo', 'segformer-mit-b0_tent_stag.py')
#: The scenarios, in the order of the table.
SCENARIOS = ('killed_rank', 'preemption', 'torn_state', 'write_kill', 'full_disk', 'nan_storm',
             'load')

# ------------------------------------------------------------------ in the worker processes


def _register_hooks() -> None:
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS

    @HOOKS.register_module(force=True)
    class FaultInjector(Hook):
        """Test-only: inject ``action`` on ``rank`` (-1: every rank) when the stream reaches
        step ``step`` (the steps done so far), for ``steps`` steps.

        Actions: ``'kill'`` SIGKILLs the process; ``'SIGTERM'`` / ``'SIGINT'`` sends that
        signal to the process itself; ``'wait_signal'`` writes the marker and waits (at most
        ``wait`` seconds) for a signal sent from outside; ``'nan'`` makes the preprocessed
        inputs NaN; ``'enospc_state'`` / ``'enospc_results'`` make the writes of the resume
        state / of ``tta_results.json`` fail with ``OSError(ENOSPC)`` from then on, as a full
        disk would. ``'kill'`` and ``'wait_signal'`` first write ``fault_marker.json`` (the wall
        time) into the work dir.
        """
        priority = 'VERY_HIGH'

        def __init__(self, action, step, rank=-1, steps=1, wait=120.0):
            self.action, self.step, self.rank, self.steps, self.wait = (action, step, rank,
                                                                        steps, wait)
            self.poison = False

        def _mine(self):
            from mmengine.dist import get_rank
            return self.rank in (-1, get_rank())

        def before_test(self, runner):
            if self.action != 'nan' or not self._mine():
                return
            import torch
            from mmengine.model import is_model_wrapper
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            original = model.data_preprocessor.forward

            def forward(data, training=False):
                out = original(data, training)
                if self.poison:
                    out['inputs'] = torch.full_like(out['inputs'], float('nan'))
                return out
            model.data_preprocessor.forward = forward

        def _marker(self, runner):
            with open(osp.join(runner.work_dir, 'fault_marker.json'), 'w') as f:
                json.dump(dict(time=time.time(), step=self.step), f)

        def before_test_iter(self, runner, batch_idx, data_batch=None):
            loop = runner.test_loop
            at = loop.stream_step
            self.poison = self.action == 'nan' and self.step <= at < self.step + self.steps \
                and self._mine()
            if at != self.step or not self._mine():
                return
            if self.action == 'kill':
                self._marker(runner)
                os.kill(os.getpid(), signal.SIGKILL)
            elif self.action in ('SIGTERM', 'SIGINT'):
                os.kill(os.getpid(), getattr(signal, self.action))
            elif self.action == 'wait_signal':
                self._marker(runner)
                end = time.monotonic() + self.wait
                while loop.signals is not None and loop.signals.signal is None \
                        and time.monotonic() < end:
                    time.sleep(0.05)
            elif self.action == 'enospc_state':
                from stag_seg.engine import state_files

                def write(self_, data):  # half of it fits, then the disk is full
                    self_.file.write(bytes(data)[:len(data) // 2])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                state_files._HashingWriter.write = write
            elif self.action == 'enospc_results':
                from stag_seg.evaluation import results_files
                original = results_files._fsync_write

                def fsync_write(path, write):
                    if osp.basename(path) == '.tta_results.tmp.json':
                        with open(path, 'w') as f:
                            f.write('{"records": [')  # what fitted
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    return original(path, write)
                results_files._fsync_write = fsync_write

    @HOOKS.register_module(force=True)
    class FaultProbe(Hook):
        """Test-only: after every step, a digest of the model's state, the resident memory,
        the open files and this rank's state files; written to ``probe.rank<r>.json`` in the
        work dir when the run ends."""
        priority = 'LOWEST'

        def __init__(self):
            self.rows = []

        def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            from mmengine.dist import get_rank
            from mmengine.model import is_model_wrapper

            from stag_seg.engine.resume import STATE_DIR
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            digest = hashlib.sha256()  # the weights (BatchNorm statistics are each rank's own)
            for key, value in model.named_parameters():
                digest.update(key.encode())
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
            with open('/proc/self/statm') as f:
                rss = int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
            folder = osp.join(runner.work_dir, STATE_DIR)
            mine = [osp.join(folder, n) for n in (os.listdir(folder) if osp.isdir(folder)
                                                  else []) if f'.rank{get_rank()}-of-' in n]
            loop = runner.test_loop
            self.rows.append(dict(step=loop.stream_step, round=loop.round_idx,
                                  digest=digest.hexdigest(), rss=rss,
                                  fds=len(os.listdir('/proc/self/fd')), state_files=len(mine),
                                  state_bytes=sum(osp.getsize(p) for p in mine)))

        def after_test(self, runner):
            from mmengine.dist import get_rank
            with open(osp.join(runner.work_dir, f'probe.rank{get_rank()}.json'), 'w') as f:
                json.dump(self.rows, f)


if __name__ != '__main__':  # a worker's custom_imports, or a test
    try:
        _register_hooks()
    except ImportError:  # imported without the stack (documentation tools)
        pass

# ------------------------------------------------------------------------- the harness


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _tagged(tag: str) -> list[int]:
    """The live processes (not zombies) whose environment holds ``tag``."""
    found = []
    needle = f'{TAG_ENV}={tag}'.encode()
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open(f'/proc/{pid}/environ', 'rb') as f:
                if needle not in f.read().split(b'\0'):
                    continue
            with open(f'/proc/{pid}/stat') as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    continue
        except OSError:  # gone, or another user's
            continue
        found.append(int(pid))
    return found


class Job:
    """One ``tools/dist_test_tta.sh`` run in its own session, its processes marked by a tag in
    their environment, so that the ones left behind can be found."""

    def __init__(self, cmd: list[str], env: dict, log: str) -> None:
        self.tag = uuid.uuid4().hex
        self.log = log
        self._out, self._err = open(log + '.out', 'w'), open(log + '.err', 'w')
        self.proc = subprocess.Popen(cmd, env=dict(env, **{TAG_ENV: self.tag}), cwd=ROOT,
                                     stdout=self._out, stderr=self._err,
                                     start_new_session=True)
        self.rc: int | None = None
        self.ended: float | None = None

    def processes(self) -> list[int]:
        return _tagged(self.tag)

    def signal_all(self, sig: int) -> None:
        """``sig`` to every process of the job, as slurm does when it preempts a job step."""
        for pid in self.processes():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def signal_group(self, sig: int) -> None:
        """``sig`` to the launcher's process group, as Ctrl-C in a terminal does (torchrun
        starts its workers in sessions of their own and forwards the signal to them)."""
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal_all(signal.SIGKILL)
            self.proc.wait()
            self.rc = None  # did not end by itself
        self.ended = time.time()
        self._out.close()
        self._err.close()
        return self.rc

    @property
    def stderr(self) -> str:
        with open(self.log + '.err') as f:
            return f.read()

    @property
    def output(self) -> str:
        """stdout and stderr (the main process logs to stdout)."""
        with open(self.log + '.out') as f:
            return f.read() + self.stderr

    def left_behind(self, grace: float = 2.0) -> list[int]:
        """The job's processes still alive ``grace`` seconds after the launcher ended (a
        reparented orphan needs a moment to be reaped)."""
        end = time.monotonic() + grace
        while (pids := self.processes()) and time.monotonic() < end:
            time.sleep(0.1)
        for pid in pids:  # never leave them to the next scenario
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids


def records(work_dir: str) -> list[dict]:
    """The per-(round, domain) records of a complete run, without the wall-clock fields."""
    with open(osp.join(work_dir, 'tta_results.json')) as f:
        doc = json.load(f)
    if doc.get('complete') is False:
        raise ValueError(f'{work_dir}/tta_results.json is not complete')
    return [{k: v for k, v in r.items() if k != 'seconds'} for r in doc['records']]


def state_steps(work_dir: str) -> dict[int, list[int]]:
    """``{rank: [stream steps of its whole state files]}`` in ``work_dir``."""
    from stag_seg.engine.resume import STATE_DIR
    from stag_seg.engine.state_files import StateFileError, check_state, list_states
    steps: dict[int, list[int]] = {}
    for path, name in list_states(osp.join(work_dir, STATE_DIR)).items():
        try:
            check_state(path)
        except StateFileError:
            continue
        steps.setdefault(name.rank, []).append(name.step)
    return {r: sorted(s) for r, s in sorted(steps.items())}


def _lines(text: str, *needles: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if any(n in line for n in needles)]


class Check:
    """The base config and checkpoint, and the runs the scenarios make of them."""

    def __init__(self, config: str, checkpoint: str, out: str, nproc: int = 2, rounds: int = 3,
                 interval: int = 2, cfg_options: dict | None = None, timeout: float = 600,
                 env: dict | None = None) -> None:
        self.config, self.checkpoint, self.out = config, checkpoint, osp.abspath(out)
        self.nproc, self.rounds, self.interval = nproc, rounds, interval
        self.cfg_options, self.timeout = cfg_options or {}, timeout
        self.env = dict(env or os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
        self.env['PYTHONPATH'] = os.pathsep.join(
            [TOOLS, ROOT] + [p for p in [self.env.get('PYTHONPATH')] if p])
        self._whole: list[dict] | None = None
        os.makedirs(self.out, exist_ok=True)

    @classmethod
    def tiny(cls, out: str, **kwargs) -> Check:
        """The setup of ``tests/test_faults.py`` and of ``--tiny``: the demo's Tent + STAG
        config with its SegFormer shrunk to about 30k parameters and GroupNorm in the head (so
        that the ranks' weights stay identical), random weights as the checkpoint, on a stream
        of fog and snow, 4 images each at 64x32, batch size 1: with two processes, 2 steps per
        rank and domain."""
        import torch
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmseg.registry import MODELS

        import stag_seg  # noqa: F401
        from stag_seg.datasets.generators import write_synthetic_acdc
        setup = osp.join(osp.abspath(out), 'tiny')
        tree = osp.join(setup, 'tree')
        if not osp.isfile(osp.join(tree, 'meta.json')):
            write_synthetic_acdc(tree, num_source_train=1, num_source_val=1, num_target=4,
                                 conditions=['fog', 'snow'], width=64, height=32, workers=1)
        model = dict(backbone=dict(embed_dims=8, num_layers=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                                   mlp_ratio=2),
                     decode_head=dict(in_channels=[8, 16, 32, 64], channels=16,
                                      norm_cfg=dict(type='GN', num_groups=4, requires_grad=True)))
        config = osp.join(setup, 'tiny_tent_stag.py')
        with open(config, 'w') as f:
            f.write(f'_base_ = [{DEMO_CONFIG!r}]\n'
                    f'model = {model!r}\n'
                    f'test_dataloader = dict(num_workers=0, dataset=dict(data_root={tree!r}))\n'
                    "test_cfg = dict(domains=['fog', 'snow'])\n"
                    "env_cfg = dict(dist_cfg=dict(backend='gloo', timeout=60))\n")
        checkpoint = osp.join(setup, 'tiny.pth')
        init_default_scope('mmseg')
        torch.manual_seed(0)
        built = MODELS.build(Config.fromfile(config).model)
        torch.save(dict(state_dict=built.state_dict()), checkpoint)
        return cls(config, checkpoint, out, **kwargs)

    def make_config(self, name: str, hooks: list[dict] = (), options: dict | None = None,
                    **test_cfg) -> str:
        """The base config with the fault hooks, ``options`` (dotted keys) and ``test_cfg``
        changes, written to a file."""
        from mmengine.config import Config
        cfg = Config.fromfile(self.config)
        cfg.merge_from_dict(dict(self.cfg_options, **(options or {})))
        imports = cfg.get('custom_imports', dict(imports=[]))
        cfg.custom_imports = dict(imports=list(imports.get('imports', [])) + ['stag_seg',
                                                                               'fault_check'],
                                  allow_failed_imports=False)
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + list(hooks)
        cfg.test_cfg.update(dict(rounds=self.rounds, checkpoint_interval=self.interval,
                                 progress=False), **test_cfg)
        cfg.randomness = dict(seed=0)
        path = osp.join(self.out, 'configs', f'{name}.py')
        os.makedirs(osp.dirname(path), exist_ok=True)
        cfg.dump(path)
        return path

    def launch(self, config: str, work_dir: str, nproc: int | None = None,
               resume: bool = False) -> Job:
        os.makedirs(work_dir, exist_ok=True)
        nproc = nproc or self.nproc
        cmd = ['bash', osp.join(TOOLS, 'dist_test_tta.sh'), config, self.checkpoint, str(nproc),
               '--work-dir', work_dir] + ['--resume'] * resume
        log = osp.join(work_dir, f'launch{"_resume" * resume}_{nproc}')
        return Job(cmd, dict(self.env, PORT=str(free_port())), log)

    def run(self, config: str, work_dir: str, **kwargs) -> Job:
        job = self.launch(config, work_dir, **kwargs)
        job.wait(self.timeout)
        return job

    def fresh(self, name: str) -> str:
        path = osp.join(self.out, name)
        shutil.rmtree(path, ignore_errors=True)
        return path

    def whole(self) -> list[dict]:
        """The records of an uninterrupted run (made once)."""
        if self._whole is None:
            work_dir = self.fresh('whole')
            job = self.run(self.make_config('whole', [dict(type='FaultProbe')]), work_dir)
            if job.rc != 0:
                raise RuntimeError(f'the uninterrupted run failed ({job.rc}):\n'
                                   f'{job.stderr[-3000:]}')
            self._whole = records(work_dir)
        return self._whole

    def resume(self, config: str, work_dir: str) -> dict:
        """Resume ``work_dir`` with the run's process count; the figures of it."""
        job = self.run(config, work_dir, resume=True)
        same = job.rc == 0 and records(work_dir) == self.whole()
        return dict(resume_exit=job.rc, resume_identical=same,
                    resume_messages=_lines(job.output, '--resume', 'resumed from'),
                    resume_left_behind=len(job.left_behind()))

    @property
    def stream_steps(self) -> int:
        """Steps per rank of the whole stream (from the uninterrupted run's probe)."""
        self.whole()
        with open(osp.join(self.out, 'whole', 'probe.rank0.json')) as f:
            return len(json.load(f))

    # ---------------------------------------------------------------------- the scenarios

    def killed_rank(self, rank: int = 1, step: int | None = None) -> dict:
        """SIGKILL ``rank`` before stream step ``step`` + 1; then a resume with another process
        count (refused) and one with the same (identical records)."""
        step = self._middle() if step is None else step
        work_dir = self.fresh('killed_rank')
        config = self.make_config('killed_rank',
                                  [dict(type='FaultInjector', action='kill', step=step, rank=rank)])
        job = self.run(config, work_dir)
        with open(osp.join(work_dir, 'fault_marker.json')) as f:
            killed_at = json.load(f)['time']
        messages = _lines(job.stderr, 'died without a word', 'failed:')
        row = dict(fault='killed_rank', nproc=self.nproc, rank=rank, step=step, exit=job.rc,
                   seconds_to_end=job.ended - killed_at, left_behind=len(job.left_behind()),
                   messages=messages,
                   named_lost_rank=any(f'rank(s) {rank} ' in m for m in messages),
                   torchrun_rank_lines=_lines(job.stderr, f'rank      : {rank}', 'exitcode'),
                   kept=state_steps(work_dir))
        other = 1 if self.nproc > 1 else 2
        job = self.run(self.make_config('killed_rank_resume'), work_dir, nproc=other,
                       resume=True)
        row.update(other_nproc=other, other_exit=job.rc,
                   other_messages=_lines(job.output, 'process(es)'),
                   kept_after_other=state_steps(work_dir))
        row.update(self.resume(self.make_config('killed_rank_resume'), work_dir))
        return row

    def preemption(self, sig: str = 'SIGTERM', to: str = 'all', step: int | None = None,
                   workers: int | None = None) -> dict:
        """``sig`` while the stream is at ``step``: to every process of the job (``'all'``,
        slurm's preemption; data-loader workers included), to the launcher's process group
        (``'group'``, Ctrl-C) or by each rank to itself (``'self'``). ``workers``: the
        data loader's ``num_workers`` (default: the config's)."""
        step = self._middle() if step is None else step
        name = f'preemption_{sig}_{to}' + (f'_{workers}workers' if workers is not None else '')
        work_dir = self.fresh(name)
        action = sig if to == 'self' else 'wait_signal'
        options = {} if workers is None else {'test_dataloader.num_workers': workers,
                                              'test_dataloader.persistent_workers': False}
        config = self.make_config(name, [dict(type='FaultInjector', action=action, step=step,
                                              rank=-1 if to == 'self' else 0)], options)
        job = self.launch(config, work_dir)
        marker = osp.join(work_dir, 'fault_marker.json')
        sent = None
        if to != 'self':
            end = time.monotonic() + self.timeout
            while not osp.exists(marker) and job.proc.poll() is None and time.monotonic() < end:
                time.sleep(0.05)
            sent = time.time()
            (job.signal_all if to == 'all' else job.signal_group)(getattr(signal, sig))
        job.wait(self.timeout)
        kept = state_steps(work_dir)
        row = dict(fault='preemption', signal=sig, to=to, nproc=self.nproc, step=step,
                   workers=workers,
                   exit=job.rc, seconds_to_end=job.ended - sent if sent else None,
                   left_behind=len(job.left_behind()), kept=kept,
                   saved_at=sorted({max(s) for s in kept.values()}),
                   messages=_lines(job.output, 'preempted:'),
                   partial=_partial_flags(work_dir))
        row.update(self.resume(self.make_config(f'{name}_resume'), work_dir))
        return row

    def torn_state(self, step: int | None = None) -> dict:
        """Preempt at ``step``, then truncate rank 0's newest state and flip bytes in the
        newest of the last rank, and resume."""
        from stag_seg.engine.resume import STATE_DIR
        from stag_seg.engine.state_files import list_states
        step = self._middle() if step is None else step
        work_dir = self.fresh('torn_state')
        config = self.make_config('torn_state', [dict(type='FaultInjector', action='SIGTERM',
                                                      step=step)])
        job = self.run(config, work_dir)
        before = state_steps(work_dir)
        files = list_states(osp.join(work_dir, STATE_DIR))
        newest = {}
        for path, name in files.items():
            if name.step == max(before[name.rank]):
                newest[name.rank] = path
        damaged = {}
        with open(newest[0], 'r+b') as f:  # torn: the end is missing
            f.truncate(osp.getsize(newest[0]) * 2 // 3)
        damaged[newest[0]] = 'truncated'
        last = self.nproc - 1
        if last:
            with open(newest[last], 'r+b') as f:  # bytes changed in the middle
                f.seek(osp.getsize(newest[last]) // 2)
                byte = f.read(1)
                f.seek(-1, os.SEEK_CUR)
                f.write(bytes([byte[0] ^ 0xFF]))
            damaged[newest[last]] = 'corrupted'
        result = self.resume(self.make_config('torn_state_resume'), work_dir)
        refused = {path: [m for m in result['resume_messages']
                          if f'refused {path}: {problem}' in m]
                   for path, problem in damaged.items()}
        resumed = [m for m in result['resume_messages'] if 'resumed from' in m]
        found = re.search(r'stream step (\d+)', resumed[0]) if resumed else None
        return dict(fault='torn_state', nproc=self.nproc, exit=job.rc, kept_before=before,
                    damaged={osp.relpath(p, work_dir): d for p, d in damaged.items()},
                    refused_with_reason=all(refused.values()),
                    resumed_from=int(found.group(1)) if found else None,
                    damaged_kept=all(osp.exists(p + '.damaged') for p in damaged), **result)

    def full_disk(self, where: str = 'state', step: int | None = None) -> dict:
        """``OSError(ENOSPC)`` from the write of rank 0's resume state at the first save from
        ``step`` on (``where='state'``), or of ``tta_results.json`` at the end
        (``'results'``); then a resume."""
        step = self._middle() if step is None else step
        name = f'full_disk_{where}'
        work_dir = self.fresh(name)
        config = self.make_config(name, [dict(type='FaultInjector', action=f'enospc_{where}',
                                              step=step, rank=0)])
        job = self.run(config, work_dir)
        complete = [n for n in ('tta_results.json', 'tta_results.csv', 'tta_results.md',
                                'tta_results.png') if osp.exists(osp.join(work_dir, n))]
        temporary = [n for n in os.listdir(work_dir) if n.endswith('.tmp') or '.tmp.' in n]
        from stag_seg.engine.resume import STATE_DIR
        state_dir = osp.join(work_dir, STATE_DIR)
        temporary += [n for n in (os.listdir(state_dir) if osp.isdir(state_dir) else [])
                      if n.endswith('.tmp')]
        row = dict(fault='full_disk', where=where, nproc=self.nproc, step=step, exit=job.rc,
                   messages=_lines(job.output, 'No space left'), kept=state_steps(work_dir),
                   partial=_partial_flags(work_dir), complete_files=complete,
                   temporary_files=temporary, left_behind=len(job.left_behind()))
        row.update(self.resume(self.make_config(f'{name}_resume'), work_dir))
        return row

    def nan_storm(self, rank: int = 1, steps: int = 3, step: int | None = None) -> dict:
        """NaN inputs on ``rank`` only for ``steps`` steps from ``step``, bad input skipped:
        the weights' digests of every rank after every step, the steps counted."""
        step = self._middle() if step is None else step
        work_dir = self.fresh('nan_storm')
        config = self.make_config('nan_storm', [
            dict(type='FaultInjector', action='nan', step=step, rank=rank, steps=steps),
            dict(type='FaultProbe')], on_bad_input='skip')
        job = self.run(config, work_dir)
        probes = _probes(work_dir, self.nproc)
        digests = [[r['digest'] for r in p] for p in probes]
        with open(osp.join(work_dir, 'tta_results.json')) as f:
            doc = json.load(f)
        return dict(fault='nan_storm', nproc=self.nproc, rank=rank, step=step, steps=steps,
                    exit=job.rc, steps_checked=len(digests[0]),
                    identical_every_step=all(d == digests[0] for d in digests),
                    nonfinite_steps=doc['nonfinite_steps'], bad_inputs=doc['bad_inputs'],
                    unchanged_steps=sum(a == b for a, b in zip(digests[0][step:step + steps],
                                                               digests[0][step - 1:])),
                    left_behind=len(job.left_behind()))

    def load(self, rounds: int = 20, interval: int = 1) -> dict:
        """``rounds`` rounds with a state every ``interval`` steps: per rank the resident memory
        and the open files after every step, and the state files kept."""
        work_dir = self.fresh('load')
        config = self.make_config('load', [dict(type='FaultProbe')], rounds=rounds,
                                  checkpoint_interval=interval)
        job = self.run(config, work_dir)
        probes = _probes(work_dir, self.nproc)
        per_rank = []
        for probe in probes:
            by_round = {}
            for row in probe:
                by_round[row['round']] = row  # the last step of each round
            second, last = by_round[2], by_round[max(by_round)]
            per_rank.append(dict(
                rss_mb_round_2=second['rss'] / 2**20, rss_mb_last=last['rss'] / 2**20,
                rss_mb_max_from_round_2=max(r['rss'] for r in probe if r['round'] >= 2) / 2**20,
                fds_round_2=second['fds'], fds_max_from_round_2=max(
                    r['fds'] for r in probe if r['round'] >= 2), fds_last=last['fds'],
                state_files_max=max(r['state_files'] for r in probe),
                state_mb_max=max(r['state_bytes'] for r in probe) / 2**20,
                state_mb_round_2=second['state_bytes'] / 2**20,
                steps=len(probe)))
        return dict(fault='load', nproc=self.nproc, rounds=rounds, interval=interval,
                    exit=job.rc, ranks=per_rank, left_behind=len(job.left_behind()))

    def _middle(self) -> int:
        """A checkpoint step in the middle of the stream: a fault there strikes the step
        after it, which is not one."""
        steps = self.stream_steps
        return max(self.interval, (steps // 2) // self.interval * self.interval)


def _probes(work_dir: str, nproc: int) -> list[list[dict]]:
    probes = []
    for rank in range(nproc):
        with open(osp.join(work_dir, f'probe.rank{rank}.json')) as f:
            probes.append(json.load(f))
    return probes


def _partial_flags(work_dir: str) -> dict[str, bool]:
    """``{partial results file: its complete flag}``."""
    found = {}
    for name in sorted(os.listdir(work_dir)):
        if name.startswith('tta_results.partial') and name.endswith('.json'):
            with open(osp.join(work_dir, name)) as f:
                found[name] = json.load(f).get('complete')
    return found


# ------------------------------------------------------------------------ the write kill


def write_kill_points() -> list[str]:
    """Where :func:`write_kill` stops a write of a state file."""
    return ['header', 'half_written', 'before_fsync', 'before_rename', 'after_rename']


def write_kill(folder: str) -> dict:
    """Kill a process (``os._exit`` in a forked child) at each point of writing a state file
    over an earlier one; count the states that then load wrongly (a whole file under the final
    name whose content is neither the old state nor the new one, or a damaged file that is not
    refused)."""
    import torch

    from stag_seg.engine import state_files
    from stag_seg.engine.state_files import StateFileError, read_state, write_state
    os.makedirs(folder, exist_ok=True)
    state_name = '00000002.rank0-of-1.pth'
    path = osp.join(folder, state_name)
    old, new = dict(w=torch.zeros(1000)), dict(w=torch.ones(1000))
    outcomes = {}
    for point in write_kill_points():
        write_state(path, old)
        pid = os.fork()
        if pid == 0:  # the child: write the new state and die at ``point``
            try:
                _arm(state_files, point)
                write_state(path, new)
            finally:
                os._exit(0)  # reached only at 'after_rename' armed to die late, or never
        os.waitpid(pid, 0)
        try:
            loaded = read_state(path)
            outcome = ('old' if torch.equal(loaded['w'], old['w']) else
                       'new' if torch.equal(loaded['w'], new['w']) else 'wrong')
        except StateFileError as err:
            outcome = f'refused: {err.problem}'
        except FileNotFoundError:
            outcome = 'missing'
        outcomes[point] = outcome
    return dict(fault='write_kill', file=state_name, outcomes=outcomes,
                loaded_wrongly=sum(o not in ('old', 'new') for o in outcomes.values()),
                temporary_left=sorted(n for n in os.listdir(folder) if n.endswith('.tmp')))


def _arm(state_files, point: str) -> None:
    """In the forked child: die (``os._exit``, no clean-up, as SIGKILL) at ``point``."""
    writer = state_files._HashingWriter
    original_write, original_replace, original_fsync = writer.write, os.replace, os.fsync
    if point == 'header':
        def write(self, data):
            os._exit(9)
        writer.write = write
    elif point == 'half_written':
        def write(self, data):
            if self.size > 0:
                original_write(self, bytes(data)[:len(data) // 2])
                self.file.flush()
                os._exit(9)
            return original_write(self, data)
        writer.write = write
    elif point == 'before_fsync':
        os.fsync = lambda fd: os._exit(9)
    elif point == 'before_rename':
        os.replace = lambda a, b: os._exit(9)
    elif point == 'after_rename':
        def replace(a, b):
            original_replace(a, b)
            os._exit(9)
        os.replace = replace
    del original_fsync


# --------------------------------------------------------------------------- the table


def faults_markdown(document: dict) -> str:
    """The table of ``docs/en/user_guides/long_runs.md``: per fault, what happened, what was
    kept and what was lost, from the figures ``faults.json`` holds."""
    lines = ['| fault | what happened | what was kept | what was lost |', '|---|---|---|---|']
    for row in document['rows']:
        lines.append('| ' + ' | '.join(_cells(row, document)) + ' |')
    setup = document['setup']
    lines += ['', f'{setup["nproc"]} processes ({setup["backend"]}, {setup["device"]}, torch '
              f'{setup["torch"]}) on {setup["config"]}: {setup["rounds"]} rounds, '
              f'{setup["stream_steps"]} steps per rank, a state every {setup["interval"]} steps; '
              f'measured with `{setup["command"]}`.']
    return '\n'.join(lines) + '\n'


def _lost(row: dict) -> str:
    if row.get('resume_identical'):
        return 'nothing: the resumed run\'s records equal the uninterrupted run\'s'
    return f'**records differ from the uninterrupted run** (resume exit {row.get("resume_exit")})'


def _kept(kept: dict) -> str:
    return '; '.join(f'rank {r}: steps {", ".join(map(str, s))}' for r, s in kept.items()) \
        or 'no state'


def _cells(row: dict, document: dict) -> list[str]:
    fault = row['fault']
    if fault == 'killed_rank':
        return [f'SIGKILL to rank {row["rank"]} of {row["nproc"]} before step {row["step"] + 1}',
                f'the job ended by itself {row["seconds_to_end"]:.1f} s later, exit '
                f'{row["exit"]}, ' + ('naming' if row['named_lost_rank'] else '**not naming**')
                + f' rank {row["rank"]}; {row["left_behind"]} processes left. A resume with '
                f'{row["other_nproc"]} process(es): exit {row["other_exit"]}, '
                + ('refused with the reason' if row['other_messages'] else '**no reason**')
                + f'; with {row["nproc"]}: exit {row["resume_exit"]}',
                'the states of ' + _kept(row['kept']), _lost(row)]
    if fault == 'preemption':
        how = dict(all='every process of the job', group='the launcher\'s process group '
                   '(Ctrl-C)', self='every rank, by itself')[row['to']]
        took = (f' {row["seconds_to_end"]:.1f} s after the signal'
                if row.get('seconds_to_end') is not None else '')
        workers = (f', {row["workers"]} data-loader workers per rank' if row.get('workers')
                   else '')
        return [f'{row["signal"]} to {how} during step {row["step"] + 1}{workers}',
                f'state saved after step {"/".join(map(str, row["saved_at"]))} on every '
                f'rank, exit {row["exit"]}{took}; {row["left_behind"]} processes left',
                'the states of ' + _kept(row['kept']), _lost(row)]
    if fault == 'torn_state':
        what = ' and '.join(f'{d} rank {i}\'s newest state' for i, d in
                            enumerate(row['damaged'].values()))
        return [what[0].upper() + what[1:] + ' (after a preemption)',
                ('each refused with a message naming the file and what is wrong'
                 if row['refused_with_reason'] else '**not refused with a reason**')
                + f'; resumed from step {row["resumed_from"]}, the newest whole on every rank',
                'the previous states; the damaged files, renamed `.damaged`'
                if row['damaged_kept'] else 'the previous states', _lost(row)]
    if fault == 'write_kill':
        return [f'A kill at each of {len(row["outcomes"])} points of a state write '
                f'({", ".join(row["outcomes"])})',
                f'the file then held: {", ".join(sorted(set(row["outcomes"].values())))}; '
                f'{row["loaded_wrongly"]} loaded wrongly',
                'the old state, or the new one whole', 'nothing'
                if not row['loaded_wrongly'] else '**a state loaded wrongly**']
    if fault == 'full_disk':
        target = ('rank 0\'s resume state' if row['where'] == 'state'
                  else 'the results (`tta_results.json`)')
        partial = ', '.join(f'`{n}` (complete: {str(c).lower()})'
                            for n, c in row['partial'].items()) or 'none'
        complete = ', '.join(f'`{n}`' for n in row['complete_files']) or 'none'
        return [f'`OSError(ENOSPC)` writing {target}',
                f'exit {row["exit"]} with "No space left on device"; partial results: {partial}; '
                f'files claiming completeness: {complete}; temporary files left: '
                f'{len(row["temporary_files"])}',
                'the states of ' + _kept(row['kept']), _lost(row)]
    if fault == 'nan_storm':
        return [f'NaN inputs on rank {row["rank"]} only, {row["steps"]} steps from step '
                f'{row["step"] + 1} (`on_bad_input=\'skip\'`)',
                f'every rank skipped them together: weights identical on every rank after '
                f'each of {row["steps_checked"]} steps'
                if row['identical_every_step'] else '**the ranks\' weights differ**',
                f'the weights of before the storm ({row["unchanged_steps"]} steps without an '
                f'update); {row["nonfinite_steps"]} non-finite steps counted in the results',
                f'the {row["steps"]} steps\' updates, skipped by the policy']
    if fault == 'load':
        ranks = row['ranks']
        rss = '; '.join(f'{r["rss_mb_round_2"]:.0f} -> {r["rss_mb_last"]:.0f} MB'
                        for r in ranks)
        fds = '; '.join(f'{r["fds_round_2"]} -> {r["fds_last"]} (max {r["fds_max_from_round_2"]})'
                        for r in ranks)
        return [f'{row["rounds"]} rounds, {ranks[0]["steps"]} steps per rank, a state every '
                f'{row["interval"]} step(s)',
                f'resident memory per rank from round 2 to the last: {rss}; open files: {fds}',
                f'at most {max(r["state_files_max"] for r in ranks)} state files per rank '
                f'({max(r["state_mb_max"] for r in ranks):.2f} MB), the older pruned',
                'nothing' if row['exit'] == 0 else f'**exit {row["exit"]}**']
    raise ValueError(f'unknown fault {fault!r}')


# ------------------------------------------------------------------------------ main


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', help='the config (not with --tiny)')
    parser.add_argument('checkpoint', nargs='?')
    parser.add_argument('--tiny', action='store_true',
                        help='a tiny model and stream made here (Check.tiny), as the tests run')
    parser.add_argument('--nproc', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--interval', type=int, default=2, help='test_cfg.checkpoint_interval')
    parser.add_argument('--load-rounds', type=int, default=20)
    parser.add_argument('--out', default='work_dirs/faults')
    parser.add_argument('--only', nargs='+', choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args(argv)
    if args.nproc < 2:
        parser.error('--nproc must be >= 2 (the faults are those of several processes)')
    if args.tiny == bool(args.config and args.checkpoint) or (args.tiny and args.config):
        parser.error('give CONFIG and CHECKPOINT, or --tiny')
    return args


def run_all(check: Check, only=SCENARIOS, load_rounds: int = 20) -> list[dict]:
    rows = []
    for name in only:
        print(f'fault_check: {name}', flush=True)
        if name == 'preemption':
            rows += [check.preemption('SIGTERM', 'all', workers=2),
                     check.preemption('SIGINT', 'group')]
        elif name == 'torn_state':
            rows.append(check.torn_state())
        elif name == 'write_kill':
            rows.append(write_kill(osp.join(check.fresh('write_kill'))))
        elif name == 'full_disk':
            rows += [check.full_disk('state'), check.full_disk('results')]
        elif name == 'load':
            rows.append(check.load(load_rounds))
        else:
            rows.append(getattr(check, name)())
    return rows


def _relative(value, places: list[tuple[str, str]]):
    if isinstance(value, str):
        for absolute, relative in places:
            value = value.replace(absolute, relative)
    elif isinstance(value, list):
        value = [_relative(v, places) for v in value]
    return value


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    options = dict(nproc=args.nproc, rounds=args.rounds, interval=args.interval,
                   cfg_options=args.cfg_options)
    check = (Check.tiny(args.out, **options) if args.tiny else
             Check(args.config, args.checkpoint, args.out, **options))
    rows = run_all(check, args.only, args.load_rounds)
    from mmengine.config import Config
    gpu = torch.cuda.is_available()
    cfg = Config.fromfile(check.config)
    cfg.merge_from_dict(check.cfg_options)
    # what the processes used: the config's backend, gloo where there is no GPU (stag_seg.compat)
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'nccl') if gpu else 'gloo'
    command = 'python tools/fault_check.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    config = (f'`{osp.relpath(DEMO_CONFIG, ROOT)}` shrunk to a tiny model and stream '
              '(`Check.tiny`)' if args.tiny else f'`{osp.relpath(args.config, ROOT)}`')
    document = dict(setup=dict(config=config, nproc=args.nproc,
                               rounds=args.rounds, interval=args.interval,
                               stream_steps=check.stream_steps,
                               backend=backend,
                               device=torch.cuda.get_device_name() if gpu else 'CPU',
                               torch=torch.__version__, command=command),
                    rows=rows)
    # the document names files as the command did: relative to the repository, not this machine
    places = [(check.out, args.out.rstrip('/')), (ROOT + os.sep, ''),
              (sys.executable, 'python')]
    document = json.loads(json.dumps(document), object_hook=lambda d: {
        k: _relative(v, places) for k, v in d.items()})
    with open(osp.join(args.out, 'faults.json'), 'w') as f:
        json.dump(document, f, indent=2)
    text = faults_markdown(document)
    with open(osp.join(args.out, 'faults.md'), 'w') as f:
        f.write(text)
    print(text)
    print(f'written: {osp.join(args.out, "faults.json")}, {osp.join(args.out, "faults.md")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
