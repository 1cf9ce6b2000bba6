"""A study run in a separate OS process by the storage tests.

usage: python _study_worker.py DB_URL NAME N_TRIALS SLEEP [grid]
"""
import signal
import sys
import time

import hpcore as hp


def space():
    return hp.Space({"a": hp.Int(0, 19), "b": hp.Categorical(["x", "y", "z"])})


def main():
    # A process started in the background by a non-interactive shell (a CI runner, `cmd &`)
    # inherits SIGINT ignored, and Python then leaves it ignored, so Ctrl-C would never
    # reach the study: give this child the handler an interactive user's process has.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    url, name, n_trials, sleep = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    grid = len(sys.argv) > 5 and sys.argv[5] == "grid"
    sampler = hp.GridSampler(seed=0) if grid else hp.RandomSampler(seed=0)
    study = hp.Study(space(), sampler=sampler, storage=url, name=name)
    print("ready", flush=True)

    def objective(trial):
        time.sleep(sleep)
        return trial.params["a"] + {"x": 0.0, "y": 0.1, "z": 0.2}[trial.params["b"]]

    study.optimize(objective, n_trials=n_trials)


if __name__ == "__main__":
    main()
