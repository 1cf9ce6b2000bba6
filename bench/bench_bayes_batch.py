"""Near-duplicates in batches of 8 asks before any tell: BayesSampler now vs an older
bayes.py, interleaved per problem and seed (Bayesmark's protocol: 16 rounds of 8).

Run: ``git show 73ed3b6:src/hpcore/samplers/bayes.py > /tmp/bayes_old.py;
.venv/bin/python bench/bench_bayes_batch.py 16 /tmp/bayes_old.py``
(without the second argument only the current sampler runs).  Counts pairs of a batch
within 1e-3 (Euclidean, unit cube) and the smallest distance seen; one BLAS thread.
"""
import importlib.util
import math
import os
import sys
import time

os.environ["OMP_NUM_THREADS"] = "1"
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import hpcore as hp  # noqa: E402
from hpcore.samplers.bayes import BayesSampler  # noqa: E402

SIDES = [("new", BayesSampler)]
if len(sys.argv) > 2:
    spec = importlib.util.spec_from_file_location("bayes_old", sys.argv[2])
    bayes_old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bayes_old)
    SIDES.insert(0, ("old", bayes_old.BayesSampler))

def hartmann6(p):
    A = np.array([[10,3,17,3.5,1.7,8],[0.05,10,17,0.1,8,14],[3,3.5,1.7,10,17,8],[17,8,0.05,10,0.1,14]])
    P = 1e-4*np.array([[1312,1696,5569,124,8283,5886],[2329,4135,8307,3736,1004,9991],[2348,1451,3522,2883,3047,6650],[4047,8828,8732,5743,1091,381]])
    a = np.array([1,1.2,3,3.2]); x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-(a*np.exp(-(A*(x-P)**2).sum(1))).sum())
def sphere4(p):
    return sum((v-1)**2 for v in p.values())
probs = {"hartmann6": (hp.Space({f"x{i}": hp.Float(0,1) for i in range(6)}), hartmann6),
         "sphere4": (hp.Space({f"x{i}": hp.Float(-5,5) for i in range(4)}), sphere4)}
rounds, batch = int(sys.argv[1]), 8
with threadpool_limits(1):
  for name, (space, f) in probs.items():
    for seed in (0, 1):
      for label, cls in SIDES:
        st = hp.Study(space, sampler=cls(seed=seed))
        pairs = 0; worst = math.inf; t0 = time.perf_counter(); best = math.inf
        for _ in range(rounds):
            tr = [st.ask() for _ in range(batch)]
            U = np.array([space.encode(t.params) for t in tr])
            D = np.sqrt(((U[:, None] - U[None]) ** 2).sum(2))[np.triu_indices(batch, 1)]
            pairs += int((D <= 1e-3).sum()); worst = min(worst, D.min())
            for t in tr:
                v = f(t.params); best = min(best, v); st.tell(t, v)
        print(f"{name} seed={seed} {label}: pairs within 1e-3: {pairs} of {rounds*28}, "
              f"min distance {worst:.2e}, best {best:.4f}, {time.perf_counter()-t0:.1f} s", flush=True)
print("load", os.getloadavg())
