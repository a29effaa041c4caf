#!/usr/bin/env python3
"""End-to-end check of a ByteLeap validator axon with the real bittensor 9.10.0 Dendrite.

Two steps (no interaction, no pytest):

  1. python test_axon.py wallets --wallet-path DIR
       creates (if missing) two unencrypted wallets under DIR:
         byteleap-e2e-miner/hotkeys/default     -> must be IN the axon's metagraph
         byteleap-e2e-intruder/hotkeys/default  -> must NOT be in the metagraph
       prints {"allowed": SS58, "intruder": SS58} and writes it to DIR/e2e-hotkeys.json

  2. python test_axon.py run --axon HOST:PORT --validator-hotkey SS58 --wallet-path DIR
       runs every check, prints one line per check and a final "N passed, M failed" line;
       exit code 0 only if every check passed.

Every option can also be given by environment variable (see --help of each subcommand).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
import traceback
import uuid
from typing import Any, Awaitable, Callable, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axon_client as ac  # noqa: E402  (applies the offline get_external_ip patch)

ALLOWED_WALLET = "byteleap-e2e-miner"
INTRUDER_WALLET = "byteleap-e2e-intruder"
HOTKEY_NAME = "default"


class CheckFailed(Exception):
    pass


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


def short(x: Any, n: int = 160) -> str:
    s = x if isinstance(x, str) else repr(x)
    return s if len(s) <= n else s[:n] + "..."


class Runner:
    def __init__(self, args):
        host, _, port = args.axon.rpartition(":")
        self.host, self.port = host, int(port)
        self.timeout = args.timeout
        self.allowed = ac.ensure_wallet(args.wallet_path, args.allowed_wallet, HOTKEY_NAME)
        self.intruder = ac.ensure_wallet(args.wallet_path, args.intruder_wallet, HOTKEY_NAME)
        self.axon = ac.make_axon_info(self.host, self.port, args.validator_hotkey)
        self.client = ac.AxonClient(self.allowed, self.axon, timeout=self.timeout)
        self.results: List[Tuple[str, bool, str]] = []
        self.verbose = args.verbose

    @property
    def session(self) -> ac.Session:
        expect(self.client.session is not None, "no session (the SessionInit check failed)")
        return self.client.session  # type: ignore[return-value]

    def report(self, name: str, ok: bool, detail: str) -> None:
        self.results.append((name, ok, detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name:<44} {detail}", flush=True)

    async def run_check(self, name: str, fn: Callable[[], Awaitable[str]]) -> None:
        try:
            detail = await fn()
            self.report(name, True, detail or "")
        except CheckFailed as e:
            self.report(name, False, str(e))
        except Exception as e:  # unexpected client-side error
            self.report(name, False, f"exception {type(e).__name__}: {e}")
            if self.verbose:
                traceback.print_exc()

    # ------------------------------------------------------------ helpers
    def raw_task(self, wallet=None, **kw) -> ac.RawRequest:
        """A correctly signed TaskSynapse carrying a valid encrypted poll with a fresh seq,
        so that an axon that wrongly accepts it answers 200."""
        pkg, _ = ac.make_package(self.session, ac.TaskSynapse, ac.sample_task_request(self.allowed.hotkey.ss58_address))
        return ac.build_raw_request(wallet or self.allowed, self.axon, ac.TaskSynapse(request=pkg),
                                    timeout=self.timeout, **kw)

    async def expect_status(self, req: ac.RawRequest, want: Tuple[int, ...]) -> ac.RawResult:
        r = await ac.send_raw(req, timeout=self.timeout)
        expect(r.status in want, f"HTTP {r.status} (want {'/'.join(map(str, want))}) body={short(r.text)}")
        return r

    def open_raw(self, r: ac.RawResult, cls) -> ac.EncryptedResult:
        body = r.json()
        expect(isinstance(body, dict) and isinstance(body.get("response"), str),
               f"200 without a string 'response': {short(r.text)}")
        fake_call = ac.CallResult(synapse=cls(response=body["response"]), http=ac.HttpCapture(status=r.status),
                                  elapsed=0.0)
        return ac.open_response(self.session, cls, ac.EncryptedResult(call=fake_call, package="", seq=-1))

    def expect_ok_call(self, res: ac.CallResult) -> None:
        h = res.http
        expect(h.status == 200, f"HTTP {h.status} body={short(h.body.decode(errors='replace'))}")
        ctype = h.response_headers.get("Content-Type", "")
        expect(ctype.startswith("application/json"), f"Content-Type {ctype!r} (the dendrite needs application/json)")
        expect(isinstance(res.response, str),
               f"dendrite got no string 'response' (dendrite status {res.synapse.dendrite.status_code} "
               f"{short(res.synapse.dendrite.status_message)}) body={short(h.body.decode(errors='replace'))}")

    def expect_decrypted(self, er: ac.EncryptedResult) -> Any:
        self.expect_ok_call(er.call)
        expect(er.plain_error is None, f"plaintext error {er.plain_error}")
        expect(er.decrypt_error is None, f"cannot open the answer: {er.decrypt_error}")
        return er.data

    # ------------------------------------------------------------- checks
    async def c_session_init(self) -> str:
        try:
            sess, res = await self.client.handshake(timeout=30.0)
        except ac.HandshakeError as e:
            if e.result is not None:
                self.expect_ok_call(e.result)
            raise CheckFailed(str(e))
        self.expect_ok_call(res)
        ttl = sess.expires_at - time.time()
        expect(3600 < ttl <= 21600 + 60, f"expires_at is {ttl:.0f} s from now (expected about 21600)")
        status_hdr = res.http.response_headers.get("bt_header_axon_status_code")
        return f"session_id={sess.session_id} ttl={ttl:.0f}s axon_status_header={status_hdr}"

    async def c_task(self) -> str:
        er = await self.client.send_encrypted(ac.TaskSynapse, ac.sample_task_request(self.allowed.hotkey.ss58_address))
        data = self.expect_decrypted(er)
        expect(isinstance(data, dict), f"decrypted answer is not an object: {short(data)}")
        expect(data.get("task_type") in ("compute_challenge_batch", "no_task"), f"bad TaskResponse {short(data)}")
        if data["task_type"] == "compute_challenge_batch":
            ch = (data.get("task_data") or {}).get("challenges")
            expect(isinstance(ch, list), f"batch without a challenges list: {short(data)}")
            for c in ch:
                expect(c.get("challenge_type") in ("cpu_matrix", "gpu_matrix") and c.get("challenge_id")
                       and 1 <= int(c.get("timeout", 0)) <= 300, f"challenge entry the miner rejects: {short(c)}")
        return f"seq {er.seq} -> resp seq {er.response_seq}, task_type={data['task_type']}"

    async def c_heartbeat(self) -> str:
        er = await self.client.send_encrypted(ac.HeartbeatSynapse, ac.sample_heartbeat(self.allowed.hotkey.ss58_address))
        data = self.expect_decrypted(er)
        expect(isinstance(data, dict), f"decrypted answer is not an object: {short(data)}")
        expect(data.get("error_code") == 0, f"HeartbeatResponse error_code={data.get('error_code')!r}: {short(data)}")
        expect(isinstance(data.get("message"), str), f"HeartbeatResponse without message: {short(data)}")
        return f"seq {er.seq} -> resp seq {er.response_seq}, {short(data.get('message'), 60)!r}"

    async def c_challenge(self) -> str:
        er = await self.client.send_encrypted(ac.ChallengeSynapse, ac.sample_commitment())
        data = self.expect_decrypted(er)
        expect(isinstance(data, dict), f"decrypted answer is not an object: {short(data)}")
        return f"unknown challenge -> encrypted {short(data, 80)}"

    async def c_challenge_proof(self) -> str:
        er = await self.client.send_encrypted(ac.ChallengeProofSynapse, ac.sample_proof())
        data = self.expect_decrypted(er)
        expect(isinstance(data, dict), f"decrypted answer is not an object: {short(data)}")
        return f"unknown challenge -> encrypted {short(data, 80)}"

    async def c_unsigned(self) -> str:
        req = self.raw_task()
        del req.headers[ac.SIGNATURE_HEADER]
        r = await self.expect_status(req, (401,))
        return f"401 {short(r.text, 80)}"

    async def c_bad_signature(self) -> str:
        req = self.raw_task()
        sig = req.headers[ac.SIGNATURE_HEADER]
        expect(sig.startswith("0x") and len(sig) == 130, f"unexpected dendrite signature format {sig!r}")
        flipped = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
        req.headers[ac.SIGNATURE_HEADER] = flipped
        r = await self.expect_status(req, (401,))
        return f"401 {short(r.text, 80)}"

    async def c_wrong_key_signature(self) -> str:
        req = self.raw_task()
        h = req.headers
        msg = (f"{h[ac.NONCE_HEADER]}.{h[ac.HOTKEY_HEADER]}.{self.axon.hotkey}.{h[ac.UUID_HEADER]}."
               f"{h['computed_body_hash']}")
        h[ac.SIGNATURE_HEADER] = "0x" + self.intruder.hotkey.sign(msg).hex()
        r = await self.expect_status(req, (401,))
        return f"401 {short(r.text, 80)}"

    async def c_malformed_signature(self) -> str:
        req = self.raw_task()
        req.headers[ac.SIGNATURE_HEADER] = "0xnothex"
        r = await self.expect_status(req, (401,))
        return f"401 {short(r.text, 80)}"

    async def c_missing_hotkey(self) -> str:
        req = self.raw_task()
        del req.headers[ac.HOTKEY_HEADER]
        r = await self.expect_status(req, (401, 403))
        return f"{r.status} {short(r.text, 80)}"

    async def c_stale_nonce(self) -> str:
        age = 4 + self.timeout + 2
        req = self.raw_task(nonce_ns=time.time_ns() - int(age * 1e9))  # fresh dendrite uuid, correctly re-signed
        await self.expect_status(req, (401,))
        return f"nonce {age:.0f} s old (window 4 s + timeout {self.timeout:g} s) -> 401"

    async def c_recent_nonce(self) -> str:
        req = self.raw_task(nonce_ns=time.time_ns() - 2_000_000_000)
        r = await self.expect_status(req, (200,))
        er = self.open_raw(r, ac.TaskSynapse)
        expect(er.data is not None, f"answer not decryptable: {er.plain_error or er.decrypt_error}")
        return "nonce 2 s old, fresh uuid -> 200 (not over-strict)"

    async def c_old_nonce_same_uuid(self) -> str:
        d = ac.bt.Dendrite(wallet=self.allowed)
        older = self.raw_task(dendrite=d)
        await asyncio.sleep(0.01)
        newer = self.raw_task(dendrite=d)
        expect(int(older.headers[ac.NONCE_HEADER]) < int(newer.headers[ac.NONCE_HEADER]), "nonces not increasing")
        r1 = await self.expect_status(newer, (200,))
        self.open_raw(r1, ac.TaskSynapse)
        try:
            await self.expect_status(older, (401,))
        except CheckFailed as e:
            raise CheckFailed(f"older nonce after a newer one, same uuid: {e}")
        return "newer nonce 200, then older nonce (same uuid, valid signature) -> 401"

    async def c_replay(self) -> str:
        req = self.raw_task()
        r1 = await self.expect_status(req, (200,))
        er = self.open_raw(r1, ac.TaskSynapse)
        expect(er.data is not None, f"first send not decryptable: {er.plain_error or er.decrypt_error}")
        try:
            r2 = await self.expect_status(req.copy(), (401,))
        except CheckFailed as e:
            raise CheckFailed(f"byte-identical replay: {e}")
        return f"first 200, identical replay -> 401 {short(r2.text, 60)}"

    async def c_unknown_route(self) -> str:
        res = await ac.dendrite_call(self.allowed, self.axon, ac.NopeSynapse(request="x"), timeout=self.timeout)
        expect(res.http.status == 404, f"HTTP {res.http.status} (want 404) body={short(res.http.body.decode(errors='replace'))}")
        return f"/NopeSynapse -> 404 {short(res.http.body.decode(errors='replace'), 60)}"

    async def c_intruder(self) -> str:
        _, pub = ac.x25519_generate()
        req = json.dumps({"miner_eph_pub32": pub, "client_nonce16": ac.b64e(os.urandom(16)), "created_at": time.time()})
        res = await ac.dendrite_call(self.intruder, self.axon, ac.SessionInitSynapse(request=req), timeout=self.timeout)
        expect(res.http.status == 403, f"HTTP {res.http.status} (want 403) body={short(res.http.body.decode(errors='replace'))}")
        return f"{self.intruder.hotkey.ss58_address} -> 403"

    async def c_sequence_replay(self) -> str:
        first = await self.client.send_encrypted(ac.TaskSynapse, ac.sample_task_request(self.allowed.hotkey.ss58_address))
        self.expect_decrypted(first)
        again = await self.client.send_encrypted(ac.TaskSynapse, None, package=first.package, seq=first.seq)
        self.expect_ok_call(again.call)
        pe = again.plain_error
        expect(pe is not None, f"re-sent package (seq {first.seq}) not refused with a plaintext error: "
                               f"data={short(again.data)} decrypt_error={again.decrypt_error}")
        expect(pe.get("error_code") == ac.ERR_SEQUENCE, f"error_code {pe.get('error_code')!r} (want 4020): {pe}")
        expect(isinstance(pe.get("error"), str) and pe["error"].startswith("SEQUENCE_ERROR:4020:"),
               f"error text {pe.get('error')!r} (want 'SEQUENCE_ERROR:4020:...')")
        return f"seq {first.seq} re-sent -> {short(pe, 90)}"

    async def c_session_survives(self) -> str:
        er = await self.client.send_encrypted(ac.TaskSynapse, ac.sample_task_request(self.allowed.hotkey.ss58_address))
        self.expect_decrypted(er)
        return f"seq {er.seq} after the 4020 -> decrypts (resp seq {er.response_seq})"

    async def c_unknown_session(self) -> str:
        s = self.session
        bogus = str(uuid.uuid4())
        pkg, seq = ac.make_package(s, ac.TaskSynapse, ac.sample_task_request(self.allowed.hotkey.ss58_address),
                                   session_id=bogus)
        er = await self.client.send_encrypted(ac.TaskSynapse, None, package=pkg, seq=seq)
        self.expect_ok_call(er.call)
        pe = er.plain_error
        expect(pe is not None, f"unknown session not refused with a plaintext error: {short(er.call.response)}")
        expect(pe.get("error_code") == ac.ERR_SESSION_EXPIRED, f"error_code {pe.get('error_code')!r} (want 4012): {pe}")
        return f"session {bogus[:8]}... -> {short(pe, 90)}"

    async def c_bad_handshake(self) -> str:
        res = await ac.dendrite_call(
            self.allowed, self.axon,
            ac.SessionInitSynapse(request=json.dumps({"miner_eph_pub32": ac.b64e(b"\x01" * 31),
                                                      "client_nonce16": ac.b64e(os.urandom(16)),
                                                      "created_at": time.time()})), timeout=self.timeout)
        self.expect_ok_call(res)
        pe = ac.parse_plain_error(res.response)
        expect(pe is not None and pe.get("error_code") == ac.ERR_HANDSHAKE_FAILED,
               f"31-byte miner key: want plaintext error 4018, got {short(res.response)}")
        return f"31-byte key -> {short(pe, 90)}"

    # -------------------------------------------------------------- main
    async def run(self, only: Optional[List[str]]) -> int:
        bad = [f"{n}: {d}" for n, ok, d in ac.crypto_self_test() if not ok]
        self.report("crypto_vectors_9_4_9_5", not bad, "; ".join(bad) if bad else
                    f"{len(ac.crypto_self_test())} vectors reproduced")
        checks = [
            ("session_init_signed_200", self.c_session_init),
            ("task_roundtrip_encrypted", self.c_task),
            ("heartbeat_roundtrip_encrypted", self.c_heartbeat),
            ("challenge_route_encrypted", self.c_challenge),
            ("challenge_proof_route_encrypted", self.c_challenge_proof),
            ("no_signature_header_401", self.c_unsigned),
            ("bad_signature_401", self.c_bad_signature),
            ("signature_by_other_key_401", self.c_wrong_key_signature),
            ("malformed_signature_401", self.c_malformed_signature),
            ("missing_hotkey_header_401_or_403", self.c_missing_hotkey),
            ("stale_nonce_401", self.c_stale_nonce),
            ("recent_nonce_2s_200", self.c_recent_nonce),
            ("older_nonce_same_uuid_401", self.c_old_nonce_same_uuid),
            ("byte_identical_replay_401", self.c_replay),
            ("unknown_route_404", self.c_unknown_route),
            ("intruder_hotkey_403", self.c_intruder),
            ("resent_package_plain_4020", self.c_sequence_replay),
            ("session_survives_4020", self.c_session_survives),
            ("unknown_session_plain_4012", self.c_unknown_session),
            ("bad_handshake_plain_4018", self.c_bad_handshake),
        ]
        print(f"axon {self.host}:{self.port} validator={self.axon.hotkey}", flush=True)
        print(f"miner (allowed) hotkey  {self.allowed.hotkey.ss58_address}", flush=True)
        print(f"intruder hotkey         {self.intruder.hotkey.ss58_address}", flush=True)
        for name, fn in checks:
            if only and name not in only and name != "session_init_signed_200":
                continue
            await self.run_check(name, fn)
        passed = sum(ok for _, ok, _ in self.results)
        failed = len(self.results) - passed
        print(f"{passed} passed, {failed} failed", flush=True)
        return 0 if failed == 0 else 1


def wait_tcp(host: str, port: int, seconds: float) -> bool:
    deadline = time.time() + seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            if time.time() >= deadline:
                return False
            time.sleep(0.2)


def env(name: str, default: Any = None) -> Any:
    return os.environ.get(name, default)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def add_wallet_args(sp):
        sp.add_argument("--wallet-path", default=env("BYTELEAP_E2E_WALLET_PATH"),
                        help="wallet directory [env BYTELEAP_E2E_WALLET_PATH]")
        sp.add_argument("--allowed-wallet", default=env("BYTELEAP_E2E_ALLOWED_WALLET", ALLOWED_WALLET),
                        help=f"wallet name of the in-metagraph miner (default {ALLOWED_WALLET}) "
                             "[env BYTELEAP_E2E_ALLOWED_WALLET]")
        sp.add_argument("--intruder-wallet", default=env("BYTELEAP_E2E_INTRUDER_WALLET", INTRUDER_WALLET),
                        help=f"wallet name of the not-in-metagraph hotkey (default {INTRUDER_WALLET}) "
                             "[env BYTELEAP_E2E_INTRUDER_WALLET]")

    w = sub.add_parser("wallets", help="create/open the two test wallets and print their hotkeys")
    add_wallet_args(w)
    r = sub.add_parser("run", help="run all checks against an axon")
    add_wallet_args(r)
    r.add_argument("--axon", default=env("BYTELEAP_E2E_AXON"), help="HOST:PORT of the axon [env BYTELEAP_E2E_AXON]")
    r.add_argument("--validator-hotkey", default=env("BYTELEAP_E2E_VALIDATOR_HOTKEY"),
                   help="ss58 of the axon's own hotkey [env BYTELEAP_E2E_VALIDATOR_HOTKEY]")
    r.add_argument("--timeout", type=float, default=float(env("BYTELEAP_E2E_TIMEOUT", 12.0)),
                   help="dendrite timeout per request, seconds (default 12, the SDK default)")
    r.add_argument("--connect-wait", type=float, default=float(env("BYTELEAP_E2E_CONNECT_WAIT", 30.0)),
                   help="seconds to wait for the axon port to accept connections (default 30)")
    r.add_argument("--dendrite-ip", default=env("BYTELEAP_E2E_DENDRITE_IP", "127.0.0.1"),
                   help="value the patched get_external_ip() returns (bt_header_dendrite_ip). If it equals the "
                        "axon host, the SDK dendrite connects to 0.0.0.0:PORT instead (default 127.0.0.1)")
    r.add_argument("--only", action="append", help="run only this check (repeatable; the handshake always runs)")
    r.add_argument("-v", "--verbose", action="store_true")
    s = sub.add_parser("selftest", help="only the 9.4/9.5 crypto vectors (no network)")
    args = p.parse_args()

    if args.cmd == "selftest":
        bad = 0
        for name, ok, detail in ac.crypto_self_test():
            print(f"{'PASS' if ok else 'FAIL'}  {name}{'  ' + detail if detail else ''}")
            bad += not ok
        print(f"{len(ac.crypto_self_test()) - bad} passed, {bad} failed")
        return 1 if bad else 0

    if not args.wallet_path:
        p.error("--wallet-path (or BYTELEAP_E2E_WALLET_PATH) is required")
    if args.cmd == "wallets":
        a = ac.ensure_wallet(args.wallet_path, args.allowed_wallet, HOTKEY_NAME)
        i = ac.ensure_wallet(args.wallet_path, args.intruder_wallet, HOTKEY_NAME)
        out = {"allowed": a.hotkey.ss58_address, "intruder": i.hotkey.ss58_address}
        with open(os.path.join(os.path.expanduser(args.wallet_path), "e2e-hotkeys.json"), "w") as fh:
            json.dump(out, fh)
        print(json.dumps(out))
        return 0

    if not args.axon or not args.validator_hotkey:
        p.error("--axon and --validator-hotkey are required")
    ac.patch_offline(args.dendrite_ip)
    runner = Runner(args)
    if not wait_tcp(runner.host, runner.port, args.connect_wait):
        print(f"FAIL  axon_reachable  nothing listens on {args.axon} after {args.connect_wait:g} s")
        print("0 passed, 1 failed")
        return 1
    return asyncio.run(runner.run(args.only))


if __name__ == "__main__":
    sys.exit(main())
