#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ (run it again after editing):
`make_corpus.py` for every target, `make_corpus.py TARGET...` for some.

Seeds are valid (and a few deliberately broken) requests, replies, configs, HTTP request heads
and config names taken from the unit tests. Every protocol seed starts with the two control bytes the targets read (see
fuzz_common.h): a chunk plan byte, cycled through the four modes, and an option byte (limits,
or for memcache replies the reply kind).
"""
import hashlib
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
ROOT = os.path.dirname(os.path.dirname(HERE))

# One plan byte per mode, with varied chunk sizes and seeds.
PLANS = [0x00, 0x05, 0x2A, 0x4B, 0x11, 0x76, 0x9E, 0xE3]


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def seeds(target, items, option=0x00, options=None):
    """items: (name, bytes); options: per-item option bytes (else `option`)."""
    for i, (name, data) in enumerate(items):
        opt = options[i] if options is not None else option
        write(target, name, bytes([PLANS[i % len(PLANS)], opt]) + data)


def b(s):
    return s.encode("latin-1") if isinstance(s, str) else s


def multibulk(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = b(a)
        out += b"$%d\r\n" % len(a) + a + b"\r\n"
    return out


def resp_request():
    items = [
        ("ping", multibulk("PING")),
        ("set", multibulk("SET", "k", "v")),
        ("get", multibulk("GET", "key:{tag}")),
        ("mset_heap", multibulk("MSET", *[x for i in range(6) for x in ("k%d" % i, "v%d" % i)])),
        ("empty_arg", multibulk("SET", "", "")),
        ("binary_arg", multibulk("SET", "k", "a\r\nb\x00c")),
        ("zero", b"*0\r\n"),
        ("null", b"*-1\r\n"),
        ("negative", b"*-5\r\n" + multibulk("PING")),
        ("inline_ping", b"PING\r\n"),
        ("inline_set", b"SET k v\r\n"),
        ("inline_lf", b"GET k\n"),
        ("inline_quotes", b"SET \"a b\" 'c\\'d' \"\\x41\\n\\t\"\r\n"),
        ("inline_midquote", b"SET foo\"bar\" x\r\n"),
        ("inline_spaces", b"  \t GET\t k  \r\n"),
        ("inline_empty", b"\r\n\r\nPING\r\n"),
        ("inline_nul", b"SET k v\x00tail\r\n"),
        ("inline_unbalanced", b"SET \"k v\r\n"),
        ("inline_quote_then_text", b"SET \"k\"x v\r\n"),
        ("pipeline", multibulk("GET", "a") + b"PING\r\n" + multibulk("INCR", "n") + b"*0\r\n"),
        ("bad_count", b"*a\r\n"),
        ("leading_zero", b"*01\r\n$4\r\nPING\r\n"),
        ("plus_sign", b"*+1\r\n$4\r\nPING\r\n"),
        ("bad_dollar", b"*1\r\n:1\r\n"),
        ("bad_bulk_len", b"*1\r\n$x\r\n"),
        ("negative_bulk", b"*1\r\n$-1\r\n"),
        ("bad_terminator", b"*1\r\n$3\r\nabcXY"),
        ("cr_only", b"*1\r$4\r\nPING\r\n"),
        ("long_header", b"*" + b"1" * 40 + b"\r\n"),
        ("huge_bulk", b"*1\r\n$2147483648\r\n"),
        ("huge_count", b"*9223372036854775807\r\n"),
        ("cut_short", multibulk("SET", "key", "value")[:-3]),
    ]
    # A few under small limits (the option byte's bit 7).
    options = [0x00] * len(items)
    for i in (3, 5, 12, 19):
        options[i] = 0x80 | (i * 37 & 0x3F)
    seeds("fuzz_resp_request", items, options=options)


def resp_reply():
    items = [
        ("ok", b"+OK\r\n"),
        ("err", b"-ERR unknown command 'x'\r\n"),
        ("int", b":1000\r\n"),
        ("neg_int", b":-9223372036854775808\r\n"),
        ("bulk", b"$5\r\nhello\r\n"),
        ("bulk_crlf_inside", b"$4\r\n\r\n\r\n\r\n"),
        ("null_bulk", b"$-1\r\n"),
        ("empty_bulk", b"$0\r\n\r\n"),
        ("null_array", b"*-1\r\n"),
        ("empty_array", b"*0\r\n"),
        ("mget", b"*3\r\n$1\r\na\r\n$-1\r\n$1\r\nc\r\n"),
        ("nested", b"*2\r\n*1\r\n*1\r\n:1\r\n+x\r\n"),
        ("deep8", b"*1\r\n" * 8 + b":1\r\n"),
        ("deep9", b"*1\r\n" * 9 + b":1\r\n"),
        ("double", b",1.5\r\n,inf\r\n,-nan\r\n"),
        ("bool", b"#t\r\n"),
        ("null3", b"_\r\n"),
        ("bignum", b"(3492890328409238509324850943850943825024385\r\n"),
        ("blob_error", b"!21\r\nSYNTAX invalid syntax\r\n"),
        ("verbatim", b"=15\r\ntxt:Some string\r\n"),
        ("map", b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n"),
        ("set", b"~3\r\n+a\r\n+b\r\n+c\r\n"),
        ("push", b">3\r\n+message\r\n+chan\r\n$5\r\nhello\r\n"),
        ("attribute", b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n"),
        ("attr_inside", b"*2\r\n|1\r\n+ttl\r\n:10\r\n$1\r\nv\r\n:2\r\n"),
        ("empty_attr", b"|0\r\n+OK\r\n"),
        ("pipeline", b"+OK\r\n:1\r\n$3\r\nabc\r\n*1\r\n+x\r\n"),
        ("bad_type", b"@x\r\n"),
        ("bad_payload_end", b"$2\r\nabc\r\n"),
        ("lf_only", b"+OK\n"),
        ("streamed", b"$?\r\n;4\r\nHell\r\n;0\r\n"),
        ("streamed_agg", b"*?\r\n:1\r\n.\r\n"),
        ("bad_int", b":12a\r\n"),
        ("lenient_int", b":+5\r\n*01\r\n:1\r\n$-0\r\n\r\n"),
        ("long_header", b"$" + b"0" * 40 + b"1\r\nx\r\n"),
        ("cut_short", b"*2\r\n$5\r\nhel"),
    ]
    options = [0x00] * len(items)
    for i in (4, 10, 21):
        options[i] = 0x80 | (i & 3)
    seeds("fuzz_resp_reply", items, options=options)


def bin_packet(magic, opcode, extras=b"", key=b"", value=b"", status_or_vbucket=0, opaque=1,
               cas=0):
    body = len(extras) + len(key) + len(value)
    return (struct.pack(">BBHBBHIIQ", magic, opcode, len(key), len(extras), 0, status_or_vbucket,
                        body, opaque, cas) + extras + key + value)


def memcache_request():
    req = lambda *a, **k: bin_packet(0x80, *a, **k)  # noqa: E731
    set_extras = struct.pack(">II", 0, 0)
    items = [
        ("get", b"get k\r\n"),
        ("get_multi", b"get a bb ccc dddd\r\n"),
        ("gets", b"gets a b\r\n"),
        ("gat", b"gat 100 a b\r\n"),
        ("gats_negative", b"gats -1 a b\r\n"),
        ("set", b"set k 0 0 5\r\nhello\r\n"),
        ("set_noreply", b"set k 0 0 1 noreply\r\nx\r\n"),
        ("add_cas", b"add k 0 0 1\r\nv\r\ncas k 0 0 2 42 noreply\r\nhi\r\n"),
        ("append_empty", b"append k 0 0 0\r\n\r\n"),
        ("prepend_lf", b"prepend k 1 2 3\nabc\r\n"),
        ("delete", b"delete k\r\ndelete k 0\r\ndelete k noreply\r\ndelete k 0 noreply\r\n"),
        ("incr_decr", b"incr k 5\r\ndecr k 18446744073709551615 noreply\r\n"),
        ("touch", b"touch k 10\r\n"),
        ("keyless", b"version\r\nverbosity 1\r\nflush_all 10 noreply\r\nstats\r\nstats slabs\r\nquit\r\n"),
        ("bad_key", b"get a\x7f\r\nget a b\tc\r\n"),
        ("long_key", b"get " + b"k" * 251 + b"\r\n"),
        ("unknown", b"bogus\r\n\r\nfoo bar\r\n"),
        ("bad_length", b"set k 0 0 x\r\nv\r\n"),
        ("bad_chunk", b"set k 0 0 1\r\nxy\r\n"),
        ("bad_exptime", b"gat x k\r\ntouch k later\r\n"),
        ("mg", b"mg k v t f\r\n"),
        ("mg_quiet_opaque", b"mg k v q O123 k\r\nmn\r\n"),
        ("mg_base64", b"mg Zm9v b v\r\nmg !!!! b\r\n"),
        ("ms", b"ms k 5 T0 F1\r\nhello\r\n"),
        ("md_ma_me", b"md k q\r\nma k N0 D5\r\nme k\r\n"),
        ("meta_bad_flags", b"mg k vv 1\r\nmg k v v\r\n"),
        ("bin_get", req(0x00, key=b"k")),
        ("bin_set", req(0x01, extras=set_extras, key=b"k", value=b"hello", cas=7)),
        ("bin_getq_noop", req(0x09, key=b"a") + req(0x0D, key=b"b") + req(0x0A)),
        ("bin_stat", req(0x10)),
        ("bin_flush", req(0x08, extras=b"\x00\x00\x00\x0a")),
        ("bin_unknown", req(0x50, opaque=0x99)),
        ("bin_bad_shape", req(0x00, value=b"v")),
        ("bin_key_overrun", struct.pack(">BBHBBHIIQ", 0x80, 0, 10, 0, 0, 0, 4, 1, 0) + b"abcd"),
        ("bin_too_large", struct.pack(">BBHBBHIIQ", 0x80, 1, 1, 8, 0, 0, 0x7FFFFFFF, 1, 0)),
        ("bad_magic", b"\x81\x00\x00\x00"),
        ("mixed", b"get a\r\n" + req(0x00, key=b"b") + b"mg c v\r\n"),
        ("many_keys", b"get " + b" ".join(b"k%d" % i for i in range(40)) + b"\r\n"),
        ("line_cr", b"get ok a\rb\r\n"),
        ("cut_short", b"set k 0 0 10\r\nhel"),
    ]
    options = [0x00] * len(items)
    for i in (1, 6, 7, 13, 21, 23, 37):
        options[i] = 0x80 | (i * 29 & 0x7F)
    seeds("fuzz_memcache_request", items, options=options)


def memcache_reply():
    RETRIEVAL, LINE, STATS, META, BINARY, BINSTAT = range(6)
    resp = lambda *a, **k: bin_packet(0x81, *a, **k)  # noqa: E731
    items = [
        ("retrieval_one", RETRIEVAL, b"VALUE a 0 1\r\nx\r\nEND\r\n"),
        ("retrieval_miss", RETRIEVAL, b"END\r\nEND\r\n"),
        ("retrieval_many", RETRIEVAL, b"VALUE a 0 3\r\nabc\r\nVALUE bb 5 0\r\n\r\nVALUE c 1 2 99\r\nhi\r\nEND\r\n"),
        ("retrieval_crlf_value", RETRIEVAL, b"VALUE k 0 4\r\n\r\n\r\n\r\nEND\r\n"),
        ("retrieval_error", RETRIEVAL, b"VALUE a 0 1\r\nx\r\nSERVER_ERROR out of memory writing get response\r\n"),
        ("retrieval_bad", RETRIEVAL, b"VALUE a 0 x\r\nx\r\nEND\r\n"),
        ("retrieval_bad_end", RETRIEVAL, b"VALUE a 0 1\r\nxy\r\nEND\r\n"),
        ("line_stored", LINE, b"STORED\r\nNOT_STORED\r\nEXISTS\r\nNOT_FOUND\r\nDELETED\r\nTOUCHED\r\n"),
        ("line_number", LINE, b"42\r\nVERSION 1.6.21\r\nOK\r\n"),
        ("line_errors", LINE, b"ERROR\r\nCLIENT_ERROR bad command line format\r\nSERVER_ERROR oops\r\n"),
        ("line_lf", LINE, b"STORED\n"),
        ("stats", STATS, b"STAT pid 1\r\nSTAT uptime 20\r\nSTAT version 1.6.21\r\nEND\r\n"),
        ("stats_reset", STATS, b"RESET\r\nOK\r\nSTAT a 1\r\nOK\r\nEND\r\n"),
        ("stats_items", STATS, b"ITEM foo [5 b; 0 s]\r\nITEM bar [1 b; 0 s]\r\nEND\r\n"),
        ("stats_error", STATS, b"STAT a 1\r\nSERVER_ERROR out of memory writing stats\r\n"),
        ("meta_hd", META, b"HD\r\nHD c123 Oabc k foo\r\nEN\r\nNF O1\r\nNS\r\nEX c5\r\nMN\r\n"),
        ("meta_va", META, b"VA 5 f0 c12\r\nhello\r\nVA 0\r\n\r\nVA 2\r\nhi\r\n"),
        ("meta_me", META, b"ME foo exp=-1 la=5 cas=2 fetch=no cls=1 size=63\r\n"),
        ("meta_bad_va", META, b"VA x\r\n"),
        ("meta_va_short", META, b"VA 2\r\nabc\r\n"),
        ("meta_error", META, b"CLIENT_ERROR bad command line format\r\n"),
        ("binary_get", BINARY, resp(0x00, extras=b"\x00\x00\x00\x00", value=b"hello", cas=5)),
        ("binary_miss", BINARY, resp(0x00, value=b"Not found", status_or_vbucket=1)),
        ("binary_error", BINARY, resp(0x01, value=b"Too large.", status_or_vbucket=3)),
        ("binary_pipeline", BINARY, resp(0x0A) + resp(0x0C, key=b"k", value=b"v") + resp(0x04)),
        ("binary_bad_magic", BINARY, b"\x80" + b"\x00" * 23),
        ("binary_overrun", BINARY, struct.pack(">BBHBBHIIQ", 0x81, 0, 10, 0, 0, 0, 4, 1, 0) + b"abcd"),
        ("binstat", BINSTAT, resp(0x10, key=b"pid", value=b"1") + resp(0x10, key=b"uptime", value=b"20") + resp(0x10)),
        ("binstat_error", BINSTAT, resp(0x10, key=b"pid", value=b"1") + resp(0x10, value=b"x", status_or_vbucket=0x82)),
        ("binstat_one", BINSTAT, resp(0x10)),
        ("cut_short", RETRIEVAL, b"VALUE a 0 10\r\nhel"),
    ]
    options = []
    for i, (_, kind, _) in enumerate(items):
        small = 0x80 | ((i * 11) & 0x78) if i % 5 == 2 else 0
        options.append(small | kind)
    seeds("fuzz_memcache_reply", [(n, d) for n, _, d in items], options=options)


def config():
    folder = os.path.join(CORPUS, "fuzz_config")
    os.makedirs(folder, exist_ok=True)
    for src in ("config/examples/local.yml", "tests/data/config_ringproxy.yml",
                "tests/data/config_twemproxy_example.yml"):
        shutil.copy(os.path.join(ROOT, src), os.path.join(folder, os.path.basename(src)))

    def pool(extra="", servers="   - 127.0.0.1:6379:1\n"):
        return "p:\n  listen: 127.0.0.1:22121\n" + extra + "  servers:\n" + servers

    texts = [
        pool(),
        pool("  distribution: vnode\n  hash: murmur\n  vnodes: 64\n"),
        pool("  hash: xxh3\n  timeout: 0\n"),
        pool("  redis: true\n  protocol: redis\n  redis_auth: s3cret\n  redis_db: 3\n"),
        pool("  protocol: memcache\n  redis: false\n"),
        "p:\n  listen: /var/run/rp.sock 0600\n  servers:\n   - 127.0.0.1:6379:1\n",
        pool().replace("127.0.0.1:22121", "\"[::1]:22121\""),
        pool().replace("127.0.0.1:22121", "::1:22121"),
        pool("  hash_tag: \"{}\"\n  auto_eject_hosts: true\n  server_retry_timeout: 2000\n"),
        pool("", "   - 10.0.0.1:6379:3\n   - 10.0.0.2:6379:1 named\n   - /tmp/m.sock:2 sock\n"),
        pool("  distribution: modula\n  hash: crc16\n"),
        pool("  distribution: vnode\n  vnodes: 16\n", "   - 127.0.0.1:11214:100000\n"),
        pool("  timeout: \"250\"\n  client_connections: 100\n  server_failure_limit: 0\n"),
        pool("  max_request_bytes: 1024\n  max_request_args: 2\n  transactions: strict\n"),
        pool() + "q:\n  listen: 127.0.0.2:22121\n  servers:\n   - 127.0.0.1:6380:1\n",
        pool() + "q:\n  listen: 127.0.0.1:22121\n  servers:\n   - 127.0.0.1:6380:1\n",
        "---\n" + pool() + "...\n",
        pool() + "---\n" + pool(),
        "p:\n  listen: [127.0.0.1:22121\n  servers:\n   - a:1:1\n",
        pool("  hash: nope\n"),
        pool("  bogus_key: 1\n"),
        pool("", ""),
        "- a\n- b\n",
        "",
        "p: &a\n  listen: 127.0.0.1:1\n  servers: *a\n",
        "p:\n  <<: {listen: 127.0.0.1:1, servers: [127.0.0.1:6379:1]}\n",
        "{p: {listen: '127.0.0.1:1', servers: ['127.0.0.1:6379:1 a', '127.0.0.1:6380:1 a']}}\n",
        "p:\n  listen: 127.0.0.1:22121\n  servers: !!str x\n",
        "%YAML 1.2\n---\np: ~\n",
    ]
    for text in texts:
        name = "t_" + hashlib.sha1(text.encode()).hexdigest()[:12] + ".yml"
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)


def admin_request():
    """HTTP request heads for fuzz_admin_request: [plan][limit byte][bytes]; limit byte 0x00 is
    the listener's 8 KiB, 0x80 | n a small limit of 16 + 4n bytes."""
    items = [
        ("get_metrics", b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nAccept: */*\r\n\r\n"),
        ("get_stats", b"GET /stats HTTP/1.0\r\n\r\n"),
        ("status_tsv", b"GET /status?format=tsv HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        ("ring_pool", b"GET /ring?pool=a%20b&x=%ff%2 HTTP/1.1\r\nUser-Agent: curl/8\r\n\r\n"),
        ("head", b"HEAD /metrics HTTP/1.1\r\n\r\n"),
        ("post_reload", b"POST /reload HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        ("with_body", b"POST /reload HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody"),
        ("raw_utf8_target", "GET /ring?pool=caf\u00e9 HTTP/1.1\r\n\r\n".encode()),
        ("tab_in_value", b"GET / HTTP/1.1\r\nX-A:\tv\t\r\n\r\n"),
        ("no_version", b"GET /metrics\r\n\r\n"),
        ("two_spaces", b"GET  /metrics HTTP/1.1\r\n\r\n"),
        ("bare_lf", b"GET /metrics HTTP/1.1\n\n"),
        ("folded", b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"),
        ("space_before_colon", b"GET / HTTP/1.1\r\nX : a\r\n\r\n"),
        ("tls", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        ("resp", b"*1\r\n$4\r\nPING\r\n"),
        ("empty_line_first", b"\r\nGET / HTTP/1.1\r\n\r\n"),
        ("big_header", b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"),
        ("exactly_at_limit", b"GET / HTTP/1.1\r\nX: " + b"b" * (8192 - 23) + b"\r\n\r\n"),
    ]
    options = [0x00] * len(items)
    for i, opt in ((0, 0x80 | 4), (3, 0x80 | 40), (6, 0x80), (17, 0x80 | 0x7F)):
        options[i] = opt
    seeds("fuzz_admin_request", items, options=options)


def stats_format():
    """Names for fuzz_stats_format: [pools byte][flags byte] then names, each [length][bytes]."""
    def names(*parts):
        out = b""
        for p in parts:
            p = b(p)
            out += bytes([len(p)]) + p
        return out
    items = [
        ("plain", 0, 0x00, names("alpha", "s1", "s2", "")),
        ("quotes_backslashes", 0, 0x00, names('p"q', 'a"b', "c\\d", "e\nf", "g\rh", "tab\tx")),
        ("long_names", 1, 0x04, names("pool", "beta", 'srv"\\\n', "x", "")),
        ("not_utf8", 2, 0x01, names(b"p\xff", b"q\xc0\xaf", b"r", b"over\xe0\x80\xaf", b"sur\xed\xa0\x80",
                                     b"cut\xe2\x82", b"big\xf4\x90\x80\x80", b"stray\x80", b"ok\xc3\xa9")),
        ("controls", 0, 0x12, names(b"pool\x00", b"\x01\x1f\x7f", b"nul\x00byte", b"err\xff\n")),
        ("transition_vnode", 0, 0x0b, names("alpha", "a", "b", "c", "d")),
        ("random", 0, 0x02, names("r", "x", "y")),
        ("address_like_name", 0, 0x00, names("p", "127.0.0.1:10001", "", "")),
        ("utf8_edges", 0, 0x01, names(b"\xc2\x80\xdf\xbf", b"\xe0\xa0\x80\xed\x9f\xbf\xef\xbf\xbf",
                                      b"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf")),
    ]
    for name, pools, flags, data in items:
        write("fuzz_stats_format", name, bytes([pools, flags]) + data)


TARGETS = {
    "fuzz_resp_request": resp_request,
    "fuzz_resp_reply": resp_reply,
    "fuzz_memcache_request": memcache_request,
    "fuzz_memcache_reply": memcache_reply,
    "fuzz_config": config,
    "fuzz_admin_request": admin_request,
    "fuzz_stats_format": stats_format,
}


def main():
    """make_corpus.py [TARGET...]: rewrites those targets' seeds (default: every target's)."""
    import sys
    chosen = sys.argv[1:] or list(TARGETS)
    for target in chosen:
        folder = os.path.join(CORPUS, target)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        TARGETS[target]()


if __name__ == "__main__":
    main()
