"""The command table audited against Redis's own key specifications (hardening issue #19).

A real redis-server 7 says, in COMMAND, which commands (and subcommands: OBJECT ENCODING,
XINFO STREAM, MEMORY USAGE, ...) have keys, and in COMMAND DOCS the tree of their arguments.
From that tree this test builds argument vectors for each of them: every combination of its
options and alternatives (for the few largest trees, GEORADIUS and GEOSEARCH, each choice
changed alone), and one with every option, so destinations (STORE dst, KEYS k...), keys after
STREAMS and numkeys-counted keys all appear, with values that can be mistaken for keywords
around them. Redis's COMMAND GETKEYS names the keys of each vector; the
proxy's COMMAND GETKEYS, answered from the very key reader it routes by, must name the same
keys, or refuse the request and say why. A command with keys that the proxy does not know, or
treats as keyless, or routes by other keys, fails the test.

Then the same vectors run for real through ringproxy over 3 servers: once with their keys on
different servers, where a command that is not split by owner must answer CROSSSLOT (or its
refusal, the same as GETKEYS gave) rather than act on keys its server does not own, and once
with all keys under one hash tag, where it must be forwarded. Afterwards every key on every
server must be one that server owns.
"""
import hashlib
import itertools
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
from harness import ErrorReply, RawConn  # noqa: E402

# Commands with keys for which no generated vector is valid for Redis's COMMAND GETKEYS, each
# with the reason ({name: why}). Empty today: every keyed command of Redis 7.0 gets vectors.
NO_VALID_VECTOR = {
}


class Key:
    """A key's place in a generated vector; named when the vector is sent."""


def flags(arg):
    return arg.get("flags", [])


def has_key(arg):
    return arg["type"] == "key" or any(has_key(a) for a in arg.get("arguments", []))


def scalar(arg):
    return {"integer": "1", "double": "0.01", "unix-time": "100", "string": "s", "pattern": "p*"}[arg["type"]]


def join(args, parts):
    """Concatenates the parts of sibling arguments, counting numkeys from the next sibling."""
    out = []
    for i, (arg, part) in enumerate(zip(args, parts)):
        if arg["type"] == "integer" and arg["name"] == "numkeys" and i + 1 < len(parts):
            out.append(str(sum(1 for t in parts[i + 1] if isinstance(t, Key))))
        else:
            out.extend(part)
    return out


# Commands whose argument trees have at most this many combinations of options are audited
# with every combination; larger ones (GEORADIUS, GEOSEARCH, ...) with each choice changed
# alone, plus one vector with every option.
ALL_COMBINATIONS_UP_TO = 128


def combinations(arg, required=False):
    """How many forms `every` gives for one argument."""
    t = arg["type"]
    n = sum(combinations(b, True) for b in arg["arguments"]) if t == "oneof" else \
        count_sequence(arg["arguments"]) if t == "block" else 1
    return n + 1 if "optional" in flags(arg) and not required else n


def count_sequence(args):
    n = 1
    for a in args:
        n *= combinations(a)
    return n


def every(args):
    """Every form of a list of sibling arguments: each option present or not, each branch."""
    out = [[]]
    for arg in args:
        out = [done + [part] for done in out for part in forms(arg, "every")]
    return [join(args, parts) for parts in out]


def flips(args):
    """Forms of sibling arguments: [base, then each choice (an option, a branch) changed alone]."""
    per_arg = [forms(a, "flips") for a in args]
    base = [f[0] for f in per_arg]
    out = [join(args, base)]
    for i, f in enumerate(per_arg):
        for variant in f[1:]:
            out.append(join(args, base[:i] + [variant] + base[i + 1:]))
    return out


def maximal(args):
    """One form with every option present, and of each choice the first branch with a key."""
    return join(args, [forms(a, "maximal")[0] for a in args])


def sequence(args, mode):
    return every(args) if mode == "every" else flips(args) if mode == "flips" else [maximal(args)]


def value_forms(arg, mode):
    """Forms of one occurrence of an argument's value, without its token."""
    t = arg["type"]
    if t == "key":
        return [[Key()]]
    if t == "pure-token":
        return [[arg["token"]]]
    if t == "block":
        return sequence(arg["arguments"], mode)
    if t == "oneof":
        branches = arg["arguments"]
        if mode == "maximal":
            return forms(next((b for b in branches if has_key(b)), branches[0]), mode, required=True)
        out = []
        for b in branches:
            branch = forms(b, mode, required=True)
            # flips: the first branch is the base; another branch is one changed choice.
            out.extend(branch if mode == "every" or not out else branch[:1])
        return out
    return [[scalar(arg)]]


def forms(arg, mode, required=False):
    """Forms of one argument, token and repetitions included; the first is the base."""
    values = value_forms(arg, mode)
    token = [arg["token"]] if "token" in arg and arg["type"] != "pure-token" else []

    def occurrence(v):
        if "multiple" in flags(arg):  # two repetitions, as "key [key ...]" allows
            if "multiple_token" in flags(arg):
                return token + fresh(v) + token + fresh(v)
            return token + fresh(v) + fresh(v)
        return token + fresh(v)

    occurrences = [occurrence(v) for v in values]
    if "optional" in flags(arg) and not required and mode != "maximal":
        return [[]] + occurrences
    return occurrences


def fresh(form):
    """A copy of a form with new Key objects, so each repetition has keys of its own."""
    return [Key() if isinstance(t, Key) else t for t in form]


def vectors_of(name_words, doc):
    """The argument vectors (lists of str and Key) to audit for one command."""
    args = doc.get("arguments", [])
    mode = "every" if count_sequence(args) <= ALL_COMBINATIONS_UP_TO else "flips"
    seen, unique = set(), []
    for v in sequence(args, mode) + [maximal(args)]:
        v = name_words + fresh(v)
        shape = tuple("\0key" if isinstance(t, Key) else t for t in v)
        if shape not in seen:
            seen.add(shape)
            unique.append(v)
    return unique


def named(vector, names):
    """The vector with its keys named from `names` (an iterator) and {position: name}."""
    out, keys = [], {}
    for i, t in enumerate(vector):
        if isinstance(t, Key):
            t = next(names)
            keys[i] = t
        out.append(t)
    return out, keys


def plain(value):
    """RESP3 maps as dicts and bytes as str, recursively."""
    if isinstance(value, list):
        if value and all(isinstance(x, tuple) for x in value):
            return {plain(k): plain(v) for k, v in value}
        return [plain(x) for x in value]
    if isinstance(value, bytes):
        return value.decode()
    return value


class RedisCommandAudit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The reference: a plain redis-server, and ringproxy over it alone.
        cls.reference = harness.start_redis()
        cls.port1 = harness.free_port()
        cls.config1 = harness.write_config(harness.redis_pool_config(
            "audit1", cls.port1, [f"127.0.0.1:{cls.reference.port}:1"]))
        cls.proxy1 = harness.start_ringproxy(cls.config1, cls.port1, extra=["-s", str(harness.free_port())])
        # Three servers, hash tags "{}", for the requests that really run.
        cls.backends = [harness.start_redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.backends]
        cls.port3 = harness.free_port()
        cls.config3 = harness.write_config(harness.redis_pool_config(
            "audit3", cls.port3, [f"127.0.0.1:{p}:1" for p in cls.ports], extra='  hash_tag: "{}"\n'))
        cls.proxy3 = harness.start_ringproxy(cls.config3, cls.port3, extra=["-s", str(harness.free_port())])
        with RawConn(cls.reference.port) as c:
            c.call("HELLO", "3")
            cls.info = plain(c.call("COMMAND"))
            cls.docs = plain(c.call("COMMAND", "DOCS"))
        cls.audit = cls.run_audit()

    @classmethod
    def tearDownClass(cls):
        for p in [cls.proxy1, cls.proxy3, cls.reference, *cls.backends]:
            p.stop()
        os.unlink(cls.config1)
        os.unlink(cls.config3)

    @classmethod
    def keyed_commands(cls):
        """[(name words, COMMAND DOCS entry)] of every command and subcommand with keys."""
        out = []

        def has_keys(entry):
            # A key spec flagged not_key names a channel (SPUBLISH): no key.
            return any("not_key" not in spec.get("flags", []) for spec in entry[8])

        for entry in cls.info:
            name = entry[0]
            subcommands = entry[9] or []
            if has_keys(entry):
                out.append(([name], cls.docs[name]))
            for sub in subcommands:
                if has_keys(sub):
                    container, subname = sub[0].split("|")
                    out.append(([container, subname], cls.docs[container]["subcommands"][sub[0]]))
        return out

    @classmethod
    def run_audit(cls):
        """Asks Redis and the proxy for the keys of every vector; returns what they said."""
        result = {"commands": [], "vectors": [], "failures": [], "no_valid_vector": []}
        names = (f"k{i}" for i in itertools.count(1))
        with RawConn(cls.reference.port) as redis_conn, RawConn(cls.port1) as proxy_conn:
            for words, doc in cls.keyed_commands():
                label = " ".join(words)
                result["commands"].append(label)
                valid = 0
                for template in vectors_of(words, doc):
                    vector, _ = named(template, names)
                    said = redis_conn.call("COMMAND", "GETKEYS", *vector)
                    if isinstance(said, ErrorReply):
                        continue  # not a request Redis would run: nothing to compare
                    valid += 1
                    expected = {k.decode() for k in said}
                    answer = proxy_conn.call("COMMAND", "GETKEYS", *vector)
                    entry = {"command": label, "template": template, "vector": vector,
                             "redis": expected, "proxy": answer}
                    # Every vector Redis accepts is kept, a discrepancy too: the requests that
                    # really run over three servers judge the proxy by Redis's keys alone.
                    result["vectors"].append(entry)
                    if isinstance(answer, ErrorReply):
                        if "ringproxy" in answer:
                            entry["refused"] = str(answer)
                        else:
                            entry["failure"] = (f"{vector}: Redis names keys {sorted(expected)}, the proxy "
                                                f"answers {answer!r} without a reason of its own")
                    elif {k.decode() for k in answer} != expected:
                        entry["failure"] = (f"{vector}: Redis names keys {sorted(expected)}, the proxy routes by "
                                            f"{sorted(k.decode() for k in answer)}")
                    if "failure" in entry:
                        result["failures"].append(entry["failure"])
                if valid == 0:
                    result["no_valid_vector"].append(words[0] if len(words) == 1 else label)
        return result

    # -------------------------------------------------------------------------------------------
    def test_every_keyed_command_routes_redis_s_keys_or_says_why_not(self):
        audit = self.audit
        routed = [v for v in audit["vectors"] if "refused" not in v and "failure" not in v]
        refused = [v for v in audit["vectors"] if "refused" in v]
        print(f"\naudit: {len(audit['commands'])} commands with keys, {len(audit['vectors'])} vectors Redis "
              f"accepts: {len(routed)} routed by the same keys, {len(refused)} refused with a reason; "
              f"{len(audit['failures'])} discrepancies", file=sys.stderr)
        for reason in sorted({v["refused"] for v in refused}):
            print(f"  refused: {reason}", file=sys.stderr)
        self.assertEqual(audit["failures"], [], "\n".join(audit["failures"]))
        # Redis 7.0 has 190 commands and subcommands with keys, besides SPUBLISH, SSUBSCRIBE and
        # SUNSUBSCRIBE, whose key specs name channels.
        self.assertGreaterEqual(len(audit["commands"]), 190)
        self.assertEqual(sorted(audit["no_valid_vector"]), sorted(NO_VALID_VECTOR))
        self.assertGreater(len(routed), 3 * len(audit["commands"]) // 2)
        # Commands refused outright, and forms of routed ones.
        refused_commands = {v["command"] for v in refused}
        for name in ("migrate", "restore-asking", "pfdebug", "sort", "eval", "fcall"):
            self.assertIn(name, refused_commands)
        # Every command with keys has a vector the proxy routes, unless the proxy refuses the
        # command itself (Redis administration).
        routed_commands = {v["command"] for v in routed}
        wholly_refused = set(audit["commands"]) - routed_commands
        self.assertEqual(wholly_refused, {"migrate", "restore-asking", "pfdebug"})

    def test_destinations_named_by_options_and_counted_keys_are_routed(self):
        # Pinned from the audit's own vectors: the bug class this audit exists for.
        by_shape = {}
        for v in self.audit["vectors"]:
            if "refused" not in v and "failure" not in v:
                by_shape.setdefault(v["command"], []).append(v)

        def some(command, predicate):
            return any(predicate(v["vector"], v["redis"]) for v in by_shape.get(command, []))

        self.assertTrue(some("sort", lambda vec, keys: "STORE" in vec and vec[vec.index("STORE") + 1] in keys))
        for command in ("georadius", "georadiusbymember"):
            for option in ("STORE", "STOREDIST"):
                self.assertTrue(some(command, lambda vec, keys: option in vec and vec[vec.index(option) + 1] in keys),
                                (command, option))
        self.assertTrue(some("zunionstore", lambda vec, keys: len(keys) == 3))
        self.assertTrue(some("xreadgroup", lambda vec, keys: "STREAMS" in vec and len(keys) == 2))
        self.assertTrue(some("blmpop", lambda vec, keys: len(keys) == 2))
        self.assertTrue(some("object encoding", lambda vec, keys: len(keys) == 1))
        self.assertTrue(some("memory usage", lambda vec, keys: len(keys) == 1))

    def test_commands_without_keys_are_not_given_keys(self):
        # A command Redis says has no keys must not be routed by one of its arguments as if it
        # were a key, except as a channel (PUBLISH), which the proxy reports as Redis does.
        keyless = []
        for entry in self.info:
            if not any("not_key" not in s.get("flags", []) for s in entry[8]) and not entry[9]:
                keyless.append(entry)
        self.assertGreater(len(keyless), 40)
        with RawConn(self.port1) as c:
            for entry in keyless:
                name, arity = entry[0], entry[1]
                vector = [name] + ["x"] * max(abs(arity) - 1, 1)
                with self.subTest(command=name):
                    answer = c.call("COMMAND", "GETKEYS", *vector)
                    self.assertIsInstance(answer, ErrorReply, f"{vector} given keys {answer}")
            self.assertEqual(c.call("COMMAND", "GETKEYS", "publish", "ch", "m"),
                             ErrorReply("ERR The command has no key arguments"))

    def test_getkeys_errors_are_redis_s_own(self):
        with RawConn(self.port1) as proxy, RawConn(self.reference.port) as redis_conn:
            for vector in (["nosuch", "a"], ["ping", "x"], ["get", "a", "b"], ["zunionstore", "d", "3", "a", "b"],
                           ["get", "a"], ["rpoplpush", "a", "b"], ["object", "encoding", "k"]):
                with self.subTest(vector=vector):
                    self.assertEqual(proxy.call("COMMAND", "GETKEYS", *vector),
                                     redis_conn.call("COMMAND", "GETKEYS", *vector))
            self.assertEqual(proxy.call("COMMAND", "GETKEYS", "get"),
                             ErrorReply("ERR wrong number of arguments for 'command|getkeys' command"))
            self.assertEqual(proxy.call("COMMAND", "GETKEYSANDFLAGS", "rpoplpush", "a", "b"),
                             [[b"a", [b"RW"]], [b"b", [b"RW"]]])
            self.assertEqual(proxy.call("COMMAND", "GETKEYSANDFLAGS", "sinter", "a", "b"),
                             [[b"a", [b"RO"]], [b"b", [b"RO"]]])
            # The refusal's reason, as the request itself would get it.
            refusal = proxy.call("COMMAND", "GETKEYS", "migrate", "h", "1", "k", "0", "1")
            self.assertEqual(refusal, proxy.call("MIGRATE", "h", "1", "k", "0", "1"))
            self.assertIn("administers one server", refusal)
            with RawConn(self.port1) as resp3:
                resp3.call("HELLO", "3")
                docs = plain(resp3.call("COMMAND", "DOCS", "migrate", "sort"))
            self.assertIn("administers one server", docs["migrate"]["summary"])
            self.assertIn("BY or GET pattern", docs["sort"]["summary"])
            # Commands whose keys move with their arguments are flagged so clients ask GETKEYS.
            info = proxy.call("COMMAND", "INFO", "zunionstore", "get", "publish")
            self.assertIn(b"movablekeys", info[0][2])
            self.assertNotIn(b"movablekeys", info[1][2])
            self.assertEqual(info[2][3:], [0, 0, 0])

    # -------------------------------------------------------------------------------------------
    def setUp(self):
        for port in self.ports:  # each test over the three servers starts from empty ones
            with RawConn(port) as c:
                self.assertEqual(c.call("FLUSHALL"), b"OK")

    def tearDown(self):
        for proxy in (self.proxy1, self.proxy3):
            self.assertIsNone(proxy.popen.poll(), f"proxy exited: {proxy.output()}")

    def owners(self, keys):
        return {k: harness.label_port(lbl) for k, lbl in harness.ringctl_owners(self.config3, "audit3", keys).items()}

    def spread_names(self):
        """A function giving, for each vector, names for its keys that land on the three servers
        in turn; and {name: owner port}. (Hash-like names: fnv1a over near-identical short names
        can leave a server with few.)"""
        needed = sum(isinstance(t, Key) for v in self.audit["vectors"] for t in v["template"])
        candidates = [f"ak:{hashlib.sha1(b'%d' % i).hexdigest()[:12]}" for i in range(4 * needed)]
        owner = self.owners(candidates)
        by_port = {p: [k for k in candidates if owner[k] == p] for p in self.ports}
        self.assertTrue(all(len(ks) >= needed for ks in by_port.values()), {p: len(k) for p, k in by_port.items()})
        pools = {p: iter(ks) for p, ks in by_port.items()}

        def spread():
            return (next(pools[self.ports[i % 3]]) for i in itertools.count())
        return spread, dict(owner)

    def test_requests_run_over_three_servers_act_only_on_keys_their_server_owns(self):
        spread, expected_owner = self.spread_names()

        with RawConn(self.port3) as c:
            c.call("HELLO", "3")
            docs = plain(c.call("COMMAND", "DOCS"))
        split = {name for name, d in docs.items() if d["summary"].startswith("split")}
        self.assertEqual(split, {"del", "exists", "mget", "mset", "touch", "unlink"})

        counts = {"spread": 0, "crossslot": 0, "refused": 0, "together": 0}
        tag_owner = self.owners([f"t{i}" for i in range(len(self.audit["vectors"]))])
        for n, v in enumerate(self.audit["vectors"]):
            command = v["command"].split()[0]
            # Keys spread over the servers.
            vector, keys = named(v["template"], spread())
            routed_keys = [keys[i] for i in sorted(keys) if v["vector"][i] in v["redis"]]
            servers = {expected_owner[k] for k in routed_keys}
            with RawConn(self.port3) as c:
                reply = c.call(*vector)
            counts["spread"] += 1
            with self.subTest(vector=vector):
                if "refused" in v:
                    counts["refused"] += 1
                    self.assertIsInstance(reply, ErrorReply)
                    # The request itself gets the reason COMMAND GETKEYS gave.
                    self.assertEqual(reply, v["refused"])
                elif len(servers) > 1 and command not in split:
                    counts["crossslot"] += 1
                    self.assertIsInstance(reply, ErrorReply)
                    self.assertTrue(reply.startswith("CROSSSLOT"), reply)
                elif isinstance(reply, ErrorReply):
                    self.assertFalse(reply.startswith("CROSSSLOT"), reply)
            if "refused" in v:
                continue
            # All keys under one hash tag: forwarded (the backend may still dislike the
            # generated arguments, but the proxy does not refuse them).
            tag = f"t{n}"
            together = (f"{{{tag}}}:{i}" for i in itertools.count())
            vector, keys = named(v["template"], together)
            for k in keys.values():
                expected_owner[k] = tag_owner[tag]
            with RawConn(self.port3) as c:
                reply = c.call(*vector)
            counts["together"] += 1
            with self.subTest(vector=vector):
                if isinstance(reply, ErrorReply):
                    self.assertFalse(reply.startswith("CROSSSLOT"), reply)
                    self.assertNotIn("ringproxy", reply)
        print(f"\nrun over 3 servers: {counts['spread']} requests with keys spread ({counts['crossslot']} "
              f"CROSSSLOT, {counts['refused']} refused), {counts['together']} under one hash tag", file=sys.stderr)
        self.assertGreater(counts["crossslot"], 50)
        self.assertGreater(counts["together"], 250)
        # Every key any of those requests created is on the server that owns it.
        found = 0
        for port in self.ports:
            with RawConn(port) as c:
                for key in c.call("KEYS", "*"):
                    key = key.decode()
                    found += 1
                    self.assertIn(key, expected_owner, f"{key} on {port}: not a key any request named")
                    self.assertEqual(expected_owner[key], port, f"{key} written on {port}")
        self.assertGreater(found, 50)

    # Inside MULTI a request is queued, not run: it must be refused as it would be outside (the
    # session asks refusalOf where it reads keys, MULTI's queue included).
    def test_inside_multi_a_request_is_refused_as_it_would_be_outside(self):
        with RawConn(self.port3) as c:
            c.call("HELLO", "3")
            docs = plain(c.call("COMMAND", "DOCS"))
        split = {name for name, d in docs.items() if d["summary"].startswith("split")}
        spread, _ = self.spread_names()
        mismatches, checked = [], 0
        for v in self.audit["vectors"]:
            if "refused" not in v:
                continue
            vector, _ = named(v["template"], spread())
            with RawConn(self.port3) as c:
                self.assertEqual(c.call("MULTI"), b"OK")
                queued = c.call(*vector)
                execed = c.call("EXEC")
            checked += 1
            if queued != v["refused"] or not (isinstance(execed, ErrorReply) and execed.startswith("EXECABORT")):
                mismatches.append(f"{vector}: queued {queued!r}, EXEC {execed!r}; outside MULTI {v['refused']!r}")
        # Keys on different servers: CROSSSLOT at once, as outside MULTI.
        for v in self.audit["vectors"]:
            # (WATCH is refused inside MULTI whatever its keys, as by Redis.)
            if "refused" in v or v["command"].split()[0] in split | {"watch"} or len(v["redis"]) < 2:
                continue
            vector, _ = named(v["template"], spread())
            spread_reply = None
            with RawConn(self.port3) as c:
                outside = c.call(*vector)
                if isinstance(outside, ErrorReply) and outside.startswith("CROSSSLOT"):
                    self.assertEqual(c.call("MULTI"), b"OK")
                    spread_reply = c.call(*vector)
                    c.call("DISCARD")
            if spread_reply is not None:
                checked += 1
                if not (isinstance(spread_reply, ErrorReply) and spread_reply.startswith("CROSSSLOT")):
                    mismatches.append(f"{vector}: queued {spread_reply!r} inside MULTI, CROSSSLOT outside")
        print(f"\ninside MULTI: {checked} requests checked, {len(mismatches)} treated otherwise than outside",
              file=sys.stderr)
        by_command = {}
        for m in mismatches:
            by_command[m[2:m.index("'", 2)]] = by_command.get(m[2:m.index("'", 2)], 0) + 1
        print(f"  by command: {by_command}; first: {mismatches[:1]}", file=sys.stderr)
        self.assertGreater(checked, 100)
        self.assertEqual(mismatches, [])

    def test_a_destination_on_another_server_gets_crossslot_and_nothing_is_written(self):
        # Real data, for the commands that write a destination named apart from their source
        # (by position, after numkeys, or after STORE/STOREDIST): with the destination owned by
        # another server the request is refused and no server changes; under one hash tag it
        # runs and the destination is readable through the proxy.
        S, D = "SRC", "DST"
        cases = [
            ([["RPUSH", S, "3", "1", "2"]], ["SORT", S, "STORE", D], ["LRANGE", D, "0", "-1"], [b"1", b"2", b"3"]),
            ([["GEOADD", S, "13.361389", "38.115556", "Palermo"]],
             ["GEORADIUS", S, "15", "37", "200", "km", "STORE", D], ["ZRANGE", D, "0", "-1"], [b"Palermo"]),
            ([["GEOADD", S, "13.361389", "38.115556", "Palermo"]],
             ["GEORADIUSBYMEMBER", S, "Palermo", "10", "km", "STOREDIST", D], ["ZCARD", D], 1),
            ([["GEOADD", S, "13.361389", "38.115556", "Palermo"]],
             ["GEOSEARCHSTORE", D, S, "FROMMEMBER", "Palermo", "BYRADIUS", "10", "km"], ["ZCARD", D], 1),
            ([["ZADD", S, "1", "a"]], ["ZUNIONSTORE", D, "1", S], ["ZRANGE", D, "0", "-1"], [b"a"]),
            ([["ZADD", S, "1", "a"]], ["ZDIFFSTORE", D, "1", S], ["ZRANGE", D, "0", "-1"], [b"a"]),
            ([["ZADD", S, "1", "a"]], ["ZRANGESTORE", D, S, "0", "-1"], ["ZRANGE", D, "0", "-1"], [b"a"]),
            ([["SET", S, "a"]], ["BITOP", "OR", D, S], ["GET", D], b"a"),
            ([["SADD", S, "m"]], ["SDIFFSTORE", D, S], ["SMEMBERS", D], [b"m"]),
            ([["SET", S, "v"]], ["COPY", S, D], ["GET", D], b"v"),
            ([["RPUSH", S, "x"]], ["LMOVE", S, D, "LEFT", "RIGHT"], ["LRANGE", D, "0", "-1"], [b"x"]),
            ([["PFADD", S, "a"]], ["PFMERGE", D, S], ["PFCOUNT", D], 1),
        ]
        candidates = [f"dk:{hashlib.sha1(b'%d' % i).hexdigest()[:12]}" for i in range(300)]
        owner = self.owners(candidates)
        on = {p: [k for k in candidates if owner[k] == p] for p in self.ports}
        self.assertTrue(all(len(ks) >= len(cases) for ks in on.values()), {p: len(ks) for p, ks in on.items()})
        tag_owner = self.owners([f"dt{i}" for i in range(len(cases))])

        def fill(words, src, dst):
            return [src if w == S else dst if w == D else w for w in words]

        with RawConn(self.port3) as c:
            for i, (setup, command, check, expected) in enumerate(cases):
                with self.subTest(command=command[0]):
                    src, dst = on[self.ports[0]][i], on[self.ports[1]][i]
                    for words in setup:
                        self.assertNotIsInstance(c.call(*fill(words, src, dst)), ErrorReply)
                    reply = c.call(*fill(command, src, dst))
                    self.assertIsInstance(reply, ErrorReply)
                    self.assertTrue(reply.startswith("CROSSSLOT"), reply)
                    for port in self.ports:
                        with RawConn(port) as direct:
                            self.assertEqual(direct.call("EXISTS", dst), 0, f"{command[0]} wrote {dst} on {port}")
                            self.assertEqual(direct.call("EXISTS", src), 1 if port == self.ports[0] else 0)
                    # Under one hash tag: forwarded to the tag's owner, which holds the result.
                    src, dst = f"{{dt{i}}}:src", f"{{dt{i}}}:dst"
                    for words in setup:
                        c.call(*fill(words, src, dst))
                    reply = c.call(*fill(command, src, dst))
                    self.assertNotIsInstance(reply, ErrorReply)
                    self.assertEqual(c.call(*fill(check, src, dst)), expected)
                    with RawConn(tag_owner[f"dt{i}"]) as direct:
                        self.assertEqual(direct.call("EXISTS", dst), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
