"""A study run in its own OS process by tests/test_faults_storage.py.

usage: python _fault_worker.py DB_PATH MODE N_TRIALS [HANG_AT]

MODE "hang": trial HANG_AT writes ``DB_PATH.hang`` (its number and params) and sleeps
forever (the test kills the process with SIGKILL).  MODE "resume": run N_TRIALS more
trials with BayesSampler, recording for each ask the RUNNING trials the sampler saw.
MODE "long": one trial that sleeps LONG seconds (> the grace period) and completes.
The study uses heartbeat_interval=0.2 s, grace_period=1 s.
"""
import json
import sys
import time
import warnings

import hpcore as hp


def main():
    path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    storage = hp.SQLiteStorage(path, heartbeat_interval=0.2, grace_period=1.0)
    space = hp.Space({"x": hp.Float(-5.0, 5.0), "k": hp.Int(1, 9)})
    if mode == "resume":
        with warnings.catch_warnings():   # a different sampler than stored: warned, on purpose
            warnings.simplefilter("ignore")
            study = hp.load_study("faults", storage,
                                  sampler=hp.BayesSampler(n_startup_trials=4, seed=1))
        seen = []
        real = study.sampler.sample

        def spy(st, number):
            seen.append([t.number for t in st.running_trials() if t.number != number])
            return real(st, number)

        study.sampler.sample = spy
        study.optimize(lambda t: (t.params["x"] - 1) ** 2 + t.params["k"], n_trials=n)
        print(json.dumps({"pending_seen": seen}), flush=True)
        return
    study = hp.Study(space, sampler=hp.RandomSampler(seed=0), storage=storage, name="faults")
    hang_at = int(sys.argv[4]) if mode == "hang" else -1

    def objective(trial):
        if trial.number == hang_at:
            with open(path + ".hang", "w") as f:
                json.dump({"number": trial.number, "params": trial.params}, f)
            time.sleep(3600)
        if mode == "long":
            time.sleep(float(sys.argv[4]))
        return (trial.params["x"] - 1) ** 2 + trial.params["k"]

    study.optimize(objective, n_trials=n)
    print("done", flush=True)


if __name__ == "__main__":
    main()
