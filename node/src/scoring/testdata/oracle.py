#!/usr/bin/env python3
"""Builds `oracle_fixture.json`: a scoring scenario and what the ORIGINAL validator computes for it.

This script contains no scoring logic of its own. It generates a deterministic scenario
(miners, workers, heartbeats, GPU inventory, challenges, lease scores), writes it into the
original validator's own SQLAlchemy models on an in-memory SQLite database, runs the original
`WeightManager._calculate_all_weights_sync` and `_submit_miners_weights` (byteleap-Validator at
87f9bce) with the bittensor SDK's `convert_weights_and_uids_for_emit` (9.10.0), and records
every intermediate value it produced. The Rust tests in `node/src/scoring/tests.rs` replay the
same scenario and compare bit for bit.

Usage (CPython 3.11, as the vectors of byteleap-protocol.md §9 — 3.12 changed `sum()`; needs
`pip install 'sqlalchemy>=2,<2.1' numpy`):

    TZ=UTC python3 oracle.py --validator-src DIR --weight-utils FILE --out oracle_fixture.json

* DIR: a checkout of byteleapai/byteleap-Validator (the folder holding `neurons/`);
* FILE: `bittensor/utils/weight_utils.py` of bittensor v9.10.0 (only
  `convert_weights_and_uids_for_emit` is taken from it).

`bittensor`, `yaml` and `loguru` are replaced by stubs: the code under test uses them for
logging and type names only.
"""

import argparse
import ast
import asyncio
import json
import random
import sys
import types
from datetime import datetime, timedelta

# ----------------------------------------------------------------------------------------------
# Scenario (all times in ms since the epoch, UTC).

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a multiple of 300 s (see module docs in mod.rs)
MINUTE = 60_000
HOUR = 60 * MINUTE

PARAM_SETS = [
    {"R": 180, "I": 240, "P": 0.8, "Wh": 169, "lw": 0.7, "cw": 0.3},
    {"R": 150, "I": 180, "P": 0.75, "Wh": 169, "lw": 0.9, "cw": 0.1},
]


def scenario(seed=7):
    rnd = random.Random(seed)
    hotkeys = [f"5Hk{i:02d}x{rnd.randrange(10**6):06d}" for i in range(16)]
    metagraph = hotkeys[:14]
    gone = hotkeys[14:]  # miner_info rows no longer in the metagraph
    # miner_info rows (insertion order = id order): 11 metagraph hotkeys + the 2 gone ones;
    # hotkeys[11..14] are registered but never heartbeated (no miner_info row).
    miner_hotkeys = [hotkeys[i] for i in (3, 0, 1, 2, 15, 4, 5, 6, 7, 8, 9, 14, 10)]

    miners, workers, heartbeats, inventory, challenges = [], [], [], [], []
    uuid_seq = [0]

    def new_uuid():
        uuid_seq[0] += 1
        return f"GPU-{rnd.randrange(16**8):08x}-{uuid_seq[0]:04d}"

    def hb(hotkey, worker_id, segments):
        heartbeats.append({"hotkey": hotkey, "worker_id": worker_id, "segments": segments})

    def seg(start_ms, end_ms, every_s, ip, gpus=None):
        return {"start_ms": start_ms, "end_ms": end_ms, "every_ms": every_s * 1000, "ip": ip, "gpu_info": gpus or []}

    W = 169 * HOUR
    for mi, hotkey in enumerate(miner_hotkeys):
        # Last heartbeat: most online; one exactly at the 30 min edge (still online), two offline.
        if mi == 5:
            last = NOW_MS - 30 * MINUTE
        elif mi in (7, 11):
            last = NOW_MS - 45 * MINUTE
        elif mi == 12:
            last = None
        else:
            last = NOW_MS - rnd.randrange(5, 25 * 60) * 1000
        miners.append({"hotkey": hotkey, "last_heartbeat_ms": last})

        n_workers = 105 if mi == 9 else rnd.randrange(0, 7)
        if mi == 2:
            n_workers = 0
        for wi in range(n_workers):
            worker_id = f"w{wi}" if wi != 1 else f"box_{wi}_gpu"  # an underscore inside the id
            lease = 0.0
            r = rnd.random()
            if mi == 9:
                lease = 0.0
            elif r < 0.15:
                lease = round(rnd.uniform(0.05, 1.5), 3)
            elif r < 0.18:
                lease = -0.25
            workers.append({"hotkey": hotkey, "worker_id": worker_id, "lease_score": lease})

            # GPU worker?
            gpu_uuids = []
            if mi != 9 and rnd.random() < 0.3:
                gpu_uuids = [new_uuid() for _ in range(rnd.randrange(1, 4))]
            ip = f"10.{mi}.{wi}.1"
            kind = rnd.randrange(6)
            if mi == 4:  # a miner that left the metagraph, yet the best: it still sets max_raw
                kind = 0
            if mi == 9:
                start = NOW_MS - rnd.randrange(2, 30) * HOUR
                segs = [seg(start, NOW_MS - 60_000, 300, ip)]
            elif kind == 0:  # a full week and more, every 300 s
                segs = [seg(NOW_MS - W - 2 * HOUR, NOW_MS - 30_000, 300, ip)]
            elif kind == 1:  # brand new: 24 h
                segs = [seg(NOW_MS - 24 * HOUR + 7_000, NOW_MS - 7_000, 60, ip)]
            elif kind == 2:  # gaps and IP changes (some before the window)
                n_changes = rnd.randrange(0, 6)
                segs = []
                t = NOW_MS - W - 3 * HOUR
                for c in range(n_changes + 1):
                    length = rnd.randrange(3, 40) * HOUR
                    segs.append(seg(t, min(t + length, NOW_MS), 240, f"172.16.{c}.{wi}"))
                    t += length + rnd.randrange(0, 10) * HOUR
                    if t >= NOW_MS:
                        break
            elif kind == 3:  # null / empty IPs in between (ignored by the IP walk)
                segs = [
                    seg(NOW_MS - 100 * HOUR, NOW_MS - 60 * HOUR, 300, ip),
                    seg(NOW_MS - 60 * HOUR, NOW_MS - 50 * HOUR, 300, None),
                    seg(NOW_MS - 50 * HOUR, NOW_MS - 40 * HOUR, 300, ""),
                    seg(NOW_MS - 40 * HOUR, NOW_MS - 1_000, 300, ip),
                ]
            elif kind == 4:  # an IP change whose previous record is just outside the window
                segs = [
                    seg(NOW_MS - W - 300_000, NOW_MS - W - 1, 300, "192.0.2.1"),
                    seg(NOW_MS - W + 60_000, NOW_MS - 10 * HOUR, 300, "192.0.2.2"),
                ]
            else:  # no heartbeat in the window at all
                segs = [seg(NOW_MS - W - 10 * HOUR, NOW_MS - W - 1_000, 300, ip)]
            if gpu_uuids:
                keys = ["uuid", "gpu_uuid", "id"]
                for s in segs:
                    items = []
                    for g in gpu_uuids:
                        k = keys[rnd.randrange(3)]
                        items.append({k: g, "utilization": 3})
                    items.append({"uuid": "-1"})
                    items.append({"uuid": 17, "gpu_uuid": "GPU-ignored-because-uuid-is-an-int"})
                    s["gpu_info"] = items
                # One GPU missing from part of the history: fewer buckets for that worker.
                if len(gpu_uuids) > 1 and segs:
                    s0 = segs[-1]
                    mid = (s0["start_ms"] + s0["end_ms"]) // 2
                    s1 = dict(s0)
                    s1["start_ms"] = mid
                    s0 = dict(s0)
                    s0["end_ms"] = mid
                    s0["gpu_info"] = [it for it in s0["gpu_info"] if gpu_uuids[-1] not in it.values()]
                    segs = segs[:-1] + [s0, s1]
                # Inventory: mostly owned and fresh; some stolen, some stale, some absent.
                for g in gpu_uuids:
                    r = rnd.random()
                    if r < 0.7:
                        inventory.append({"uuid": g, "hotkey": hotkey, "last_seen_ms": NOW_MS - rnd.randrange(1, 60) * MINUTE})
                    elif r < 0.8:
                        inventory.append({"uuid": g, "hotkey": miner_hotkeys[(mi + 1) % len(miner_hotkeys)], "last_seen_ms": NOW_MS - 5 * MINUTE})
                    elif r < 0.9:
                        inventory.append({"uuid": g, "hotkey": hotkey, "last_seen_ms": NOW_MS - 181 * MINUTE})
            hb(hotkey, worker_id, segs)

            # Challenges within and just around the ranking window (R up to 180 min).
            n_ch = 3 if mi == 9 else rnd.randrange(0, 50)
            speed = rnd.uniform(80, 2500)
            if mi == 4:
                n_ch, speed = 45, 150.0
            used = set()
            for ci in range(n_ch):
                created = NOW_MS - rnd.randrange(0, 200 * 60) * 1000 - rnd.randrange(1000)
                while created in used:  # distinct times: the original's order for ties is the database's
                    created -= 1
                used.add(created)
                if ci == 0 and mi == 1:
                    created = NOW_MS - 180 * MINUTE  # exactly at the cutoff: counted
                if ci == 1 and mi == 1:
                    created = NOW_MS - 180 * MINUTE - 1  # 1 ms before: not counted
                status = "verified" if rnd.random() < 0.85 else "failed"
                success = status == "verified" and rnd.random() < 0.95
                vr = success if rnd.random() < 0.97 else None
                comp = round(speed * rnd.uniform(0.8, 1.25), 3) if rnd.random() < 0.97 else None
                if gpu_uuids:
                    uuids = list(gpu_uuids) if rnd.random() < 0.9 else gpu_uuids[:1]
                    sc = rnd.randrange(0, len(uuids) + 1) if success else 0
                    if rnd.random() < 0.05:
                        sc = None
                else:
                    uuids = ["-1"]
                    sc = 1 if success else 0
                challenges.append(
                    {
                        "hotkey": hotkey,
                        "worker_id": worker_id,
                        "created_ms": created,
                        "status": status,
                        "verification_result": vr,
                        "is_success": success,
                        "computation_time_ms": comp,
                        "success_count": sc,
                        "uuids": uuids,
                    }
                )
    # A GPU owned by a miner that no longer exists in any table: absent from challenges' view.
    return {
        "now_ms": NOW_MS,
        "metagraph": metagraph,
        "miners": miners,
        "workers": workers,
        "heartbeats": heartbeats,
        "gpu_inventory": inventory,
        "challenges": challenges,
    }


def worked_example():
    """byteleap-protocol.md §4.9, with a 10 h availability window (120 buckets) so that the
    availabilities 0.9, 1.0 and 0.5 are bucket counts (108, 120 and 60 of 120)."""
    a, b, c = "5HkA", "5HkB", "5HkC"
    start = NOW_MS - 10 * HOUR  # a bucket boundary: buckets start .. start + 119 are the window

    def buckets(n):
        return [{"start_ms": start + i * 300_000 + 10_000, "end_ms": start + i * 300_000 + 10_001, "every_ms": 1, "ip": "198.51.100.7", "gpu_info": []} for i in range(n)]

    def cpu_challenges(hotkey, worker_id, n, ms):
        return [
            {
                "hotkey": hotkey,
                "worker_id": worker_id,
                "created_ms": NOW_MS - (i + 1) * 240_000,
                "status": "verified",
                "verification_result": True,
                "is_success": True,
                "computation_time_ms": ms,
                "success_count": 1,
                "uuids": ["-1"],
            }
            for i in range(n)
        ]

    return {
        "now_ms": NOW_MS,
        "metagraph": [a, b, c],
        "miners": [{"hotkey": h, "last_heartbeat_ms": NOW_MS - 60_000} for h in (a, b, c)],
        "workers": [
            {"hotkey": a, "worker_id": "A1", "lease_score": 0.0},
            {"hotkey": a, "worker_id": "A2", "lease_score": 0.0},
            {"hotkey": b, "worker_id": "B1", "lease_score": 0.0},
            {"hotkey": b, "worker_id": "B2", "lease_score": 0.8},
        ],
        "heartbeats": [
            {"hotkey": a, "worker_id": "A1", "segments": buckets(108)},
            {"hotkey": a, "worker_id": "A2", "segments": buckets(120)},
            {"hotkey": b, "worker_id": "B1", "segments": buckets(60)},
            {"hotkey": b, "worker_id": "B2", "segments": buckets(120)},
        ],
        "gpu_inventory": [],
        "challenges": cpu_challenges(a, "A1", 40, 2000.0) + cpu_challenges(a, "A2", 18, 1500.0) + cpu_challenges(b, "B1", 36, 1000.0),
    }


WORKED_PARAMS = [{"R": 180, "I": 240, "P": 0.8, "Wh": 10, "lw": 0.7, "cw": 0.3}]


def expand(segment):
    t = segment["start_ms"]
    while t < segment["end_ms"]:
        yield t
        t += segment["every_ms"]


# ----------------------------------------------------------------------------------------------
# Running the original.


def dt(ms):
    return datetime(1970, 1, 1) + timedelta(milliseconds=ms)


def install_stubs(weight_utils_path):
    class _Log:
        def __getattr__(self, name):
            return lambda *a, **k: None

    bt = types.ModuleType("bittensor")
    bt.logging = _Log()
    bt.wallet = bt.subtensor = bt.metagraph = object
    utils = types.ModuleType("bittensor.utils")
    wu = types.ModuleType("bittensor.utils.weight_utils")
    # Take the SDK function verbatim from its source file.
    source = open(weight_utils_path).read()
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "convert_weights_and_uids_for_emit")
    module = ast.Module(body=[fn], type_ignores=[])
    import typing

    import numpy as np

    from numpy.typing import NDArray

    namespace = {"np": np, "Union": typing.Union, "NDArray": NDArray, "U16_MAX": 65535, "typing": typing}
    exec(compile(module, weight_utils_path, "exec"), namespace)
    wu.convert_weights_and_uids_for_emit = namespace["convert_weights_and_uids_for_emit"]
    bt.utils = utils
    utils.weight_utils = wu
    sys.modules["bittensor"] = bt
    sys.modules["bittensor.utils"] = utils
    sys.modules["bittensor.utils.weight_utils"] = wu
    sys.modules.setdefault("yaml", types.ModuleType("yaml"))
    sys.modules.setdefault("loguru", types.ModuleType("loguru"))


def run_original(sc, params, validator_src):
    sys.path.insert(0, validator_src)
    import neurons.validator.models.database as db
    import neurons.validator.services.weight_manager as wm_mod
    import neurons.validator.services.worker_performance_ranker as ranker_mod
    from neurons.shared.config.config_manager import ConfigManager

    now = dt(sc["now_ms"])

    class FixedDatetime(datetime):
        @classmethod
        def utcnow(cls):
            return now

    for mod in (db, wm_mod, ranker_mod):
        mod.datetime = FixedDatetime

    manager = db.DatabaseManager("sqlite://")
    manager.create_tables()
    with manager.get_session() as s:
        for m in sc["miners"]:
            last = m["last_heartbeat_ms"]
            s.add(db.MinerInfo(hotkey=m["hotkey"], is_online=last is not None, last_heartbeat=dt(last) if last else None))
        s.commit()
        for w in sc["workers"]:
            s.add(db.WorkerInfo(hotkey=w["hotkey"], worker_id=w["worker_id"], lease_score=w["lease_score"]))
        s.commit()
        rows = []
        for h in sc["heartbeats"]:
            for segment in h["segments"]:
                for t in expand(segment):
                    rows.append((t, h, segment))
        rows.sort(key=lambda r: r[0])
        s.bulk_save_objects(
            [
                db.HeartbeatRecord(
                    hotkey=h["hotkey"],
                    worker_id=h["worker_id"],
                    gpu_utilization=segment["gpu_info"],
                    public_ip=segment["ip"],
                    created_at=dt(t),
                )
                for t, h, segment in rows
            ]
        )
        for g in sc["gpu_inventory"]:
            s.add(db.GPUInventory(gpu_uuid=g["uuid"], hotkey=g["hotkey"], worker_id="x", last_seen_at=dt(g["last_seen_ms"])))
        for i, c in enumerate(sc["challenges"]):
            s.add(
                db.ComputeChallenge(
                    challenge_id=f"c{i}",
                    hotkey=c["hotkey"],
                    worker_id=c["worker_id"],
                    challenge_type="gpu_matrix" if c["uuids"] != ["-1"] else "cpu_matrix",
                    challenge_data={},
                    computation_time_ms=c["computation_time_ms"],
                    merkle_commitments={u: {"merkle_root": "00"} for u in c["uuids"]},
                    challenge_status=c["status"],
                    verification_result=c["verification_result"],
                    is_success=c["is_success"],
                    success_count=c["success_count"],
                    created_at=dt(c["created_ms"]),
                )
            )
        s.commit()

    config = ConfigManager(
        {
            "netuid": 128,
            "validation": {
                "challenge_interval": params["I"],
                "participation_rate_threshold": params["P"],
                "ranking_window_minutes": params["R"],
            },
            "weight_management": {
                "availability": {"window_hours": params["Wh"]},
                "score_weights": {"lease_weight": params["lw"], "challenge_weight": params["cw"]},
            },
            "metagraph": {"weight_update_tempo": 105},
        }
    )

    class Metagraph:
        hotkeys = sc["metagraph"]

    submitted = {}

    class Subtensor:
        def set_weights(self, **kw):
            submitted["uids"] = list(kw["uids"])
            submitted["weights"] = list(kw["weights"])
            return True, ""

    manager_obj = wm_mod.WeightManager(manager, wallet=None, subtensor=Subtensor(), metagraph=Metagraph(), config=config)
    manager_obj.is_running = True

    captured = {"workers": None, "raw": None, "miners": [], "weights": None}
    ranker = manager_obj.performance_ranker
    orig_perf = ranker.calculate_worker_performance
    orig_raw = ranker.calculate_miner_challenge_scores
    orig_score = manager_obj._calculate_miner_score
    orig_weights = manager_obj._calculate_weights_from_scores

    def perf(*a, **k):
        out = orig_perf(*a, **k)
        captured["workers"] = out
        return out

    def raw(*a, **k):
        out = orig_raw(*a, **k)
        captured["raw"] = out
        return out

    def score(miner, norm_map, avg_norm, avail):
        value, details = orig_score(miner, norm_map, avg_norm, avail)
        captured["miners"].append((miner.hotkey, value, dict(details), avg_norm, norm_map.get(miner.hotkey)))
        return value, details

    def weights(ms):
        out = orig_weights(ms)
        captured["weights"] = dict(out)
        return out

    ranker.calculate_worker_performance = perf
    ranker.calculate_miner_challenge_scores = raw
    manager_obj._calculate_miner_score = score
    manager_obj._calculate_weights_from_scores = weights

    asyncio.run(manager_obj._update_worker_online_status())
    manager_obj._calculate_all_weights_sync()
    miners_for_submission = manager_obj._get_miners_for_submission()
    asyncio.run(manager_obj._submit_miners_weights(miners_for_submission, 0))

    raw_map = captured["raw"] or {}
    expected = {
        "params": params,
        "max_raw": max(raw_map.values()) if raw_map else 0.0,
        "avg_norm": captured["miners"][0][3] if captured["miners"] else 0.0,
        "workers": [
            {
                "hotkey": ws.hotkey,
                "worker_id": ws.worker_id,
                "availability": ws.availability,
                "perf": ws.performance_score,
                "avg_exec_ms": ws.execution_time_ms,
                "successes": ws.actual_participation,
                "attempts": ws.total_attempts,
                "baseline": ws.baseline_expected,
                "avg_exec_gpus": ws.success_count_avg,
            }
            for ws in captured["workers"].values()
        ],
        "raw": dict(sorted(raw_map.items())),  # the original iterates a set: order varies
        "active_order": [m[0] for m in captured["miners"]],
        "miners": [
            {
                "hotkey": hk,
                "score": value,
                "norm": details.get("raw_challenge_norm"),
                "challenge_score": details.get("challenge_score"),
                "lease_score": details.get("lease_score"),
                "availability_score": details.get("availability_score"),
                "weight": captured["weights"][hk],
            }
            for hk, value, details, _avg, _n in captured["miners"]
        ],
        "submitted": [[u, w] for u, w in zip(submitted.get("uids", []), submitted.get("weights", []))],
    }
    return expected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--validator-src", required=True)
    ap.add_argument("--weight-utils", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    install_stubs(args.weight_utils)
    sc = scenario()
    sc["name"] = "generated subnet"
    sc["expected"] = [run_original(sc, p, args.validator_src) for p in PARAM_SETS]
    worked = worked_example()
    worked["name"] = "worked example (byteleap-protocol.md 4.9)"
    worked["expected"] = [run_original(worked, p, args.validator_src) for p in WORKED_PARAMS]
    with open(args.out, "w") as f:
        json.dump({"scenarios": [sc, worked]}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
