#!/usr/bin/env python
"""Benchmark (not a test): seconds per training step of hit_nb against a reference-style step, batch 256, one CPU thread.

Three shapes of the paper's models: GHVAE-colour (3x32x32, c=32, z2 32, Gaussian sigma_x=0.71), LVAE-colour (same shape),
GHVAE-MNIST (1x28x28 binary, c=16, z2 20, Bernoulli). Data are synthetic, seeded uint8 images (speed does not depend
on their content).

ours       the library's step `hit_nb.trainer.ModelStep`, the one `hit_nb.train.train` runs, over one batch at a
           time: batches from the library's in-memory data set (`hit_nb.data`: uint8 in memory, index_select,
           `to_float`), the step (`model_loss`, `zero_grad(set_to_none=True)`, backward, Adam, the row of logged sums
           on the device, no .item()), and that row read on the host once per step (one .tolist() of four numbers:
           microseconds on the CPU; the trainer reads it once an epoch).
ref        a re-implementation of how the reference code trains, written from reading it:
           separate mu / std heads (two Linear or two Conv layers), softplus std, noise from `torch.randn` on the CPU then
           `.to(device)` per reparameterisation, `torch.distributions` Independent(Normal) for q and p, `kl_divergence`
           for both rates, log-likelihood from Independent(Normal(x_hat, sigma_x), 3).log_prob (Bernoulli: sigmoid, then
           x log(p+1e-8) + (1-x) log(1-p+1e-8)), loss = -mean(ELBO_beta), default Adam, 4 .item() per step, data from a
           DataLoader(batch_size=256, shuffle=True, num_workers=0) over a Dataset that turns each image into a tensor
           with torchvision's ToTensor (PIL image, as torchvision's SVHN/MNIST datasets hand out; MNIST rounded to 0/1).

Both models get the same weights (the reference-style one is loaded from ours, heads split) and the script checks that
both compute the same loss on the same batch and noise, and that the reference-style models have the paper's parameter
counts (475,811 / 408,131 / 122,713).

Protocol: one process, torch.set_num_threads(1); warm-up steps for both; then blocks of a few steps alternate
ours/ref (the order flips every round) so machine noise hits both; each step is timed from fetching its batch to the
end of its bookkeeping. Each shape runs for a time budget (default 100/80/60 s, --quick 12/10/8 s) with a minimum
and a maximum number of steps per side, so a busy machine gives fewer steps, not a longer run. Reported: median, p10,
p90 seconds per step and the ratio of the medians ours/ref; beside them the median process CPU time per step (robust
to other processes taking the core, not to cache effects) and the median number of minor page faults per step.

One process means one heap: glibc's malloc state (its dynamic mmap threshold, and how often it hands freed tensor
memory back to the OS, to fault it in again on the next step) is shared by both sides. `--separate` instead runs each
side in its own fresh process (alternating ours/ref processes, several rounds), which is how a real run of either
program behaves; it is noisier, since consecutive processes see different machine load.

    python bench/train_step.py                 # default run (about 3-5 minutes)
    python bench/train_step.py --quick         # small run (under a minute)
    python bench/train_step.py --separate      # each side in its own processes (about 5 minutes on a quiet machine)
    python bench/train_step.py --json out.json # also write the numbers
"""
import argparse, itertools, json, os, platform, statistics, sys, time
try: import resource                                      # page-fault counts (Unix); optional
except ImportError: resource = None

import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F
from torch.distributions import Independent, Normal, kl_divergence

try: import hit_nb.data
except ImportError:                                      # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import hit_nb.data
from hit_nb.data import ImageData                          # importing hit_nb.data first makes torchvision importable
from hit_nb.models import build_model, n_params
from hit_nb.losses import model_loss
from types import SimpleNamespace
from hit_nb.trainer import ModelStep, prepare_model, tune_malloc

try:
    from torchvision.transforms import ToTensor
    TV = True
except Exception:                                        # torchvision missing: the same per-image work by hand
    TV = False
    class ToTensor:
        "PIL image -> float32 CHW in [0, 1], per image, like torchvision's ToTensor."
        def __call__(self, pic):
            a = np.array(pic, dtype=np.uint8, copy=True)
            if a.ndim == 2: a = a[:, :, None]
            return torch.from_numpy(a).permute(2, 0, 1).contiguous().float().div(255)
from PIL import Image

BATCH, LR, N_IMAGES = 256, 3e-4, 16 * 256               # 16 full batches per synthetic epoch
SHAPES = {  # name -> (hit_nb model, ARCHS key, paper parameter count)
    'GHVAE-colour': ('ghvae', 'svhn', 475_811),
    'LVAE-colour':  ('lvae',  'svhn', 408_131),
    'GHVAE-MNIST':  ('ghvae', 'mnist', 122_713),
}

# ---------------------------------------------------------------------------------------------------------------------
# Reference-style models: separate mu/std heads, torch.distributions, CPU noise.

def mid_kw(size): return dict(kernel_size=4, stride=2, padding=1) if size == 8 else dict(kernel_size=4, stride=1, padding=0)

def reparam(mu, std):
    "Reference style: noise drawn on the CPU, then moved to the device, at every call."
    return mu + std * torch.randn(mu.shape).to(mu.device)

class RefBase(nn.Module):
    "p(z1|z2) MLP with separate heads, the decoder, and the reference-style loss."
    def _shared(self, C, c, dz, mid, likelihood, sigma_x):
        self.c, self.F, self.likelihood = c, 16 * c, likelihood
        self.sigma = torch.tensor(float(sigma_x)) if likelihood == 'gaussian' else None   # plain tensor attribute
        self.p_fc = nn.Linear(dz, self.F // 2)
        self.p_mu, self.p_std = nn.Linear(self.F // 2, self.F), nn.Linear(self.F // 2, self.F)
        self.d_mid, self.d_up1, self.d_up2 = nn.ConvTranspose2d(c, c, **mid), nn.ConvTranspose2d(c, c, 4, 2, 1), nn.ConvTranspose2d(c, C, 4, 2, 1)

    def prior_z1(self, z2):
        h = F.relu(self.p_fc(z2))
        return self.p_mu(h).view(-1, self.c, 4, 4), F.softplus(self.p_std(h)).view(-1, self.c, 4, 4)

    def decode(self, z1): return self.d_up2(F.relu(self.d_up1(F.relu(self.d_mid(z1)))))

    def elbo_terms(self, x, x_hat, qz, qy, py):
        pz = Independent(Normal(torch.zeros_like(qz.mean), torch.ones_like(qz.mean)), 1)
        kl_z, kl_y = kl_divergence(qz, pz), kl_divergence(qy, py)
        if self.likelihood == 'gaussian':
            ll = Independent(Normal(x_hat, self.sigma.to(x.device)), 3).log_prob(x)
        else:
            p = torch.sigmoid(x_hat)
            ll = (x * torch.log(p + 1e-8) + (1 - x) * torch.log(1 - p + 1e-8)).sum((1, 2, 3))
        return ll, kl_z, kl_y

class RefGHVAE(RefBase):
    def __init__(self, shape, c, dz, likelihood, sigma_x):
        super().__init__()
        C, H, _ = shape
        mid = mid_kw(H // 4)
        self._shared(C, c, dz, mid, likelihood, sigma_x)
        # q(z2|x)
        self.e1, self.e2, self.e3 = nn.Conv2d(C, c, 4, 2, 1), nn.Conv2d(c, c, 4, 2, 1), nn.Conv2d(c, c, **mid)
        self.qz_mu, self.qz_std = nn.Linear(self.F, dz), nn.Linear(self.F, dz)
        # q(z1|z2,x)
        self.x1, self.x2 = nn.Conv2d(C, c, 4, 2, 1), nn.Conv2d(c, c, 4, 2, 1)
        self.z_fc, self.z_up = nn.Linear(dz, self.F), nn.ConvTranspose2d(c, c, **mid)
        self.merge = nn.Conv2d(2 * c, c, **mid)
        self.qy_mu, self.qy_std = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x, beta2, beta1):
        h = F.relu(self.e3(F.relu(self.e2(F.relu(self.e1(x)))))).flatten(1)
        qz = Independent(Normal(self.qz_mu(h), F.softplus(self.qz_std(h))), 1)
        z2 = reparam(qz.mean, qz.stddev)
        zb = F.relu(self.z_up(F.relu(self.z_fc(z2)).view(-1, self.c, 4, 4)))
        xb = F.relu(self.x2(F.relu(self.x1(x))))
        t = F.relu(self.merge(torch.cat([zb, xb], 1)))
        qy = Independent(Normal(self.qy_mu(t), F.softplus(self.qy_std(t))), 3)
        z1 = reparam(qy.mean, qy.stddev)
        py = Independent(Normal(*self.prior_z1(z2)), 3)
        ll, kl_z, kl_y = self.elbo_terms(x, self.decode(z1), qz, qy, py)
        return -(ll - beta1 * kl_y - beta2 * kl_z).mean(), ll, kl_z, kl_y

class RefLVAE(RefBase):
    def __init__(self, shape, c, dz, likelihood, sigma_x):
        super().__init__()
        C, H, _ = shape
        mid = mid_kw(H // 4)
        self._shared(C, c, dz, mid, likelihood, sigma_x)
        self.u1, self.u2 = nn.Conv2d(C, c, 4, 2, 1), nn.Conv2d(c, c, 4, 2, 1)
        self.e3 = nn.Conv2d(c, c, **mid)
        self.qz_mu, self.qz_std = nn.Linear(self.F, dz), nn.Linear(self.F, dz)
        self.t = nn.Conv2d(c, c, **mid)
        self.qy_mu, self.qy_var = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x, beta2, beta1):
        d1 = F.relu(self.u2(F.relu(self.u1(x))))
        h = F.relu(self.e3(d1)).flatten(1)
        qz = Independent(Normal(self.qz_mu(h), F.softplus(self.qz_std(h))), 1)
        z2 = reparam(qz.mean, qz.stddev)
        mu_p, std_p = self.prior_z1(z2)
        t = F.relu(self.t(d1))
        mu_hat, v_hat = self.qy_mu(t), F.softplus(self.qy_var(t))         # v_hat is a variance
        var_p = std_p.pow(2)
        q_var = v_hat * var_p / (v_hat + var_p)
        q_mu = (mu_hat * var_p + mu_p * v_hat) / (v_hat + var_p)
        qy = Independent(Normal(q_mu, q_var.sqrt()), 3)
        z1 = reparam(qy.mean, qy.stddev)
        py = Independent(Normal(mu_p, std_p), 3)
        ll, kl_z, kl_y = self.elbo_terms(x, self.decode(z1), qz, qy, py)
        return -(ll - beta1 * kl_y - beta2 * kl_z).mean(), ll, kl_z, kl_y

def ref_from_ours(ours):
    "A reference-style model with the same weights as the hit_nb model `ours` (fused heads split into mu / std)."
    lvae = type(ours).__name__ == 'LVAE'
    ref = (RefLVAE if lvae else RefGHVAE)(ours.shape, ours.c, ours.top_dim, ours.likelihood,
                                          float(ours.sigma_x) if ours.sigma_x is not None else None)
    def cp(dst, src):
        dst.weight.data.copy_(src.weight.data); dst.bias.data.copy_(src.bias.data)
    def split(dmu, dstd, src):
        w, b = src.weight.data.chunk(2, 0), src.bias.data.chunk(2, 0)
        dmu.weight.data.copy_(w[0]); dmu.bias.data.copy_(b[0]); dstd.weight.data.copy_(w[1]); dstd.bias.data.copy_(b[1])
    cp(ref.p_fc, ours.prior[0][0]); split(ref.p_mu, ref.p_std, ours.prior[0][2])
    cp(ref.d_mid, ours.dec[0]); cp(ref.d_up1, ours.dec[2]); cp(ref.d_up2, ours.dec[4])
    if lvae:
        cp(ref.u1, ours.up[0]); cp(ref.u2, ours.up[2]); cp(ref.e3, ours.enc_top[0]); split(ref.qz_mu, ref.qz_std, ours.enc_top[3])
        cp(ref.t, ours.enc_z1[0]); split(ref.qy_mu, ref.qy_var, ours.enc_z1[2])
    else:
        et, b = ours.enc_top, ours.enc[0]
        cp(ref.e1, et[0]); cp(ref.e2, et[2]); cp(ref.e3, et[4]); split(ref.qz_mu, ref.qz_std, et[7])
        cp(ref.x1, b.xb[0]); cp(ref.x2, b.xb[2]); cp(ref.z_fc, b.zb[0]); cp(ref.z_up, b.zb[3]); cp(ref.merge, b.merge[0])
        split(ref.qy_mu, ref.qy_std, b.head)
    return ref

# ---------------------------------------------------------------------------------------------------------------------
# Data

def synthetic_raw(shape, n, seed):
    "Seeded uint8 images 0..255 (N, C, H, W) and labels."
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8), torch.randint(0, 10, (n,), generator=g)

class RefImages(torch.utils.data.Dataset):
    "The torchvision-dataset pattern: one PIL image per __getitem__, then a per-image transform."
    def __init__(self, raw, labels, binary):
        if raw.shape[1] == 1: self.data, self.mode = raw[:, 0].numpy(), 'L'              # MNIST: (N, 28, 28)
        else: self.data, self.mode = raw.permute(0, 2, 3, 1).contiguous().numpy(), 'RGB'  # HWC
        self.labels, self.binary, self.tf = labels.tolist(), binary, ToTensor()
    def __len__(self): return len(self.labels)
    def __getitem__(self, i):
        x = self.tf(Image.fromarray(self.data[i], mode=self.mode))
        if self.binary: x = torch.round(x)                                                  # static binarisation
        return x, self.labels[i]

def endless(make_epoch):
    "Batches forever, starting a fresh epoch (iterator) when one runs out."
    while True: yield from make_epoch()

# ---------------------------------------------------------------------------------------------------------------------
# The two steps

class Ours:
    "The training step of hit_nb.train.train (`ModelStep`), one batch per call, its row of sums read on the host."
    def __init__(self, model, raw, labels, seed):
        model = prepare_model(model, 'cpu')                   # channels_last on the CPU, as train() does
        self.model, self.opt = model, torch.optim.Adam(model.parameters(), lr=LR)
        x = raw if model.likelihood == 'gaussian' else (raw >= 128).to(torch.uint8)   # the library's binarisation
        self.data = ImageData('synthetic', x, labels, x[:BATCH], labels[:BATCH], model.likelihood)
        gen = torch.Generator().manual_seed(seed)
        self.it = endless(lambda: self.data.batches('train', BATCH, shuffle=True, generator=gen, device='cpu'))
        self.step_ = ModelStep(SimpleNamespace(model=model, opt=self.opt, ctrl=None, cfg=dict(betas=[1., 1.]),
                                               dev=torch.device('cpu')))
        model.train()
    def step(self):
        x, _ = next(self.it)
        self.record = self.step_(x, self.step_.betas, 1.).tolist()

class Ref:
    "The reference-style step: DataLoader + ToTensor, distributions, 4 .item() per step."
    def __init__(self, model, raw, labels, seed):
        self.model, self.opt = model, torch.optim.Adam(model.parameters(), lr=LR)
        ds = RefImages(raw, labels, binary=model.likelihood == 'bernoulli')
        loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=0, drop_last=False,
                                             generator=torch.Generator().manual_seed(seed))
        self.it, self.dev, self.log = endless(lambda: iter(loader)), torch.device('cpu'), []
        model.train()
    def step(self):
        x, _ = next(self.it)
        x = x.to(self.dev)
        loss, ll, kl_z, kl_y = self.model(x, 1., 1.)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.log.append((loss.item(), ll.mean().item(), kl_z.mean().item(), kl_y.mean().item()))

# ---------------------------------------------------------------------------------------------------------------------

def check_same_math(name, ours, ref, raw):
    "Same weights, batch and noise (the global CPU RNG): both losses must agree."
    x = raw[:64].float().div(255)
    if ours.likelihood == 'bernoulli': x = (raw[:64] >= 128).float()
    torch.manual_seed(123); lo = model_loss(ours, x, torch.tensor([1., 1.]))['loss']
    torch.manual_seed(123); lr_ = ref(x, 1., 1.)[0]
    if not torch.allclose(lo, lr_, rtol=1e-4, atol=1e-3):
        raise AssertionError(f"{name}: the two steps compute different losses: ours {lo.item():.4f} vs reference-style {lr_.item():.4f}")
    return lo.item(), lr_.item()

def minflt():
    "Minor page faults of this process so far (0 where the platform does not tell)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else 0

def pct(v, q): return float(np.percentile(v, q))

def make_sides(name, seed=0):
    "Both steps of shape `name` with the same initial weights, after the parameter-count and same-math checks."
    kind, arch, count = SHAPES[name]
    torch.manual_seed(seed)
    ours = build_model(kind, arch)
    ref = ref_from_ours(ours)
    no, nr = n_params(ours), n_params(ref)
    if nr != count or no != count:
        raise AssertionError(f"{name}: parameter counts ours {no:,}, reference-style {nr:,}; the paper has {count:,}")
    raw, labels = synthetic_raw(ours.shape, N_IMAGES, seed)
    lo, lr_ = check_same_math(name, ours, ref, raw)
    return Ours(ours, raw, labels, seed), Ref(ref, raw, labels, seed), dict(params=count, check_loss_ours=lo, check_loss_ref=lr_)

def timed_step(side, t, c, pf):
    "One step of `side`, appending its wall seconds, CPU seconds and minor page faults."
    f0 = minflt()
    t0, c0 = time.perf_counter(), time.process_time()
    side.step()
    t.append(time.perf_counter() - t0); c.append(time.process_time() - c0); pf.append(minflt() - f0)

def summarise(info, t, c, pf):
    "Medians, p10/p90 and ratios from the per-step lists of both sides."
    res = dict(info, steps=len(t['ours']))
    for k, v in t.items():
        res[k] = dict(median=statistics.median(v), p10=pct(v, 10), p90=pct(v, 90), n=len(v), cpu_median=statistics.median(c[k]),
                      faults_median=statistics.median(pf[k]))
    res['ratio'] = res['ours']['median'] / res['ref']['median']
    res['cpu_ratio'] = res['ours']['cpu_median'] / res['ref']['cpu_median']
    return res

def bench_shape(name, max_steps, min_steps, budget, warmup, block, seed=0):
    "Time both steps of shape `name`: until `budget` seconds have passed (at least `min_steps`, at most `max_steps` per side)."
    a, b, info = make_sides(name, seed)
    for _ in range(warmup): a.step(); b.step()
    t, c, pf = {'ours': [], 'ref': []}, {'ours': [], 'ref': []}, {'ours': [], 'ref': []}
    sides = [('ours', a), ('ref', b)]
    t_end, r = time.perf_counter() + budget, 0
    while len(t['ours']) < max_steps and (len(t['ours']) < min_steps or time.perf_counter() < t_end):
        for key, side in (sides if r % 2 == 0 else sides[::-1]):
            for _ in range(block): timed_step(side, t[key], c[key], pf[key])
        r += 1
    return summarise(info, t, c, pf)

def child(name, key, steps, warmup):
    "--separate worker: one side of one shape in this fresh process; prints its per-step lists as JSON."
    torch.set_num_threads(1)
    if key == 'ours': tune_malloc()                      # what hit_nb.train.train does in its process
    a, b, info = make_sides(name)
    side = a if key == 'ours' else b
    a = b = None                                         # only this side's model and data stay alive
    for _ in range(warmup): side.step()
    t, c, pf = [], [], []
    for _ in range(steps): timed_step(side, t, c, pf)
    print(json.dumps(dict(info=info, t=t, c=c, pf=pf)))

def bench_shape_separate(name, rounds, steps, warmup):
    "Alternate fresh processes for ours and ref (order flips each round); pool their timed steps."
    import subprocess
    t, c, pf = {'ours': [], 'ref': []}, {'ours': [], 'ref': []}, {'ours': [], 'ref': []}
    for r in range(rounds):
        for key in (('ours', 'ref') if r % 2 == 0 else ('ref', 'ours')):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), '--_child', name, key, str(steps), str(warmup)],
                                 capture_output=True, text=True, check=True).stdout
            d = json.loads(out.strip().splitlines()[-1])
            t[key] += d['t']; c[key] += d['c']; pf[key] += d['pf']; info = d['info']
    return summarise(info, t, c, pf)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='few steps (under a minute in all; --separate: 1-2 minutes)')
    p.add_argument('--json', metavar='PATH', help='also write the numbers as JSON')
    p.add_argument('--shapes', nargs='+', default=list(SHAPES), choices=list(SHAPES), help='which shapes')
    p.add_argument('--separate', action='store_true', help='each side in its own fresh processes instead of one shared process')
    p.add_argument('--_child', nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._child: return child(a._child[0], a._child[1], int(a._child[2]), int(a._child[3]))
    torch.set_num_threads(1)
    if not a.separate: tune_malloc()   # process-wide, so in one process both sides get it: no credit to the library here
    # per shape: (max steps, min steps, time budget s, warm-up steps) per side; the budget keeps a run on a busy machine short
    plan = {'GHVAE-colour': (40, 12, 12, 3), 'LVAE-colour': (40, 12, 10, 3), 'GHVAE-MNIST': (100, 24, 8, 5)} if a.quick else \
           {'GHVAE-colour': (400, 60, 100, 10), 'LVAE-colour': (400, 60, 80, 10), 'GHVAE-MNIST': (800, 120, 60, 20)}
    block = 4 if a.quick else 5
    # --separate, per shape: (rounds, timed steps per process, warm-up steps per process)
    sep_plan = {'GHVAE-colour': (2, 8, 3), 'LVAE-colour': (2, 8, 3), 'GHVAE-MNIST': (2, 20, 5)} if a.quick else \
               {'GHVAE-colour': (4, 20, 5), 'LVAE-colour': (4, 20, 5), 'GHVAE-MNIST': (4, 50, 10)}
    print(f"train step benchmark: torch {torch.__version__}, {torch.get_num_threads()} thread, batch {BATCH}, "
          f"{'torchvision ToTensor' if TV else 'hand-written ToTensor'}, python {platform.python_version()}, "
          f"load avg {os.getloadavg()[0]:.2f}, {'quick' if a.quick else 'default'} run")
    if a.separate:
        print("protocol: each side in its own fresh processes (ours, ref, then ref, ours, ...), warm-up in each; seconds per step")
    else:
        print(f"protocol: one process, warm-up, then alternating blocks of {block} steps ours/ref (order flips each round); seconds per step")
    results, t_start = {}, time.perf_counter()
    for name in a.shapes:
        if a.separate: results[name] = bench_shape_separate(name, *sep_plan[name])
        else: results[name] = bench_shape(name, *plan[name][:4], block)
    hdr = f"{'shape':<13} {'params':>8} {'steps':>5} | {'ours med':>8} {'p10':>6} {'p90':>6} | {'ref med':>8} {'p10':>6} {'p90':>6} | {'ours/ref':>8} | {'cpu ours':>8} {'cpu ref':>8} {'ratio':>5} | {'faults ours':>11} {'ref':>6}"
    print('\n' + hdr + '\n' + '-' * len(hdr))
    for name, r in results.items():
        o, f = r['ours'], r['ref']
        print(f"{name:<13} {r['params']:>8,} {r['steps']:>5} | {o['median']:8.4f} {o['p10']:6.4f} {o['p90']:6.4f} | "
              f"{f['median']:8.4f} {f['p10']:6.4f} {f['p90']:6.4f} | {r['ratio']:8.2f} | {o['cpu_median']:8.4f} {f['cpu_median']:8.4f} {r['cpu_ratio']:5.2f} | {o['faults_median']:11.0f} {f['faults_median']:6.0f}")
    print('-' * len(hdr))
    print("same-math check (same weights, batch, noise): " + ', '.join(
          f"{n} {r['check_loss_ours']:.3f}/{r['check_loss_ref']:.3f}" for n, r in results.items()))
    print("wall = perf_counter per step (the numbers that count); cpu = process CPU seconds per step (median), which\n"
          "excludes time the process waited for a core: when the two agree the machine was quiet, when wall >> cpu it was not;\n"
          "faults = median minor page faults per step (glibc handing freed tensor memory back to the OS and faulting it in again).")
    print(f"total {time.perf_counter() - t_start:.0f} s; goal for the library: ours/ref <= 0.80")
    for name, r in results.items():
        print(f"{name}: ours {r['ours']['median']:.4f} s/step, ref {r['ref']['median']:.4f} s/step, ratio {r['ratio']:.2f}")
    if a.json:
        with open(a.json, 'w') as fh:
            json.dump(dict(torch=torch.__version__, threads=1, batch=BATCH, quick=a.quick, separate=a.separate,
                           block=None if a.separate else block, results=results), fh, indent=1)

if __name__ == '__main__': main()
