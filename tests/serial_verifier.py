#!/usr/bin/python3
"""An independent implementation of docs/serial-format.md, in Python with the `cryptography` package only.

It proves the format can be implemented from the document: it (1) recomputes every vector and activation code
in tests/vectors/serial.json, (2) with --keypost, has the built binary make serials for a spread of names under
both schemes and both block layouts (editions, expiry) and checks each one here by decrypting it, (3) checks that
a serial with one symbol changed is rejected, both here and by `keypost verify`, that an expired serial is refused
by `keypost verify --at`, and that `keypost activate` makes the codes section 6 specifies.
Ends with `serial-verifier: N passed, M failed`; exits 1 if M > 0.

Run: /usr/bin/python3 tests/serial_verifier.py --keypost target/debug/keypost
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors" / "serial.json"

# Section 2.1: the Unicode White_Space property, listed.
WHITE_SPACE = set(chr(c) for c in [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                                   0x2028, 0x2029, 0x202F, 0x205F, 0x3000])
ALPHABETS = {
    "base32": "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
    "crockford": "0123456789ABCDEFGHJKMNPQRSTVWXYZ",
    "hex": "0123456789ABCDEF",
}
EPOCH = datetime.date(2000, 1, 1)
TAG_KEY_LABEL = b"keypost block v1 tag key"
ACTIVATION_KEY_LABEL = b"keypost activation v1 key"
# Section 5.4: header length and tag length per layout version.
LAYOUTS = {1: (7, 9), 2: (10, 6)}


class Refused(Exception):
    """A name without a serial (the code matches the vectors' `error` field), or an invalid serial."""


# --- Section 2: normalisation -------------------------------------------------------------------------------

def one_pass(text, casefold):
    mapped = "".join(" " if c in WHITE_SPACE else c for c in text)
    spaced = " ".join(part for part in mapped.split(" ") if part)
    if casefold:
        spaced = spaced.lower()
    return unicodedata.normalize("NFKC", spaced)


def normalise(name, rule):
    if rule == "none":
        if all(c in WHITE_SPACE for c in name):
            raise Refused("empty-name")
        return name
    casefold = rule == "rfc8266-casefold"
    cur = one_pass(name, casefold)
    for _ in range(3):
        nxt = one_pass(cur, casefold)
        if nxt == cur:
            break
        cur = nxt
    else:
        raise Refused("unstable-name")
    if any(unicodedata.category(c) == "Cc" for c in cur):
        raise Refused("control-character")
    if not cur:
        raise Refused("empty-name")
    return cur


# --- Sections 1 and 3: keys, text forms, grouping, reading typed serials ------------------------------------

def parse16(text):
    if len(text) == 32 and all(c in "0123456789abcdefABCDEF" for c in text):
        return bytes.fromhex(text)
    if len(text) == 16 and all(0x20 <= ord(c) <= 0x7E for c in text):
        return text.encode("ascii")
    raise ValueError("a key or IV must be 32 hex digits or 16 ASCII characters")


def to_text(data, output):
    alphabet = ALPHABETS[output]
    if output == "hex":
        return data.hex().upper()
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 5)
    return "".join(alphabet[int(bits[i:i + 5], 2)] for i in range(0, len(bits), 5))


def from_text(text, output):
    """Canonical symbols back to bytes; Refused unless they are exactly an encoding of whole bytes."""
    alphabet = ALPHABETS[output]
    width = 4 if output == "hex" else 5
    bits = "".join(f"{alphabet.index(c):0{width}b}" for c in text)
    whole, rest = divmod(len(bits), 8)
    if rest >= width or "1" in bits[whole * 8:]:
        raise Refused("not a whole encoding")
    return bytes(int(bits[i:i + 8], 2) for i in range(0, whole * 8, 8))


def group(text, size, separator):
    if size == 0:
        return text
    return separator.join(text[i:i + size] for i in range(0, len(text), size))


def canonical(typed, output, separator):
    text = typed.replace(separator, "") if separator else typed
    if output == "base32":
        text = text.rstrip("=" + "".join(WHITE_SPACE))
    out = []
    for c in text:
        if c in WHITE_SPACE or c == "-":
            continue
        c = c.upper() if c.isascii() else c
        if output == "crockford":
            c = {"O": "0", "I": "1", "L": "1"}.get(c, c)
        if c not in ALPHABETS[output]:
            raise Refused(f"symbol {c!r} is not in the {output} alphabet")
        out.append(c)
    return "".join(out)


# --- Section 4: name-cbc ------------------------------------------------------------------------------------

def name_bytes(name, encoding):
    if encoding == "utf-8":
        return name.encode("utf-8")
    if encoding == "utf-16le":
        return name.encode("utf-16-le")
    try:
        return name.encode("cp1252")
    except UnicodeEncodeError:
        raise Refused("not-representable") from None


def cbc_params(set_):
    return (parse16(set_["key"]), parse16(set_.get("iv", "00" * 16)), set_.get("name_encoding", "utf-8"),
            set_.get("output", "base32"), set_.get("group", 0), set_.get("separator", "-"),
            set_.get("normalise", "rfc8266"))


def cbc_make(set_, name):
    key, iv, encoding, output, size, separator, rule = cbc_params(set_)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(name_bytes(normalise(name, rule), encoding)) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return group(to_text(encryptor.update(plain) + encryptor.finalize(), output), size, separator)


def cbc_verify(set_, name, serial):
    """Decrypts the serial and compares the plaintext with the name's bytes (another path than cbc_make)."""
    key, iv, encoding, output, _, separator, rule = cbc_params(set_)
    data = from_text(canonical(serial, output, separator), output)
    if not data or len(data) % 16:
        raise Refused("ciphertext is not whole blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise Refused("bad padding") from None
    if plain != name_bytes(normalise(name, rule), encoding):
        raise Refused("serial is for another name")
    return {}


# --- Section 5: block ---------------------------------------------------------------------------------------

def hmac_sha256(key, message):
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(message)
    return mac.finalize()


def block_tag(key, header, name):
    tag_len = LAYOUTS[header[0]][1]
    return hmac_sha256(hmac_sha256(key, TAG_KEY_LABEL), header + name.encode("utf-8"))[:tag_len]


def day_number(date):
    day = (date - EPOCH).days
    if not 0 <= day <= 0xFFFF:
        raise Refused("date-out-of-range")
    return day


def block_make(set_, name, seats, issued, edition=0, expires=None):
    """Layout 1 when there is neither edition nor expiry (section 5.1), else layout 2 (section 5.4)."""
    key = parse16(set_["key"])
    name = normalise(name, set_.get("normalise", "rfc8266-casefold"))
    version = 1 if edition == 0 and expires is None else 2
    header = (bytes([version]) + set_["product_code"].to_bytes(2, "big") + seats.to_bytes(2, "big")
              + day_number(issued).to_bytes(2, "big"))
    if version == 2:
        expiry = 0 if expires is None else day_number(expires)
        if expires is not None and (expires < issued or expiry == 0):
            raise Refused("bad expiry")
        header += bytes([edition]) + expiry.to_bytes(2, "big")
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    block = encryptor.update(header + block_tag(key, header, name)) + encryptor.finalize()
    serial = set_.get("key_id", "K1").upper() + to_text(block, "crockford")
    return group(serial, set_.get("group", 4), set_.get("separator", "-"))


def block_verify(set_, name, serial):
    """Decrypts the block with the key its key id names and checks version, product code and tag."""
    keys = {set_.get("key_id", "K1").upper(): set_["key"]}
    keys.update({r["key_id"].upper(): r["key"] for r in set_.get("retired_keys", [])})
    text = canonical(serial, "crockford", set_.get("separator", "-"))
    if len(text) != 28:
        raise Refused(f"{len(text)} symbols, not 28")
    if text[:2] not in keys:
        raise Refused(f"unknown key id {text[:2]}")
    key = parse16(keys[text[:2]])
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    block = decryptor.update(from_text(text[2:], "crockford")) + decryptor.finalize()
    if block[0] not in LAYOUTS or int.from_bytes(block[1:3], "big") != set_["product_code"]:
        raise Refused("mistyped or another product")
    header_len = LAYOUTS[block[0]][0]
    name = normalise(name, set_.get("normalise", "rfc8266-casefold"))
    if not hmac_compare(block[header_len:], block_tag(key, block[:header_len], name)):
        raise Refused("serial is for another name")
    facts = {"layout": block[0], "seats": int.from_bytes(block[3:5], "big"),
             "issued": EPOCH + datetime.timedelta(days=int.from_bytes(block[5:7], "big")), "key_id": text[:2],
             "edition": 0, "expires": None}
    if block[0] == 2:
        expiry = int.from_bytes(block[8:10], "big")
        facts.update(edition=block[7], expires=EPOCH + datetime.timedelta(days=expiry) if expiry else None)
    return facts


# --- Section 6: activation codes ----------------------------------------------------------------------------

def activation_code(set_, serial, machine):
    machine = machine.strip("".join(WHITE_SPACE))
    if not machine:
        raise Refused("empty machine id")
    if set_["scheme"] == "block":
        text = canonical(serial, "crockford", set_.get("separator", "-"))
        keys = {set_.get("key_id", "K1").upper(): set_["key"]}
        keys.update({r["key_id"].upper(): r["key"] for r in set_.get("retired_keys", [])})
        if len(text) != 28 or text[:2] not in keys:
            raise Refused("not a serial of this product")
        key = parse16(keys[text[:2]])
    else:
        output = set_.get("output", "base32")
        text = canonical(serial, output, set_.get("separator", "-"))
        key = parse16(set_["key"])
    mac = hmac_sha256(hmac_sha256(key, ACTIVATION_KEY_LABEL), text.encode("ascii") + b"\0" + machine.encode("utf-8"))
    return group(to_text(mac[:10], "crockford"), 4, "-")


def hmac_compare(a, b):
    diff = len(a) ^ len(b)
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0


def verifies(set_, name, serial):
    try:
        verify(set_, name, serial)
        return True
    except Refused:
        return False


def make(set_, name, seats=1, issued=EPOCH, edition=0, expires=None):
    if set_["scheme"] == "block":
        return block_make(set_, name, seats, issued, edition, expires)
    return cbc_make(set_, name)


def verify(set_, name, serial):
    return block_verify(set_, name, serial) if set_["scheme"] == "block" else cbc_verify(set_, name, serial)


# --- The checks ---------------------------------------------------------------------------------------------

class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}", file=sys.stderr)


def tamper(serial, output, position):
    """The serial with the symbol at `position` (counting symbols only) replaced by another of its alphabet."""
    alphabet = ALPHABETS[output]
    chars = list(serial)
    symbols = [i for i, c in enumerate(chars) if c.upper() in alphabet]
    index = symbols[position % len(symbols)]
    current = canonical(chars[index], output, "")
    chars[index] = alphabet[(alphabet.index(current) + 7) % len(alphabet)]
    return "".join(chars)


def check_vectors(tally):
    data = json.loads(VECTORS.read_text(encoding="utf-8"))
    sets = {s["id"]: s for s in data["sets"]}
    tally.check(len(data["vectors"]) > 0, "tests/vectors/serial.json has vectors")
    for v in data["vectors"]:
        set_ = sets[v["set"]]
        what = f"vector {v['set']}/{v['name_id']}"
        seats, issued = set_.get("seats", 1), datetime.date.fromisoformat(set_.get("issued", "2000-01-01"))
        edition = set_.get("edition", 0)
        expires = datetime.date.fromisoformat(set_["expires"]) if "expires" in set_ else None
        tally.check(normalise(v["name"], set_["normalise"]) == v["normalised"], f"{what}: normalised name")
        try:
            got, error = make(set_, v["name"], seats, issued, edition, expires), None
        except Refused as refused:
            got, error = None, str(refused)
        tally.check((got, error) == (v["serial"], v["error"]), f"{what}: expected {v['serial'] or v['error']}, got {got or error}")
        if got is not None:
            tally.check(verifies(set_, v["name"], got), f"{what}: does not verify")
            bad = tamper(got, "crockford" if set_["scheme"] == "block" else set_["output"], 5)
            tally.check(not verifies(set_, v["name"], bad), f"{what}: tampered {bad} verifies")
            if set_["scheme"] == "block":
                facts = verify(set_, v["name"], got)
                wanted = (1 if edition == 0 and expires is None else 2, seats, issued, edition, expires)
                got_facts = (facts["layout"], facts["seats"], facts["issued"], facts["edition"], facts["expires"])
                tally.check(got_facts == wanted, f"{what}: decrypted {got_facts}, expected {wanted}")
    tally.check(len(data.get("activations", [])) > 0, "tests/vectors/serial.json has activation codes")
    for a in data.get("activations", []):
        code = activation_code(sets[a["set"]], a["serial"], a["machine"])
        tally.check(code == a["code"], f"activation {a['set']} {a['machine']!r}: expected {a['code']}, got {code}")


# Products for the binary; the keys are the published test keys of the vectors.
PRODUCTS = [
    {"id": "blk", "scheme": "block", "key": "000102030405060708090a0b0c0d0e0f", "key_id": "K2", "product_code": 258,
     "retired_keys": [{"key_id": "K1", "key": "keypost-test-key"}]},
    {"id": "blk-case", "scheme": "block", "key": "keypost-test-key", "product_code": 7, "normalise": "rfc8266",
     "group": 7, "separator": " "},
    {"id": "cbc-crockford", "scheme": "name-cbc", "key": "keypost-test-key", "output": "crockford", "group": 5},
    {"id": "cbc-1252", "scheme": "name-cbc", "key": "keypost-test-key", "iv": "00112233445566778899aabbccddeeff",
     "name_encoding": "windows-1252", "output": "hex"},
    {"id": "cbc-utf16", "scheme": "name-cbc", "key": "000102030405060708090a0b0c0d0e0f",
     "name_encoding": "utf-16le", "normalise": "none", "group": 4, "separator": "."},
]
NAMES = ["Jos\u00e9 M\u00fcller", "Jose\u0301 Mu\u0308ller", "  \u00c5sa   \u00d6berg ", "\u738b\u5c0f\u660e",
         "Zo\u00eb O'Brien-Smith", "Jane\u00a0Doe", "Bartholom\u00e4us Alexander von Hohenzollern-Sigmaringen",
         "\uff2a\uff41\uff4e\uff45", "\u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3", "Ana \U0001F600 Lima",
         "tab\tand\nnewline", "\u01c5emal", "x"]


def toml_value(value):
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_config(directory, products):
    """keypost.toml for `products`: the current key of each comes from a private file, retired ones inline."""
    lines = []
    for p in products:
        key_file = Path(directory) / f"{p['id']}.key"
        key_file.write_text(p["key"] + "\n", encoding="ascii")
        key_file.chmod(0o600)
        lines += ["[[product]]", f"id = {json.dumps(p['id'])}", f"name = {json.dumps(p['id'])}", "[product.serial]",
                  f"key = {{ file = {json.dumps(key_file.name)} }}"]
        for field, value in p.items():
            if field == "retired_keys":
                value = [{"key_id": r["key_id"], "key": {"inline": r["key"]}} for r in value]
            if field not in ("id", "key"):
                lines.append(f"{field} = {toml_value(value)}")
        lines.append("")
    path = Path(directory) / "keypost.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def keypost(binary, config, *args):
    env = dict(os.environ, KEYPOST_LOG="error")
    env.pop("KEYPOST_CONFIG", None)
    return subprocess.run([binary, "--config", str(config), *args], capture_output=True, text=True, env=env)


def check_one(tally, binary, config, product, name, seats, issued):
    what = f"keypost serial {product['id']} {name!r}"
    made = keypost(binary, config, "serial", "--product", product["id"], "--name", name,
                   "--seats", str(seats), "--date", issued.isoformat())
    try:
        expected = make(product, name, seats, issued)
    except Refused as refused:
        tally.check(made.returncode == 1 and made.stdout == "", f"{what}: should be refused ({refused}), got {made}")
        return
    serial = made.stdout.strip()
    tally.check(made.returncode == 0, f"{what}: exit {made.returncode}: {made.stderr.strip()}")
    try:
        facts = verify(product, name, serial)
        if product["scheme"] == "block":
            tally.check((facts["seats"], facts["issued"]) == (seats, issued), f"{what}: seats/date {facts}")
        tally.check(serial == expected, f"{what}: {serial} differs from the spec's {expected}")
    except (Refused, ValueError) as err:
        tally.check(False, f"{what}: {serial!r} does not verify here: {err}")
        return
    ok = keypost(binary, config, "verify", "-p", product["id"], "-n", name, "-s", serial.lower())
    tally.check(ok.returncode == 0 and ok.stdout.startswith("valid: "), f"{what}: keypost verify {ok}")
    output = "crockford" if product["scheme"] == "block" else product.get("output", "base32")
    for position in (0, 3, len(serial) // 2, len(serial) - 1):
        bad = tamper(serial, output, position)
        tally.check(not verifies(product, name, bad), f"{what}: tampered {bad} verifies here")
        refused = keypost(binary, config, "verify", "-p", product["id"], "-n", name, "-s", bad)
        tally.check(refused.returncode == 1 and refused.stdout.startswith("invalid: "),
                    f"{what}: keypost verify accepted tampered {bad}: {refused}")


def check_binary(tally, binary):
    with tempfile.TemporaryDirectory() as directory:
        config = write_config(directory, PRODUCTS)
        for index, product in enumerate(PRODUCTS):
            for name_index, name in enumerate(NAMES):
                seats = 1 + (index * 31 + name_index * 977) % 65535
                issued = datetime.date(2026, 11, 22) + datetime.timedelta(days=name_index * 400 - 2000)
                check_one(tally, binary, config, product, name, seats, issued)
        check_retired_key(tally, binary, config, directory)
    with tempfile.TemporaryDirectory() as directory:
        check_editions(tally, binary, directory)


EDITIONS_PRODUCT = {"id": "ed", "scheme": "block", "key": "000102030405060708090a0b0c0d0e0f", "product_code": 77,
                    "editions": ["standard", "pro", "team"]}


def check_editions(tally, binary, directory):
    """Layout 2 from the binary: edition bits and expiry decrypt here as asked; expiry and activation codes."""
    config = write_config(directory, [EDITIONS_PRODUCT])
    issued = datetime.date(2026, 11, 22)
    cases = [("pro", "365d", 2, issued + datetime.timedelta(days=365)), ("pro+team", "2030-01-31", 6,
             datetime.date(2030, 1, 31)), ("standard", "perpetual", 1, None), (None, None, 1, None)]
    for edition, expires, bits, last_day in cases:
        what = f"keypost serial --edition {edition} --expires {expires}"
        args = ["serial", "-p", "ed", "-n", "Åsa Öberg", "--seats", "4", "--date", issued.isoformat()]
        args += ["--edition", edition] if edition else []
        args += ["--expires", expires] if expires else []
        made = keypost(binary, config, *args)
        serial = made.stdout.strip()
        try:
            facts = verify(EDITIONS_PRODUCT, "åsa öberg", serial)
            got = (facts["layout"], facts["edition"], facts["expires"], facts["seats"])
            tally.check(got == (2, bits, last_day, 4), f"{what}: decrypted {got}")
            tally.check(serial == make(EDITIONS_PRODUCT, "Åsa Öberg", 4, issued, bits, last_day),
                        f"{what}: {serial} differs from the spec's serial")
        except Refused as err:
            tally.check(False, f"{what}: {serial!r} does not verify here: {err}: {made}")
            continue
        at = (last_day or issued) + datetime.timedelta(days=1)
        checked = keypost(binary, config, "verify", "-p", "ed", "-n", "ÅSA ÖBERG", "-s", serial, "--at", at.isoformat())
        if last_day is None:
            tally.check(checked.returncode == 0 and "expires never" in checked.stdout, f"{what}: verify {checked}")
        else:
            expected = f"invalid: the licence expired on {last_day.isoformat()} (checked on {at.isoformat()})\n"
            tally.check(checked.returncode == 1 and checked.stdout == expected, f"{what}: expired {checked}")
            on_last_day = keypost(binary, config, "verify", "-p", "ed", "-n", "åsa öberg", "-s", serial,
                                  "--at", last_day.isoformat())
            tally.check(on_last_day.returncode == 0 and f"expires {last_day.isoformat()}" in on_last_day.stdout,
                        f"{what}: valid on its last day {on_last_day}")
        for machine in ("machine-7f3a", "  Ünïcode PC "):
            activated = keypost(binary, config, "activate", "-p", "ed", "-s", serial.lower(), "-m", machine)
            expected_code = activation_code(EDITIONS_PRODUCT, serial, machine)
            tally.check(activated.returncode == 0 and activated.stdout.strip() == expected_code,
                        f"{what}: keypost activate {machine!r}: {activated}, spec says {expected_code}")


def check_retired_key(tally, binary, config, directory):
    """A serial made while K1 was current still verifies (as retired) after the rotation to K2."""
    old = dict(PRODUCTS[0], key="keypost-test-key", key_id="K1")
    old.pop("retired_keys")
    old_dir = Path(directory) / "old"
    old_dir.mkdir()
    made = keypost(binary, write_config(old_dir, [old]), "serial", "-p", "blk", "-n", "Jane Doe", "--date", "2024-02-29")
    serial = made.stdout.strip()
    try:
        key_id = verify(PRODUCTS[0], "jane doe", serial)["key_id"]
    except Refused as err:
        key_id = str(err)
    tally.check(key_id == "K1", f"serial under the retired key verifies here: {key_id}: {made}")
    checked = keypost(binary, config, "verify", "-p", "blk", "-n", "JANE DOE", "-s", serial)
    tally.check(checked.returncode == 0 and "key K1 (retired)" in checked.stdout, f"retired key: {checked}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keypost", help="path to the built keypost binary (checks its serials too)")
    args = parser.parse_args()
    tally = Tally()
    try:
        check_vectors(tally)
        if args.keypost:
            check_binary(tally, args.keypost)
    except Exception as err:  # a crash is a failure, never a silent pass
        tally.check(False, f"crashed: {err!r}")
    print(f"serial-verifier: {tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
