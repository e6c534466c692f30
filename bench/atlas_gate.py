#!/usr/bin/env python
"""Benchmark (not a test): a variant of the rate atlas that can switch a layer off, measured against the converged
yardstick (bench/yardstick.py). Not kept in the library unless it wins.

The atlas of `hit_nb.atlas` modulates every ReLU input of the GHVAE by a function of the log-betas. Nothing in it can
make a posterior *equal* its prior, so a layer's rate never reaches 0 where a separately trained model switches the
layer off (at (beta2, beta1) = (10, 10) the 48-epoch atlas keeps about 4 nats in z2). The variant adds a gate per
latent channel, g in [0, 1], a function of the betas (a second small network like the FiLM one), that moves each
channel's posterior towards its prior:

    mu' = mu_p + g (mu_q - mu_p),   sigma' = sigma_p + g (sigma_q - sigma_p),

for z2 (prior N(0, I)) and for z1 (prior p(z1 | z2) of the sampled z2, one gate per channel of the c x 4 x 4 map). A
closed gate (g = 0) gives exactly q = p, so exactly zero rate in that channel, and mu2 = 0 there: the probe on mu2 can
learn nothing from a switched-off z2. The gate is Multi-Rate VAE's bounded form, g = ReLU(1 - exp(v)), which is exactly
0 for v >= 0; v = log(0.1) + a small MLP of the standardised log-betas whose last layer starts at zero, so every gate
starts at 0.9.

It trains the gated atlas with the atlas preset (batch 128, Adam at a constant 1e-3, each image's betas log-uniform on
[0.1, 10]^2, one torch thread), checkpointing every 25 epochs into --out (a rerun resumes), then sets it against the
yardstick with bench/yardstick.py's goals (loss within eps at the 9 points, the separate models' rates reached at no
worse distortion, (10, 10) switched off, mu2 against Meyen's bound):

    python bench/atlas_gate.py --epochs 1500       # about 45 min on one core: 3x a yardstick model's training time
    python bench/atlas_gate.py --smoke             # seconds
"""
import argparse, json, math, os, sys, time
from contextlib import contextmanager
from pathlib import Path
import torch, torch.nn as nn
try: import hit_nb
except ImportError:                                      # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hit_nb.atlas import AtlasHVAE, ATLAS_HIDDEN, atlas_loss
from hit_nb.data import load_dataset
from hit_nb.models import GHVAE, build_model, gauss_params, randn_like
from hit_nb.trainer import tune_malloc
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yardstick

GATE_START = math.log(0.1)        # v at initialisation: every gate 1 - 0.1 = 0.9 open

class GatedAtlas(AtlasHVAE):
    "An AtlasHVAE of a GHVAE whose every latent channel has a beta-dependent gate towards its prior."
    def __init__(self, base:GHVAE, beta_box=None, hidden:int=ATLAS_HIDDEN):
        super().__init__(base, beta_box, hidden)
        if type(base) is not GHVAE: raise ValueError("the gated atlas is written for the GHVAE")
        self.widths = [base.top_dim] + [base.c] * (base.n_layers - 1)
        L = base.n_layers
        self.gate_net = nn.Sequential(nn.Linear(L, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                      nn.Linear(hidden, sum(self.widths)))
        nn.init.zeros_(self.gate_net[-1].weight); nn.init.zeros_(self.gate_net[-1].bias)
        self._gates = None
        base.infer = self._gated_infer                  # the base model's own forward, sample, ... call this

    def gates(self, betas) -> list:
        "One (rows, channels) tensor of gates in [0, 1] per latent layer, top first."
        f = self.film
        u = 2 * (betas.log() - f.log_lo) / (f.log_hi - f.log_lo) - 1
        return list((1 - (self.gate_net(u) + GATE_START).exp()).relu().split(self.widths, 1))

    @contextmanager
    def at(self, betas):
        b = self.as_betas(betas)
        before, self._gates = self._gates, self.gates(b)
        try:
            with super().at(b) as m: yield m
        finally: self._gates = before

    def _gated_infer(self, x, generator=None, sample=True):
        "GHVAE.infer with each posterior moved towards its prior by the gates."
        m, g = self.base, self._gates
        mu, std = gauss_params(m.enc_top(x))
        mu, std = g[0] * mu, 1 + g[0] * (std - 1)                      # prior N(0, I)
        z = [mu + std * randn_like(mu, generator) if sample else mu]
        q, p = [(mu, std)], [None]
        for i, block in enumerate(m.enc):
            mu, std = block(z[-1], x)
            pm, ps = m.prior_params(i, z[-1])
            gi = g[i + 1].view(len(g[i + 1]), -1, 1, 1)
            mu, std = pm + gi * (mu - pm), ps + gi * (std - ps)
            q.append((mu, std)); p.append((pm, ps))
            z.append(mu + std * randn_like(mu, generator) if sample else mu)
        return z, q, p

def train_gated(out:Path, epochs:int, seed:int=2, batch_size:int=128, lr:float=1e-3, every:int=25) -> tuple:
    "Train (or resume) the gated atlas in `out`; (model, training seconds)."
    torch.manual_seed(seed)
    data = load_dataset('mnist5k')
    model = GatedAtlas(build_model('ghvae', 'mnist5k'))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ck, start, secs = out/'checkpoint.pt', 0, 0.
    if ck.is_file():
        s = torch.load(ck, weights_only=False)
        model.load_state_dict(s['model']); opt.load_state_dict(s['optimizer'])
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
    p.add_argument('--epochs', type=int, default=1500, help='epochs of the gated atlas')
    p.add_argument('--out', default='runs/bench/atlas-gate', help='its checkpoint folder')
    p.add_argument('--curves', default='bench/results/yardstick-mnist5k', help="the yardstick's curves")
    p.add_argument('--smoke', action='store_true', help='2 epochs, goals on a copy of seed 1 as seed 2 if need be')
    p.add_argument('--json', help='also write the goals to this file')
    a = p.parse_args(argv)
    torch.set_num_threads(1); tune_malloc()
    out = Path(a.out + ('-smoke' if a.smoke else '')); out.mkdir(parents=True, exist_ok=True)
    print(f"1 torch thread, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    model, secs = train_gated(out, 2 if a.smoke else a.epochs)
    rows = yardstick.summary(Path(a.curves), False)
    g = yardstick.atlas_goals(model, rows, train_seconds=secs, epochs=2 if a.smoke else a.epochs, name=str(out),
                              n_samples=200 if a.smoke else 2000)
    yardstick.print_goals(g)
    if a.json: Path(a.json).write_text(json.dumps(g, indent=1))

if __name__ == '__main__': main()
