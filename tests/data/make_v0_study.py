"""How tests/data/v0_study.db was made (kept for the record; the tests only read the .db).

The file format before PRAGMA user_version existed ("v0") is the one written by
src/hpcore/storage.py at commit fea492e.  To regenerate::

    git show fea492e:src/hpcore/storage.py > /tmp/v0storage.py
    PYTHONPATH=/tmp python tests/data/make_v0_study.py

It writes study "v0" (minimize, space x: Float(-5, 5), c: Categorical(["a", "b"])):
trials 0-2 COMPLETE (value x**2, one report at step 1 = x**2 + 1, user attr note="t<i>"),
trial 3 FAIL ("boom"), trial 4 left RUNNING with params (as a killed process leaves it).
"""
import sqlite3

import v0storage  # noqa: E402  (the old module, see above)

import hpcore as hp
from hpcore.trial import TrialState

PATH = "tests/data/v0_study.db"
st = v0storage.SQLiteStorage(PATH)
sp = hp.Space({"x": hp.Float(-5.0, 5.0), "c": hp.Categorical(["a", "b"])})
sid, _, _ = st.get_or_create_study("v0", ["minimize"], sp.to_dict())
for i, (x, c) in enumerate([(0.5, "a"), (-1.25, "b"), (2.0, "a")]):
    tid, _, _ = st.create_trial(sid)
    st.set_trial_params(tid, {"x": x, "c": c})
    st.report(tid, 1, x * x + 1)
    st.set_trial_user_attr(tid, "note", f"t{i}")
    st.finish_trial(tid, TrialState.COMPLETE, (x * x,))
tid, _, _ = st.create_trial(sid)
st.set_trial_params(tid, {"x": 3.0, "c": "b"})
st.finish_trial(tid, TrialState.FAIL, None, "boom")
tid, _, _ = st.create_trial(sid)
st.set_trial_params(tid, {"x": 4.0, "c": "a"})
conn = st._conn()
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
conn.execute("PRAGMA journal_mode=DELETE")   # one self-contained file, no -wal beside it
st.close()
c = sqlite3.connect(PATH)
c.execute("VACUUM")
c.close()
