#!/usr/bin/env python
"""Benchmark (not a test): the gated rate atlas (hit_nb.atlas.AtlasHVAE, gate=True) trained with settings the library's
training does not offer, and set against the converged yardstick (bench/yardstick.py).

It trains the atlas of the two-layer GHVAE on mnist5k with the atlas preset (batch 128, Adam at 1e-3, each image's betas
log-uniform on [0.1, 10]^2, one torch thread), checkpointing every 25 epochs into --out (a rerun resumes), optionally
  --stop             the prior a constant inside the gate (the gradient of the gated posterior does not reach it),
  --seed S           another seed (default 2),
  --straight_through a shut gate (v > 0) passes the gradient of 1 - v (slope -1, as at v = 0) instead of none, so
                     that it can reopen,
then evaluates the yardstick's goals (loss within eps at the 9 points, the separate models' rates reached at no worse
distortion, (10, 10) switched off, mu2 against Meyen's bound):

    python bench/atlas_gate.py --epochs 1500       # about 45 min on one core: 3x a yardstick model's training time
    python bench/atlas_gate.py --smoke             # seconds

With the default settings it trains what `hit_train --atlas --epochs 1500 --threads 1` trains; the library's run adds
resume, logs and evaluation, this script the variants above. Checkpoints written before the gates moved into the library
(keys gate_net.*) are read too.
"""
import argparse, json, os, sys, time
from pathlib import Path
import torch
try: import hit_nb
except ImportError:                                      # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hit_nb.atlas import AtlasHVAE, atlas_loss
from hit_nb.data import load_dataset
from hit_nb.models import build_model
from hit_nb.trainer import tune_malloc
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yardstick

def library_keys(state:dict) -> dict:
    "A gated atlas's state dict with the keys of hit_nb.atlas (this script's first version named the gates gate_net)."
    if not any(k.startswith('gate_net.') for k in state): return state
    out = {k.replace('gate_net.', 'gate.net.', 1): v for k, v in state.items()}
    return dict(out, **{'gate.log_lo': state['film.log_lo'], 'gate.log_hi': state['film.log_hi']})

def straight_through(gate):
    "Make `gate` (a BetaGate) pass a gradient of slope -1 through its shut gates (its values unchanged)."
    from hit_nb.atlas import GATE_START
    def forward(betas):
        v = gate.net(gate.unit(betas)) + GATE_START
        g = 1 - v.clamp(max=0).exp() - v.relu()                   # the shut part continues with slope -1
        return list((g + v.relu().detach()).split(gate.channels, 1))   # ... and its value is put back to 0
    gate.forward = forward

def with_stop(atlas):
    "Stop the gradient of `atlas`'s gated posteriors at the prior (the library lets it through)."
    gate = atlas._posterior_gate
    atlas.base.posterior_gate = lambda i, q, p: gate(i, q, None if p is None else (p[0].detach(), p[1].detach()))

def train_gated(out:Path, epochs:int, seed:int=2, batch_size:int=128, lr:float=1e-3, every:int=25, through:bool=False,
                stop:bool=False) -> tuple:
    "Train (or resume) the gated atlas in `out` (with the variants `through`, `stop`); (model, training seconds)."
    torch.manual_seed(seed)
    data = load_dataset('mnist5k')
    model = AtlasHVAE(build_model('ghvae', 'mnist5k'))
    if through: straight_through(model.gate)
    if stop: with_stop(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ck, start, secs = out/'checkpoint.pt', 0, 0.
    if ck.is_file():
        s = torch.load(ck, weights_only=False)
        model.load_state_dict(library_keys(s['model'])); opt.load_state_dict(s['optimizer'])
        start, secs = s['epoch'], s['seconds']; torch.set_rng_state(s['rng'])
    model.train()
    for e in range(start, epochs):
        t0 = time.perf_counter()
        for x, _ in data.batches('train', batch_size):
            loss = atlas_loss(model, x)['loss']
            opt.zero_grad(); loss.backward(); opt.step()
        secs += time.perf_counter() - t0
        if (e + 1) % every == 0 or e + 1 == epochs:
            torch.save(dict(model=model.state_dict(), optimizer=opt.state_dict(), epoch=e + 1, seconds=secs,
                            rng=torch.get_rng_state()), out/'checkpoint.tmp')
            os.replace(out/'checkpoint.tmp', ck)
            print(f"  epoch {e + 1}: loss {loss.item():.1f}, {secs:.0f} s", flush=True)
    model.eval()
    return model, secs

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epochs', type=int, default=1500, help='epochs of the atlas')
    p.add_argument('--out', default='runs/bench/atlas-gate', help='its checkpoint folder')
    p.add_argument('--curves', default='bench/results/yardstick-mnist5k', help="the yardstick's curves")
    p.add_argument('--stop', action='store_true', help="stop the gated posterior's gradient at the prior")
    p.add_argument('--seed', type=int, default=2, help='seed of the weights, the betas and the data order')
    p.add_argument('--straight_through', action='store_true', help='shut gates pass a gradient (they can reopen)')
    p.add_argument('--smoke', action='store_true', help='2 epochs, goals on a copy of seed 1 as seed 2 if need be')
    p.add_argument('--json', help='also write the goals to this file')
    a = p.parse_args(argv)
    torch.set_num_threads(1); tune_malloc()
    out = Path(a.out + ('-smoke' if a.smoke else '')); out.mkdir(parents=True, exist_ok=True)
    print(f"1 torch thread, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    model, secs = train_gated(out, 2 if a.smoke else a.epochs, seed=a.seed, through=a.straight_through, stop=a.stop)
    rows = yardstick.summary(Path(a.curves), False)
    g = yardstick.atlas_goals(model, rows, train_seconds=secs, epochs=2 if a.smoke else a.epochs, name=str(out),
                              n_samples=200 if a.smoke else 2000)
    yardstick.print_goals(g)
    if a.json: Path(a.json).write_text(json.dumps(g, indent=1))

if __name__ == '__main__': main()
