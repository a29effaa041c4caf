"""Regenerates float_repr.txt: `<f64 bits hex> <CPython json.dumps(x)>` per line (deterministic seed)."""
import json
import random
import struct

rng = random.Random(128)
values = []
while len(values) < 1200:  # random finite bit patterns
    x = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
    if x == x and abs(x) != float("inf"):
        values.append(x)
for _ in range(400):  # random decimals across the fixed/exponent boundaries
    values.append(float(f"{rng.uniform(-10, 10):.{rng.randint(1, 17)}f}e{rng.randint(-25, 25)}"))
for _ in range(200):  # timestamps and integral floats
    values.append(rng.uniform(1.6e9, 1.8e9))
    values.append(float(rng.randint(0, 2**60)))
for e in range(-8, 20):  # around 10**e
    for x in (10.0**e, 10.0**e * (1 + 2**-52), 10.0**e * (1 - 2**-53)):
        values.append(x)
        values.append(-x)
for _ in range(300):  # halfway cases: few significant bits at 16-17 digits, where tie-breaking matters
    values.append(rng.randint(10**15, 9 * 10**15) / 4)
    values.append(rng.randint(2**52, 2**53) * 2.0 ** rng.randint(-60, 60))
values += [1517798323230249.25, 0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 0.2, 0.3]
with open("float_repr.txt", "w") as out:
    for x in values:
        out.write(f"{struct.unpack('<Q', struct.pack('<d', x))[0]:016x} {json.dumps(x)}\n")
