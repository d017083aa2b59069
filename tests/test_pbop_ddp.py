"""PBop (and Bop2ndOrder) under DistributedDataParallel: two CPU processes (gloo, localhost only) train
the same tiny binarized network on different data shards; the binary weights must stay identical on
both ranks. PBop's flips are random, so this holds only because every rank draws the same coins
(same seed, same draw order) from the same all-reduced statistics."""
import os
import sys
import traceback
import multiprocessing as mp
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

WORLD, STEPS = 2, 5
LOOPBACK = 'lo' if sys.platform.startswith('linux') else 'lo0'
CASES = {  # name -> (optimizer, its kwargs): thresholds low enough that weights flip within 5 steps
    'PBop': ('PBop', dict(threshold=1e-3, gamma=0.2, sigma=0.1, scaler=1.0, seed=123)),
    'Bop2ndOrder': ('Bop2ndOrder', dict(threshold=1e-3, gamma=0.2, sigma=0.1)),
}
SEED_PER_RANK = 'PBop/ddp-seed+rank'  # the mistake to avoid: a different seed on each rank


def _net():
    from bnn_opt.testing import tiny_net
    return tiny_net(seed=0, n_in=16)  # the same initial network on every rank (DDP also broadcasts rank 0's)


def _train(rank: int, case: str, use_ddp: bool, seed_offset: int = 0) -> dict:
    "Train on this rank's own shard; return the binary weights and the flip counts."
    from torch.nn.parallel import DistributedDataParallel as DDP
    from bnn_opt.layers import binary_parameters
    from bnn_opt.hybrid import HybridOptimizer
    from bnn_opt.optimizers import Bop2ndOrder
    from bnn_opt.pbop import PBop
    cls, kw = CASES[case]
    if seed_offset: kw = dict(kw, seed=kw['seed'] + seed_offset)
    net = _net()
    model = DDP(net) if use_ddp else net
    opt = HybridOptimizer.for_model(net, dict(PBop=PBop, Bop2ndOrder=Bop2ndOrder)[cls], kw, torch.optim.Adam, dict(lr=1e-2))
    g = torch.Generator().manual_seed(1000 + rank)  # a different shard on each rank
    x = torch.randn(STEPS, 64, 16, generator=g)
    y = x[..., :4].argmax(-1)
    flips, expected, losses = [], [], []
    for t in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[t]), y[t])
        loss.backward()
        opt.step()
        flips.append(sum(int(opt.state[p]['flips']) for p in binary_parameters(net)))
        expected.append(sum(float(opt.state[p].get('expected_flips', 0.)) for p in binary_parameters(net)))
        losses.append(loss.item())
    return dict(weights=[p.detach().clone() for p in binary_parameters(net)],
                flips=torch.tensor(flips), expected=torch.tensor(expected, dtype=torch.float64), losses=torch.tensor(losses))


def _worker(rank: int, init_method: str, out_dir: str):
    "One rank: every case with and without DDP; results (or the traceback) saved to out_dir."
    try:
        os.environ['GLOO_SOCKET_IFNAME'] = LOOPBACK  # traffic on the loopback interface only
        torch.set_num_threads(1)
        dist.init_process_group('gloo', init_method=init_method, rank=rank, world_size=WORLD,
                                timeout=timedelta(seconds=60))
        res = {f'{case}/{"ddp" if d else "local"}': _train(rank, case, d) for case in CASES for d in (True, False)}
        res[SEED_PER_RANK] = _train(rank, 'PBop', True, seed_offset=rank)
        torch.save(res, Path(out_dir) / f'rank{rank}.pt')
        dist.barrier()  # both ranks' results are on disk and neither communicates again
    except BaseException:
        (Path(out_dir) / f'rank{rank}.err').write_text(traceback.format_exc())
        raise
    # No teardown at all: a rank that destroyed its gloo group (pairs, store, threads) while the other was still
    # destroying its own, or ran C++ static destructors, aborted now and then with exit code -6 after a complete,
    # correct run. After the barrier nothing is left to say, so each rank leaves at once with os._exit, which runs
    # no destructor; the kernel closes the sockets and the store file is in the test's temporary folder.
    os._exit(0)


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    if not dist.is_available() or not dist.is_gloo_available(): pytest.skip("torch.distributed with gloo is not available")
    d = tmp_path_factory.mktemp('pbop_ddp')
    init = f'file://{d / "store"}'  # a FileStore rendezvous: no port to choose
    ctx = mp.get_context('spawn')
    procs = [ctx.Process(target=_worker, args=(r, init, str(d))) for r in range(WORLD)]
    for p in procs: p.start()
    for p in procs: p.join(timeout=120)
    hung = [p for p in procs if p.is_alive()]
    for p in hung: p.terminate(); p.join(5)
    errs = '\n'.join(f.read_text() for f in sorted(d.glob('rank*.err')))
    assert not hung, f"rank(s) still running after 120 s\n{errs}"
    assert all(p.exitcode == 0 for p in procs), f"exit codes {[p.exitcode for p in procs]}\n{errs}"
    return [torch.load(d / f'rank{r}.pt', weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize('case', list(CASES))
def test_binary_weights_identical_under_ddp(results, case):
    r0, r1 = (res[f'{case}/ddp'] for res in results)
    assert not torch.equal(r0['losses'], r1['losses']), "the ranks should see different data"
    assert int(r0['flips'].sum()) > 0, "some weights must flip, or the test proves nothing"
    assert torch.equal(r0['flips'], r1['flips'])
    for a, b in zip(r0['weights'], r1['weights']):
        assert torch.equal(a, b)
        assert ((a == 1) | (a == -1)).all()


@pytest.mark.parametrize('case', list(CASES))
def test_weights_diverge_without_ddp(results, case):
    "The control: without gradient all-reduce the same seed on different shards gives different weights."
    r0, r1 = (res[f'{case}/local'] for res in results)
    assert int(r0['flips'].sum()) > 0 and int(r1['flips'].sum()) > 0
    assert not all(torch.equal(a, b) for a, b in zip(r0['weights'], r1['weights']))


def test_pbop_flips_are_random(results):
    "PBop's flips were drawn (0 < p < 1 somewhere), so identical weights under DDP are not a deterministic accident."
    r0 = results[0]['PBop/ddp']
    assert (r0['expected'] != r0['flips'].double()).any()


def test_seed_per_rank_diverges(results):
    "With seed + rank the coins differ between ranks and so do the binary weights, although the gradients agree."
    r0, r1 = (res[SEED_PER_RANK] for res in results)
    assert not all(torch.equal(a, b) for a, b in zip(r0['weights'], r1['weights']))
