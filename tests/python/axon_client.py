"""Miner-side client library for driving a ByteLeap (SN128) validator axon end to end.

It speaks to the axon exactly like the unchanged Python miner does:

* the real bittensor 9.10.0 ``bt.Dendrite`` signs and sends every normal request
  (one new dendrite per request, like the miner, so every request has a new uuid);
* the synapse classes carry the miner's class names and fields, so the HTTP route
  and the JSON body are the miner's;
* the session crypto (X25519 handshake, HKDF-SHA256, AES-256-GCM package, IV, AAD,
  sequence numbers, sliding replay window) follows byteleap-protocol.md 2.4-2.7 and
  is checked against the 9.4 / 9.5 vectors by ``crypto_self_test()``;
* negative cases are built from the headers the dendrite would send
  (``Dendrite.preprocess_synapse_for_request`` + ``Synapse.to_headers``) and then
  altered and sent with aiohttp directly (``RawRequest``).

Written for the ByteLeap HA validator project; it contains no code from the
original miner or validator.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import os
import time
import uuid
from collections import deque
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Type

import aiohttp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field, model_validator

import bittensor as bt
import bittensor.utils.networking as bt_networking
from bittensor.core.settings import version_as_int

# ---------------------------------------------------------------------------
# Offline patch (byteleap-protocol.md 11.2)
# ---------------------------------------------------------------------------

_OFFLINE_IP = "127.0.0.1"


def patch_offline(ip: str = "127.0.0.1") -> None:
    """Make ``bt.Dendrite()`` construction work without internet.

    ``Dendrite.__init__`` calls ``bittensor.utils.networking.get_external_ip()``
    (several HTTP look-ups, raising when all fail). Its result only fills the
    ``bt_header_dendrite_ip`` header -- and, if it equals the target axon's ip, the
    dendrite connects to ``0.0.0.0:<port>`` instead of ``<ip>:<port>`` (Linux routes
    0.0.0.0 to the local host, so that still reaches a loopback axon).
    """
    global _OFFLINE_IP
    _OFFLINE_IP = ip
    bt_networking.get_external_ip = lambda: _OFFLINE_IP  # type: ignore[assignment]


patch_offline()

# ---------------------------------------------------------------------------
# Constants (byteleap-protocol.md 2.1, 2.8, 2.10.5)
# ---------------------------------------------------------------------------

PROTOCOL_VERSION = "v1"
AAD_PREFIX = "leap-comm"
HKDF_ALGORITHM_INFO = b"HKDF-SHA256_AES-256-GCM_X25519"
REPLAY_WINDOW_SIZE = 1024
MAX_SEQ = 2**64 - 1
EMPTY_BODY_HASH = hashlib.sha3_256(b"").hexdigest()

SESSION_INIT_V1 = "SESSION_INIT_V1"
HEARTBEAT_V1 = "HEARTBEAT_V1"
TASK_V1 = "TASK_V1"
CHALLENGE_V1 = "CHALLENGE_V1"
CHALLENGE_PROOF_V1 = "CHALLENGE_PROOF_V1"

ERR_NETWORK = 1003
ERR_SESSION_REQUIRED = 4010
ERR_SESSION_UNKNOWN = 4011
ERR_SESSION_EXPIRED = 4012
ERR_BAD_AAD = 4015
ERR_HANDSHAKE_FAILED = 4018
ERR_SEQUENCE = 4020

SIGNATURE_HEADER = "bt_header_dendrite_signature"
NONCE_HEADER = "bt_header_dendrite_nonce"
UUID_HEADER = "bt_header_dendrite_uuid"
HOTKEY_HEADER = "bt_header_dendrite_hotkey"

# ---------------------------------------------------------------------------
# Synapse classes: same class names (= HTTP route) and fields as the miner's
# neurons/shared/protocols.py, so the dendrite produces the same route and body.
# ---------------------------------------------------------------------------


class ProofRequest(BaseModel):
    """Element of ``ChallengeSynapse.proof_requests``; validated like the miner does
    (the dendrite re-validates the axon's JSON answer against the synapse class)."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    uuid: str
    rows: Optional[List[int]] = Field(default_factory=list)
    coordinates: Optional[List[List[int]]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> "ProofRequest":
        if not self.uuid:
            raise ValueError("uuid required")
        if not self.rows and not self.coordinates:
            raise ValueError("rows or coordinates must be provided")
        if any(r < 0 for r in (self.rows or [])):
            raise ValueError("row indices must be non-negative")
        for c in self.coordinates or []:
            if len(c) != 2 or c[0] < 0 or c[1] < 0:
                raise ValueError("coordinates must be non-negative [row, col] pairs")
        return self


class SessionInitSynapse(bt.Synapse):
    """Plaintext handshake. NB: no ``protocol_version`` field (protocol doc 11.4)."""

    PROTOCOL_TYPE: ClassVar[str] = SESSION_INIT_V1
    request: Optional[str] = None
    response: Optional[str] = None


class EncryptedSynapse(bt.Synapse):
    request: Optional[str] = None
    response: Optional[str] = None
    protocol_version: int = Field(default=1, ge=1)


class HeartbeatSynapse(EncryptedSynapse):
    PROTOCOL_TYPE: ClassVar[str] = HEARTBEAT_V1


class TaskSynapse(EncryptedSynapse):
    PROTOCOL_TYPE: ClassVar[str] = TASK_V1


class ChallengeSynapse(EncryptedSynapse):
    PROTOCOL_TYPE: ClassVar[str] = CHALLENGE_V1
    proof_requests: Optional[List[ProofRequest]] = None


class ChallengeProofSynapse(EncryptedSynapse):
    PROTOCOL_TYPE: ClassVar[str] = CHALLENGE_PROOF_V1


class NopeSynapse(EncryptedSynapse):
    """A route no validator serves (expects HTTP 404)."""

    PROTOCOL_TYPE: ClassVar[str] = "NOPE_V1"


SYNAPSE_CLASSES: Dict[str, Type[bt.Synapse]] = {
    c.__name__: c
    for c in (SessionInitSynapse, HeartbeatSynapse, TaskSynapse, ChallengeSynapse, ChallengeProofSynapse)
}

# ---------------------------------------------------------------------------
# Session crypto (byteleap-protocol.md 2.4-2.7)
# ---------------------------------------------------------------------------


def b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64d_strict(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def x25519_public_b64(private_raw: bytes) -> str:
    priv = x25519.X25519PrivateKey.from_private_bytes(private_raw)
    return b64e(priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def x25519_generate() -> Tuple[bytes, str]:
    """Return (private 32 raw bytes, public key as standard base64 with padding)."""
    priv = x25519.X25519PrivateKey.generate()
    raw = priv.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return raw, x25519_public_b64(raw)


def x25519_shared(private_raw: bytes, peer_public_b64: str) -> bytes:
    peer = b64d_strict(peer_public_b64)
    if len(peer) != 32:
        raise ValueError(f"peer public key must be 32 bytes, got {len(peer)}")
    priv = x25519.X25519PrivateKey.from_private_bytes(private_raw)
    return priv.exchange(x25519.X25519PublicKey.from_public_bytes(peer))


def hkdf_info(direction: bytes, client_hotkey: str, server_hotkey: str, client_pub_b64: str,
              server_pub_b64: str, salt: bytes) -> bytes:
    return b"|".join([
        direction,
        client_hotkey.encode("utf-8"),
        server_hotkey.encode("utf-8"),
        client_pub_b64.encode("ascii"),
        server_pub_b64.encode("ascii"),
        salt,
        HKDF_ALGORITHM_INFO,
    ])


def derive_session_keys(shared_secret: bytes, client_nonce: bytes, server_nonce: bytes, client_hotkey: str,
                        server_hotkey: str, client_pub_b64: str, server_pub_b64: str) -> Tuple[bytes, bytes]:
    """Return (k_cs, k_sc). Client = miner, server = validator."""
    if len(client_nonce) != 16 or len(server_nonce) != 16:
        raise ValueError("nonces must be 16 bytes")
    salt = client_nonce + server_nonce
    keys = []
    for direction in (b"session_key_client_to_server", b"session_key_server_to_client"):
        info = hkdf_info(direction, client_hotkey, server_hotkey, client_pub_b64, server_pub_b64, salt)
        keys.append(HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(shared_secret))
    return keys[0], keys[1]


def package_iv(session_id: str, seq: int) -> bytes:
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError("seq out of range")
    return hashlib.sha256(session_id.encode("utf-8")).digest()[:4] + seq.to_bytes(8, "big")


def package_aad(sender: str, recipient: str, synapse_type: str, session_id: str, seq: int) -> bytes:
    return f"{AAD_PREFIX}|{sender}|{recipient}|{synapse_type}|session_{session_id}|seq_{seq}".encode("utf-8")


def plaintext_bytes(obj: Any) -> bytes:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump()
    return json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8")


def encrypt_package(obj: Any, session_id: str, key: bytes, seq: int, sender: str, recipient: str,
                    synapse_type: str) -> str:
    """Return the package JSON string that goes into the synapse ``request``/``response``."""
    ct = AESGCM(key).encrypt(package_iv(session_id, seq), plaintext_bytes(obj),
                             package_aad(sender, recipient, synapse_type, session_id, seq))
    package = {
        "ver": PROTOCOL_VERSION,
        "session_id": session_id,
        "seq": seq,
        "ciphertext": b64e(ct),
        "sender": sender,
        "recipient": recipient,
        "synapse_type": synapse_type,
    }
    return json.dumps(package)


class PackageError(Exception):
    pass


def decrypt_package(package_str: str, key: bytes, expected_sender: str, expected_recipient: str,
                    expected_type: str) -> Tuple[Any, str, int]:
    """Check and open a package. Return (object, session_id, seq). Raises PackageError."""
    try:
        pkg = json.loads(package_str)
    except (TypeError, ValueError) as e:
        raise PackageError(f"package is not JSON: {e}") from e
    if not isinstance(pkg, dict):
        raise PackageError("package is not a JSON object")
    for field in ("ver", "session_id", "seq", "ciphertext", "sender", "recipient", "synapse_type"):
        if field not in pkg:
            raise PackageError(f"package misses {field!r}")
    if pkg["ver"] != PROTOCOL_VERSION:
        raise PackageError(f"bad version {pkg['ver']!r}")
    if pkg["sender"] != expected_sender:
        raise PackageError(f"sender {pkg['sender']!r} != {expected_sender!r}")
    if pkg["recipient"] != expected_recipient:
        raise PackageError(f"recipient {pkg['recipient']!r} != {expected_recipient!r}")
    if pkg["synapse_type"] != expected_type:
        raise PackageError(f"synapse_type {pkg['synapse_type']!r} != {expected_type!r}")
    seq = pkg["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
        raise PackageError(f"bad seq {seq!r}")
    sid = pkg["session_id"]
    try:
        ct = base64.b64decode(pkg["ciphertext"])
        pt = AESGCM(key).decrypt(package_iv(sid, seq), ct,
                                 package_aad(pkg["sender"], pkg["recipient"], pkg["synapse_type"], sid, seq))
    except Exception as e:  # InvalidTag, binascii.Error
        raise PackageError(f"decryption failed: {type(e).__name__} {e}") from e
    try:
        return json.loads(pt.decode("utf-8")), sid, seq
    except ValueError as e:
        raise PackageError(f"decrypted payload is not JSON: {e}") from e


class SlidingWindow:
    """Inbound sequence window (protocol doc 2.7)."""

    def __init__(self, window: int = REPLAY_WINDOW_SIZE):
        self.window = window
        self.recv_seq = 0
        self._seen: set = set()
        self._order: deque = deque()

    def accept(self, seq: int) -> bool:
        if seq in self._seen:
            return False
        if seq < max(0, self.recv_seq - self.window + 1):
            return False
        if seq > self.recv_seq + 2 * self.window:
            return False
        self.recv_seq = max(self.recv_seq, seq)
        self._seen.add(seq)
        self._order.append(seq)
        while len(self._order) > self.window:
            self._seen.discard(self._order.popleft())
        return True


def parse_plain_error(text: Optional[str]) -> Optional[dict]:
    """The miner's test for a plaintext error: JSON object with 'error' and 'error_code'."""
    if not isinstance(text, str):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if isinstance(obj, dict) and "error" in obj and "error_code" in obj:
        return obj
    return None


# ---------------------------------------------------------------------------
# Self-test against byteleap-protocol.md 9.4 / 9.5
# ---------------------------------------------------------------------------

V94 = {
    "client_pub": "e06Qm75//kTEZaIgA31gjuNYl9Me+XLwf3SJLLD3PxM=",
    "server_pub": "D6poTtKIZ7l/Smot7l34zpdOdrcBjj8iocTPJnhXDyA=",
    "shared": "9e004098efc091d4ec2663b4e9f5cfd4d7064571690b4bea97ab146ab9f35056",
    "client_hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
    "server_hotkey": "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
    "k_cs": "28b13af276ffe3928aab41e1fa932d754711a5c672cd42e7e51b99b7419d3d17",
    "k_sc": "f414a6281e60cb6610dd38135453113df650516dcce7ec6e092b207d9345b7f0",
    "sid": "11111111-2222-3333-4444-555555555555",
    "plaintext": '{"hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY", "request_type": "challenge", '
                 '"schema_version": 1, "timestamp": 1700000000.0}',
    "iv": "666ff6cc0000000000000001",
    "aad": "leap-comm|5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY|5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
           "|TASK_V1|session_11111111-2222-3333-4444-555555555555|seq_1",
    "ct_req": "Ip1gNqaPej7eM7zB0j/OF6tbnCwU7DEROz6xiBYNRjbchYWN+L1ZlAY33hJLeoYEJAFs3mjgjQH2stJh0xDKTujB5cliIOSV4EzNxsDN"
              "sCKE1dKmx65QXYGAv7KfFdSy5b5G1/bBZVGuXBzct3dpPrJwutpXcMEwbwt/jc8O/8FJZRVRRzRBjgHIxVK65vWP6a7RZY8Ys3POH2o=",
    "ct_resp": "w/gJDciyWmm1JJ8OfAB7tBAJRxmO7HlGGo0kdDPOOkaZaTZEZzq0YWEqvz7o0spJfpiydyRR78CXW/yh0drxt+HQuH5iwTpfBi1/fUVt"
               "NCZ9MWcylfTnuZs4X/0GNuOtjSnP/rjNpvgxqS0=",
    "empty_hash": "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a",
}


def crypto_self_test() -> List[Tuple[str, bool, str]]:
    """Return [(name, ok, detail)] for every 9.4 / 9.5 vector."""
    v = V94
    out: List[Tuple[str, bool, str]] = []

    def chk(name: str, got: Any, want: Any) -> None:
        out.append((name, got == want, "" if got == want else f"got {got!r} want {want!r}"))

    cpriv, spriv = b"\x11" * 32, b"\x22" * 32
    chk("X25519 client public", x25519_public_b64(cpriv), v["client_pub"])
    chk("X25519 server public", x25519_public_b64(spriv), v["server_pub"])
    shared_c = x25519_shared(cpriv, v["server_pub"])
    shared_s = x25519_shared(spriv, v["client_pub"])
    chk("X25519 shared (client side)", shared_c.hex(), v["shared"])
    chk("X25519 shared (server side)", shared_s.hex(), v["shared"])
    cn, sn = bytes(range(16)), bytes(range(16, 32))
    k_cs, k_sc = derive_session_keys(shared_c, cn, sn, v["client_hotkey"], v["server_hotkey"], v["client_pub"],
                                     v["server_pub"])
    chk("HKDF k_cs", k_cs.hex(), v["k_cs"])
    chk("HKDF k_sc", k_sc.hex(), v["k_sc"])
    obj = {"hotkey": v["client_hotkey"], "request_type": "challenge", "schema_version": 1, "timestamp": 1700000000.0}
    chk("plaintext bytes", plaintext_bytes(obj).decode(), v["plaintext"])
    chk("IV", package_iv(v["sid"], 1).hex(), v["iv"])
    chk("AAD", package_aad(v["client_hotkey"], v["server_hotkey"], TASK_V1, v["sid"], 1).decode(), v["aad"])
    pkg = encrypt_package(obj, v["sid"], k_cs, 1, v["client_hotkey"], v["server_hotkey"], TASK_V1)
    chk("request ciphertext", json.loads(pkg)["ciphertext"], v["ct_req"])
    want_pkg = (f'{{"ver": "v1", "session_id": "{v["sid"]}", "seq": 1, "ciphertext": "{v["ct_req"]}", '
                f'"sender": "{v["client_hotkey"]}", "recipient": "{v["server_hotkey"]}", "synapse_type": "TASK_V1"}}')
    chk("request package string", pkg, want_pkg)
    dec, sid, seq = decrypt_package(pkg, k_cs, v["client_hotkey"], v["server_hotkey"], TASK_V1)
    chk("request decrypts back", (dec, sid, seq), (obj, v["sid"], 1))
    robj = {"task_type": "no_task", "task_data": None, "timestamp": 1700000001.0, "schema_version": 1}
    rpkg = encrypt_package(robj, v["sid"], k_sc, 1, v["server_hotkey"], v["client_hotkey"], TASK_V1)
    chk("response ciphertext", json.loads(rpkg)["ciphertext"], v["ct_resp"])
    try:
        decrypt_package(rpkg, k_cs, v["server_hotkey"], v["client_hotkey"], TASK_V1)
        chk("wrong key rejected", False, True)
    except PackageError:
        chk("wrong key rejected", True, True)
    chk("SHA3-256 empty body hash", EMPTY_BODY_HASH, v["empty_hash"])
    chk("SessionInitSynapse().body_hash", SessionInitSynapse().body_hash, v["empty_hash"])
    # 9.5 replay window
    w = SlidingWindow()
    seqs = [1, 5, 5, 3, 2054, 2053, 1029, 1030, 0, 2053]
    want = [True, True, False, True, False, True, False, True, False, False]
    chk("replay window 9.5 sequence", [w.accept(s) for s in seqs], want)
    # "on a fresh validator": each of 2048 / 2049 / 0 as the FIRST seq of a fresh window
    chk("replay window 9.5 fresh 2048/2049/0", [SlidingWindow().accept(s) for s in (2048, 2049, 0)],
        [True, False, True])
    return out


# ---------------------------------------------------------------------------
# Wallets
# ---------------------------------------------------------------------------


def ensure_wallet(path: str, name: str, hotkey: str = "default", overwrite: bool = False) -> bt.Wallet:
    """Open (or create, unencrypted, offline) a wallet at ``path/name`` with hotkey ``hotkey``."""
    w = bt.Wallet(name=name, hotkey=hotkey, path=path)
    hk_file = os.path.join(os.path.expanduser(path), name, "hotkeys", hotkey)
    if overwrite or not os.path.exists(hk_file):
        w.create_new_coldkey(use_password=False, overwrite=True, suppress=True)
        w.create_new_hotkey(use_password=False, overwrite=True, suppress=True)
    return w


def make_axon_info(ip: str, port: int, validator_hotkey: str) -> bt.AxonInfo:
    return bt.AxonInfo(version=version_as_int, ip=ip, port=port,
                       ip_type=4, hotkey=validator_hotkey, coldkey="", protocol=4, placeholder1=0, placeholder2=0)


# ---------------------------------------------------------------------------
# Transport
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class HttpCapture:
    """What actually went over the wire for one dendrite call."""

    method: Optional[str] = None
    url: Optional[str] = None
    request_headers: Dict[str, str] = dataclasses.field(default_factory=dict)
    status: Optional[int] = None
    response_headers: Dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""


def _capturing_session(cap: HttpCapture) -> aiohttp.ClientSession:
    tc = aiohttp.TraceConfig()

    async def on_start(session, ctx, params):
        cap.method, cap.url = params.method, str(params.url)
        cap.request_headers = dict(params.headers)

    async def on_chunk(session, ctx, params):
        cap.body += params.chunk

    async def on_end(session, ctx, params):
        cap.status = params.response.status
        cap.response_headers = dict(params.response.headers)

    tc.on_request_start.append(on_start)
    tc.on_response_chunk_received.append(on_chunk)
    tc.on_request_end.append(on_end)
    return aiohttp.ClientSession(trace_configs=[tc])


@dataclasses.dataclass
class CallResult:
    synapse: bt.Synapse          # the synapse as the dendrite returned it
    http: HttpCapture            # raw HTTP status / headers / body seen on the wire
    elapsed: float

    @property
    def status(self) -> Optional[int]:
        return self.http.status

    @property
    def response(self) -> Optional[str]:
        return getattr(self.synapse, "response", None)


async def dendrite_call(wallet: bt.Wallet, axon_info: bt.AxonInfo, synapse: bt.Synapse,
                        timeout: float = 12.0) -> CallResult:
    """One request through a NEW real ``bt.Dendrite`` (as the miner does), wire capture on."""
    cap = HttpCapture()
    t0 = time.time()
    dendrite = bt.Dendrite(wallet=wallet)
    dendrite._session = _capturing_session(cap)  # the dendrite otherwise creates a plain ClientSession lazily
    async with dendrite:
        responses = await dendrite.forward(axons=[axon_info], synapse=synapse, timeout=timeout)
    out = responses[0] if isinstance(responses, list) else responses
    return CallResult(synapse=out, http=cap, elapsed=time.time() - t0)


@dataclasses.dataclass
class RawRequest:
    """A request exactly as the dendrite would send it, editable before sending."""

    url: str
    headers: Dict[str, str]
    body: bytes
    dendrite: Any = None
    synapse: Any = None

    def copy(self) -> "RawRequest":
        return RawRequest(self.url, dict(self.headers), self.body, self.dendrite, self.synapse)


def build_raw_request(wallet: bt.Wallet, axon_info: bt.AxonInfo, synapse: bt.Synapse, timeout: float = 12.0,
                      dendrite: Optional[bt.Dendrite] = None, nonce_ns: Optional[int] = None) -> RawRequest:
    """Build the URL, headers and body the dendrite would send (same code path as ``Dendrite.call``).

    With ``nonce_ns`` the dendrite nonce is replaced and the request re-signed correctly
    (message ``"{nonce}.{dendrite_hotkey}.{axon_hotkey}.{dendrite_uuid}.{body_hash}"``).
    """
    dendrite = dendrite or bt.Dendrite(wallet=wallet)
    syn = synapse.model_copy()
    url = dendrite._get_endpoint_url(axon_info, request_name=syn.__class__.__name__)
    syn = dendrite.preprocess_synapse_for_request(axon_info, syn, timeout)
    if nonce_ns is not None:
        syn.dendrite.nonce = nonce_ns
        msg = f"{syn.dendrite.nonce}.{syn.dendrite.hotkey}.{syn.axon.hotkey}.{syn.dendrite.uuid}.{syn.body_hash}"
        syn.dendrite.signature = f"0x{dendrite.keypair.sign(msg).hex()}"
    headers = syn.to_headers()
    # aiohttp's json= uses json.dumps with default separators and Content-Type application/json
    body = json.dumps(syn.model_dump()).encode("utf-8")
    headers["Content-Type"] = "application/json"
    return RawRequest(url=url, headers=headers, body=body, dendrite=dendrite, synapse=syn)


@dataclasses.dataclass
class RawResult:
    status: int
    headers: Dict[str, str]
    text: str

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None


async def send_raw(req: RawRequest, timeout: float = 12.0) -> RawResult:
    async with aiohttp.ClientSession() as s:
        async with s.post(req.url, headers=req.headers, data=req.body,
                          timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            text = await r.text(errors="replace")
            return RawResult(status=r.status, headers=dict(r.headers), text=text)


# ---------------------------------------------------------------------------
# Session handling (miner side)
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Session:
    session_id: str
    k_cs: bytes
    k_sc: bytes
    expires_at: float
    client_hotkey: str
    server_hotkey: str
    next_seq: int = 1
    inbound: SlidingWindow = dataclasses.field(default_factory=SlidingWindow)

    def take_seq(self) -> int:
        s = self.next_seq
        self.next_seq += 1
        return s


class HandshakeError(Exception):
    def __init__(self, msg: str, result: Optional[CallResult] = None):
        super().__init__(msg)
        self.result = result


async def handshake(wallet: bt.Wallet, axon_info: bt.AxonInfo, timeout: float = 30.0,
                    request_override: Optional[dict] = None) -> Tuple[Session, CallResult]:
    """Run the SessionInit handshake (2.4) with a real dendrite; return the session and the call."""
    priv, pub_b64 = x25519_generate()
    client_nonce = os.urandom(16)
    req = {"miner_eph_pub32": pub_b64, "client_nonce16": b64e(client_nonce), "created_at": time.time()}
    if request_override:
        req.update(request_override)
    res = await dendrite_call(wallet, axon_info, SessionInitSynapse(request=json.dumps(req)), timeout=timeout)
    if res.status != 200:
        raise HandshakeError(f"HTTP {res.status}", res)
    if not isinstance(res.response, str):
        raise HandshakeError(f"no string 'response' (dendrite status {res.synapse.dendrite.status_code} "
                             f"{res.synapse.dendrite.status_message})", res)
    try:
        data = json.loads(res.response)
    except ValueError as e:
        raise HandshakeError(f"response is not JSON: {e}", res) from e
    if not isinstance(data, dict) or "error" in data:
        raise HandshakeError(f"handshake refused: {data!r}", res)
    for f in ("validator_eph_pub32", "session_id", "server_nonce16", "expires_at"):
        if f not in data:
            raise HandshakeError(f"response misses {f!r}: {data!r}", res)
    try:
        vpub = b64d_strict(data["validator_eph_pub32"])
        snonce = b64d_strict(data["server_nonce16"])
    except Exception as e:
        raise HandshakeError(f"bad base64 in response: {e}", res) from e
    if len(vpub) != 32 or len(snonce) != 16:
        raise HandshakeError(f"bad lengths pub={len(vpub)} nonce={len(snonce)}", res)
    if not isinstance(data["session_id"], str) or not data["session_id"]:
        raise HandshakeError("empty session_id", res)
    if not isinstance(data["expires_at"], (int, float)) or isinstance(data["expires_at"], bool):
        raise HandshakeError(f"expires_at not a number: {data['expires_at']!r}", res)
    shared = x25519_shared(priv, data["validator_eph_pub32"])
    client_hk = wallet.hotkey.ss58_address
    k_cs, k_sc = derive_session_keys(shared, client_nonce, snonce, client_hk, axon_info.hotkey, pub_b64,
                                     data["validator_eph_pub32"])
    return Session(session_id=data["session_id"], k_cs=k_cs, k_sc=k_sc, expires_at=float(data["expires_at"]),
                   client_hotkey=client_hk, server_hotkey=axon_info.hotkey), res


@dataclasses.dataclass
class EncryptedResult:
    call: CallResult
    package: str                     # the request package string sent
    seq: int                         # its seq
    plain_error: Optional[dict] = None   # plaintext {"error", "error_code"} answer, if any
    data: Any = None                 # decrypted answer, if any
    response_seq: Optional[int] = None
    decrypt_error: Optional[str] = None


def make_package(session: Session, synapse_class: Type[bt.Synapse], payload: Any, seq: Optional[int] = None,
                 session_id: Optional[str] = None) -> Tuple[str, int]:
    seq = session.take_seq() if seq is None else seq
    pkg = encrypt_package(payload, session_id or session.session_id, session.k_cs, seq, session.client_hotkey,
                          session.server_hotkey, synapse_class.PROTOCOL_TYPE)
    return pkg, seq


def open_response(session: Session, synapse_class: Type[bt.Synapse], res: EncryptedResult) -> EncryptedResult:
    """Interpret ``res.call.response`` like the miner: plaintext error first, else decrypt + window."""
    raw = res.call.response
    if raw is None:
        res.decrypt_error = "no response"
        return res
    err = parse_plain_error(raw)
    if err is not None:
        res.plain_error = err
        return res
    try:
        data, sid, seq = decrypt_package(raw, session.k_sc, session.server_hotkey, session.client_hotkey,
                                         synapse_class.PROTOCOL_TYPE)
    except PackageError as e:
        res.decrypt_error = str(e)
        return res
    if sid != session.session_id:
        res.decrypt_error = f"response session_id {sid!r} != {session.session_id!r}"
        return res
    if not session.inbound.accept(seq):
        res.decrypt_error = f"response seq {seq} rejected by the inbound window (recv_seq {session.inbound.recv_seq})"
        return res
    res.data, res.response_seq = data, seq
    return res


async def send_encrypted(wallet: bt.Wallet, axon_info: bt.AxonInfo, session: Session,
                         synapse_class: Type[bt.Synapse], payload: Any, timeout: float = 12.0,
                         package: Optional[str] = None, seq: Optional[int] = None) -> EncryptedResult:
    """Encrypt ``payload`` (or re-send a given ``package`` string verbatim) through a real dendrite.

    Returns the decrypted answer in ``.data`` or the plaintext error JSON in ``.plain_error``.
    """
    if package is None:
        package, seq = make_package(session, synapse_class, payload, seq=seq)
    call = await dendrite_call(wallet, axon_info, synapse_class(request=package), timeout=timeout)
    return open_response(session, synapse_class, EncryptedResult(call=call, package=package, seq=seq or -1))


class AxonClient:
    """Convenience wrapper: one miner wallet, one target axon, one current session."""

    def __init__(self, wallet: bt.Wallet, axon_info: bt.AxonInfo, timeout: float = 12.0):
        self.wallet = wallet
        self.axon_info = axon_info
        self.timeout = timeout
        self.session: Optional[Session] = None

    async def handshake(self, **kw) -> Tuple[Session, CallResult]:
        self.session, res = await handshake(self.wallet, self.axon_info, **kw)
        return self.session, res

    async def send_encrypted(self, synapse_class: Type[bt.Synapse], payload: Any, **kw) -> EncryptedResult:
        if self.session is None:
            await self.handshake()
        return await send_encrypted(self.wallet, self.axon_info, self.session, synapse_class, payload,
                                    timeout=kw.pop("timeout", self.timeout), **kw)

    def raw(self, synapse: bt.Synapse, **kw) -> RawRequest:
        return build_raw_request(self.wallet, self.axon_info, synapse, timeout=kw.pop("timeout", self.timeout), **kw)


# ---------------------------------------------------------------------------
# Sample payloads (shapes of protocol doc 2.10)
# ---------------------------------------------------------------------------


def sample_system_info() -> dict:
    return {"cpu_count": 2, "cpu_usage": 3.5, "memory_total": 24000, "memory_available": 20000,
            "memory_usage": 16.6, "disk_total": 100, "disk_free": 50, "gpu_info": [], "gpu_plugin": [],
            "public_ip": "127.0.0.1", "cpu_info": None, "memory_info": None, "system_info": None,
            "motherboard_info": None, "uptime_seconds": 1234.0, "storage_info": None, "miner_version": "0.0.5"}


def sample_heartbeat(hotkey: str, worker_id: str = "e2e0worker000001") -> dict:
    now = time.time()
    return {"hotkey": hotkey, "timestamp": now,
            "workers": [{"worker_id": worker_id, "worker_name": "e2e-worker", "worker_version": "0.0.5",
                         "capabilities": ["cpu_matrix"], "status": "online", "system_info": sample_system_info(),
                         "connected_at": now - 60, "last_heartbeat": now}],
            "miner_info": sample_system_info(), "schema_version": 1}


def sample_task_request(hotkey: str) -> dict:
    return {"hotkey": hotkey, "request_type": "challenge", "timestamp": time.time(), "schema_version": 1}


def sample_commitment(challenge_id: Optional[str] = None, worker_id: str = "e2e0worker000001") -> dict:
    return {"challenge_id": challenge_id or str(uuid.uuid4()), "worker_id": worker_id,
            "commitments": [{"uuid": "-1", "merkle_root": "00" * 32, "sig_ver": 0, "sig_val": None}],
            "debug_info": {}, "schema_version": 1}


def sample_proof(challenge_id: Optional[str] = None) -> dict:
    return {"challenge_id": challenge_id or str(uuid.uuid4()),
            "proofs": [{"uuid": "-1", "row_hashes": ["00" * 8],
                        "merkle_proofs": [{"leaf_index": 0, "leaf_hash": "00" * 8, "proof_hashes": [],
                                           "proof_directions": []}], "coordinate_values": []}],
            "debug_info": {"timestamps": {}}, "schema_version": 1}


if __name__ == "__main__":
    bad = 0
    for name, ok, detail in crypto_self_test():
        print(f"{'PASS' if ok else 'FAIL'}  {name}{'  ' + detail if detail else ''}")
        bad += not ok
    raise SystemExit(1 if bad else 0)
