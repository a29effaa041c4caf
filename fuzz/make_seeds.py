#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets into fuzz/corpus/<target>/seed-*.

The seeds are committed; run this only to change them. Everything the fuzzer adds to fuzz/corpus/ next to them
is ignored by git (see fuzz/.gitignore). Input formats are described at the top of each fuzz_targets/*.rs.
"""

import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
MINER = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
VALIDATOR = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
# X25519 public key of [0x11; 32] and the nonce 00..0f (the byteleap-protocol.md §9.4 vectors).
MINER_PUB = "e06Qm75//kTEZaIgA31gjuNYl9Me+XLwf3SJLLD3PxM="
CLIENT_NONCE = "AAECAwQFBgcICQoLDA0ODw=="
# The §9.4 request ciphertext (sealed under the vector keys, so it reaches AES-GCM and fails the tag).
REQUEST_CT = (
    "Ip1gNqaPej7eM7zB0j/OF6tbnCwU7DEROz6xiBYNRjbchYWN+L1ZlAY33hJLeoYEJAFs3mjgjQH2stJh0xDKTujB5cliIOSV4EzNxsDNsCKE1dK"
    "mx65QXYGAv7KfFdSy5b5G1/bBZVGuXBzct3dpPrJwutpXcMEwbwt/jc8O/8FJZRVRRzRBjgHIxVK65vWP6a7RZY8Ys3POH2o="
)
EMPTY_BODY_HASH = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"


def dumps(value):
    """The session plaintext: json.dumps(P, ensure_ascii=False, sort_keys=True)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def package(session_id="@SID@", seq=1, ct=REQUEST_CT, kind="TASK_V1", sender=MINER):
    return json.dumps({"ver": "v1", "session_id": session_id, "seq": seq, "ciphertext": ct, "sender": sender,
                       "recipient": VALIDATOR, "synapse_type": kind})


HEARTBEAT = {
    "hotkey": MINER, "timestamp": 1700000000.5, "schema_version": 1,
    "miner_info": {"public_ip": "203.0.113.7", "miner_version": " 0.0.5 "},
    "workers": [{
        "worker_id": " w-1 ", "worker_name": "rig «Ω»", "worker_version": "0.0.5",
        "capabilities": ["cpu_matrix", "gpu_matrix"], "status": "busy",
        "system_info": {"cpu_count": 8, "memory_total": 68719476736, "gpu_plugin": [
            {"uuid": "GPU-1", "name": "NVIDIA GeForce RTX 4090", "total_memory": 25757220864},
            {"name": "no uuid"}]},
    }, {"worker_id": "w-2", "status": None, "system_info": None}],
}
TASK = {"hotkey": MINER, "request_type": "challenge", "schema_version": 1, "timestamp": 1700000000.0}
COMMITMENT = {
    "challenge_id": "c-1", "worker_id": "w-1",
    "commitments": [{"uuid": "GPU-1", "merkle_root": "0x" + "ab" * 32, "sig_ver": 1, "sig_val": "00" * 64},
                    {"uuid": "-1", "merkle_root": "cd" * 32}],
}
PROOF_CPU = {
    "challenge_id": "c-1",
    "proofs": [{"uuid": "-1", "row_hashes": ["aa" * 32, "bb" * 32],
                "merkle_proofs": [{"leaf_index": 3, "leaf_hash": "aa" * 32, "proof_hashes": ["cc" * 32, "dd" * 32],
                                   "proof_directions": [True, False]}]}],
}
PROOF_GPU = {
    "challenge_id": "c-2",
    "proofs": [{"uuid": "GPU-1", "row_hashes": ["aa" * 32],
                "merkle_proofs": [{"leaf_index": 0, "leaf_hash": "aa" * 32, "proof_hashes": [],
                                   "proof_directions": []}],
                "coordinate_values": [1.5, -0.0, 1e16, None, 3]}],
}


def seeds():
    pd = {
        # Mode 0: raw package strings.
        "raw-package": "0" + package(),
        "raw-package-heartbeat": "0" + package(kind="HEARTBEAT_V1", seq=7),
        "raw-python-variations": "0" + '{ "synapse_type":"TASK_V1","recipient":"%s","sender":"%s","ciphertext":"%s",'
        '"seq":1,"session_id":"@SID@","ver":"v1","extra":[NaN, -Infinity, 1e400] }\n' % (VALIDATOR, MINER, REQUEST_CT),
        "raw-unknown-session": "0" + package(session_id="11111111-2222-3333-4444-555555555555"),
        "raw-bad-fields": "0" + '{"ver": "v1", "session_id": 7, "seq": -1, "ciphertext": "!!!!", "sender": null}',
        "raw-not-object": '0[1, "v1", {"ver": "v2"}]',
        # Mode 1: '1', type digit (0 heartbeat, 1 task, 2 challenge, 3 proof, 4 session init), seqs, plaintext.
        "sealed-heartbeat": "10" + "1,2,2,3000\n" + dumps(HEARTBEAT),
        "sealed-task": "11" + "1\n" + dumps(TASK),
        "sealed-commitment": "12" + "5,4,1030,6\n" + dumps(COMMITMENT),
        "sealed-proof": "13" + "18446744073709551615,0\n" + dumps(PROOF_CPU),
        "sealed-not-json": "14" + "1\n" + '{"cpu": NaN, "x": ',
        # Mode 2: plaintexts for the message models.
        "plain-heartbeat": "2" + dumps(HEARTBEAT),
        "plain-commitment": "2" + dumps(COMMITMENT),
        "plain-proof-gpu": "2" + dumps(PROOF_GPU),
        "plain-python-json": '2{"a": [NaN, Infinity, -Infinity, 1e400, 123456789012345678901234567890, -0, -0.0, '
        '"\\ud83d\\ude00", "\\u00e9"], "a": 1}',
    }
    pd_bytes = {k: v.encode() for k, v in pd.items()}
    pd_bytes["sealed-invalid-utf8"] = b"10" + b"1\n" + b'{"w": "\xff\xfe"}'

    hs_request = json.dumps({"miner_eph_pub32": MINER_PUB, "client_nonce16": CLIENT_NONCE, "created_at": 1700000000.123456})
    hs = {
        "valid": MINER + "\n" + hs_request,
        "whitespace-and-extra-keys": MINER + "\n" + ' {"client_nonce16": "\\t' + CLIENT_NONCE + ' ", "miner_eph_pub32": "'
        + MINER_PUB + '\\u001f", "created_at": "ignored", "x": [NaN]} ',
        "low-order-key": MINER + "\n" + json.dumps({"miner_eph_pub32": "A" * 43 + "=", "client_nonce16": CLIENT_NONCE}),
        "bad-base64": MINER + "\n" + json.dumps({"miner_eph_pub32": MINER_PUB[:-2] + "A=", "client_nonce16": "AAECAw=="}),
        "wrong-types": "\n" + json.dumps({"miner_eph_pub32": 5, "client_nonce16": None}),
    }

    def request(route, headers, body):
        return route + "\n" + "".join(f"{k}: {v}\n" for k, v in headers) + "\n" + body

    signed = [
        ("bt_header_dendrite_hotkey", "@miner"), ("bt_header_dendrite_nonce", "@now"),
        ("bt_header_dendrite_uuid", "5f0c3c2e-6f5e-11ee-8c99-0242ac120002"), ("bt_header_dendrite_signature", "@sign"),
        ("bt_header_axon_hotkey", "@validator"), ("timeout", "12.0"), ("computed_body_hash", EMPTY_BODY_HASH),
        ("name", "SessionInitSynapse"), ("content-type", "application/json"),
    ]
    ar = {
        "session-init": request("SessionInitSynapse", signed, json.dumps({"request": hs_request, "name": "x"})),
        "heartbeat-package": request("HeartbeatSynapse", signed, json.dumps({"request": package(kind="HEARTBEAT_V1")})),
        "task-empty-request": request("TaskSynapse", signed, '{"request": null}'),
        "challenge-no-body": request("ChallengeSynapse", signed, ""),
        "proof-bad-body": request("ChallengeProofSynapse", signed, '{"request": 5}'),
        # Regression: `timeout: NaN` on a verified request panicked in http.rs (Duration::from_secs_f64(NaN)).
        "nan-timeout": request("TaskSynapse", [(k, "NaN" if k == "timeout" else v) for k, v in signed], '{"request": ""}'),
        "unsigned": request("TaskSynapse", [h for h in signed if h[0] != "bt_header_dendrite_signature"], "{}"),
        "literal-headers": request("TaskSynapse", [
            ("bt_header_dendrite_hotkey", MINER), ("bt_header_dendrite_nonce", "1700000000000000000"),
            ("bt_header_dendrite_uuid", "u"), ("bt_header_dendrite_signature", "0x" + "00" * 64),
            ("timeout", "inf")], "[1, 2]"),
        "unknown-route": request("NopeSynapse?x=1", [("bt_header_dendrite_hotkey", "@miner")], ""),
    }
    return {"package_decoder": pd_bytes, "session_handshake": {k: v.encode() for k, v in hs.items()},
            "axon_request": {k: v.encode() for k, v in ar.items()}}


def main():
    for target, files in seeds().items():
        folder = HERE / "corpus" / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in files.items():
            (folder / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(files)} seeds")


if __name__ == "__main__":
    main()
