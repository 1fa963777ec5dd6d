// Commands over the pool's whole keyspace, for a Redis session: SCAN (one server at a time,
// with a cursor that says which), KEYS, RANDOMKEY, FLUSHDB/FLUSHALL, FUNCTION, and MEMORY
// USAGE by key. Operators forbid any of them with the pool's deny_commands.
//
// SCAN's cursor: the low 20 bits name the server being scanned (its slot, below), the rest
// is that server's own cursor. Servers are scanned in slot order, each to its end, so every
// key present for the whole iteration is returned at least once, as Redis guarantees. A
// server's slot comes from a hash of its address (or name), not from its position in the
// list, so a cursor stays meaningful across a reload: a server still in the pool goes on
// from its cursor; one that left is skipped (its keys are no longer reachable anyway);
// one that joined is scanned if its slot is still ahead. Slots that collide are moved to the
// next free one, in identity order, the same way on every proxy.
#include <algorithm>
#include <charconv>

#include "proxy/redis/redis_session.h"

namespace proxy {

namespace resp = backends::resp;

namespace {

constexpr unsigned kSlotBits = 20;
constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;

struct ScanOrder {
  uint32_t slot;
  uint32_t backend;
};

// The pool's servers in scan order (see the top of the file). In a transition, the servers
// the data is still on are scanned too: their keys are still the pool's.
std::vector<ScanOrder> scanOrder(const PoolRoute& route) {
  struct Server {
    const std::string* address;
    uint32_t backend;
  };
  std::vector<Server> servers;
  for (uint32_t i = 0; i < route.ring.spec().nodes.size(); ++i)
    servers.push_back({&route.ring.spec().nodes[i].addressOrIdentity(), route.nodeBackend[i]});
  for (uint32_t i = 0; route.previousRing != nullptr && i < route.previousNodeBackend.size(); ++i) {
    const std::string& address = route.previousRing->spec().nodes[i].addressOrIdentity();
    if (std::none_of(servers.begin(), servers.end(), [&](const Server& s) { return *s.address == address; }))
      servers.push_back({&address, route.previousNodeBackend[i]});
  }
  std::sort(servers.begin(), servers.end(), [](const Server& a, const Server& b) { return *a.address < *b.address; });
  std::vector<ScanOrder> order;
  std::vector<uint32_t> taken;
  for (const Server& s : servers) {
    uint32_t h = 2166136261u;  // FNV-1a over the address (or name)
    for (char c : *s.address) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    uint32_t slot = h & kSlotMask;
    while (std::find(taken.begin(), taken.end(), slot) != taken.end()) slot = (slot + 1) & kSlotMask;
    taken.push_back(slot);
    order.push_back({slot, s.backend});
  }
  std::sort(order.begin(), order.end(), [](const ScanOrder& a, const ScanOrder& b) { return a.slot < b.slot; });
  return order;
}

bool parseCursor(std::string_view s, uint64_t& v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

void RedisSession::cmdFlush(const CommandSpec&, const char* req) {
  // Every server of the pool; OK once all have flushed, an error if any failed.
  toEveryServer(req, EveryBackendMerge::Combine::Same);
}

void RedisSession::cmdKeys(const CommandSpec&, const char* req) {
  toEveryServer(req, EveryBackendMerge::Combine::Concat);
}

void RedisSession::cmdRandomkey(const CommandSpec&, const char* req) {
  toEveryServer(req, EveryBackendMerge::Combine::AnyNonNull);
}

void RedisSession::cmdFunction(const CommandSpec&, const char* req) {
  // Libraries live per server and FCALL runs on whichever server owns its keys, so what
  // changes them goes to every server; LIST and DUMP answer what every server has (the
  // same, when functions are only loaded through the proxy).
  const std::string sub = asciiLower(arg(req, 1));
  if (sub == "load" || sub == "delete" || sub == "flush" || sub == "restore" || sub == "list" || sub == "dump") {
    toEveryServer(req, EveryBackendMerge::Combine::Same);
    return;
  }
  replyError("ERR ringproxy does not support 'FUNCTION " + std::string(arg(req, 1)) +
             "': it answers LOAD, DELETE, FLUSH, RESTORE, LIST and DUMP, sent to every server of the pool; "
             "STATS and KILL concern the function running on one server: send them to the backends directly");
}

void RedisSession::cmdScan(const CommandSpec&, const char* req) {
  uint64_t cursor = 0;
  if (!parseCursor(arg(req, 1), cursor)) {
    replyError("ERR invalid cursor");
    return;
  }
  const std::vector<ScanOrder> order = scanOrder(*poolRoute());
  const uint32_t slot = static_cast<uint32_t>(cursor & kSlotMask);
  uint64_t serverCursor = cursor >> kSlotBits;
  auto it = std::lower_bound(order.begin(), order.end(), slot,
                             [](const ScanOrder& o, uint32_t s) { return o.slot < s; });
  if (it == order.end() || it->slot != slot) serverCursor = 0;  // that server left: the next one, from its start
  if (it == order.end()) {  // nothing left to scan
    s_.bytes.clear();
    resp::appendArrayHeader(s_.bytes, 2);
    resp::appendBulk(s_.bytes, "0");
    resp::appendArrayHeader(s_.bytes, 0);
    replyLocal(s_.bytes);
    return;
  }
  RedisRequest* r = newRedisRequest();
  ScanMerge& m = r->begin<ScanMerge>();
  m.slot = it->slot;
  m.nextServer = it + 1 == order.end() ? 0 : (it + 1)->slot;
  // SCAN <that server's cursor> and the client's options (MATCH, COUNT, TYPE) as they are.
  s_.bytes.clear();
  resp::appendArrayHeader(s_.bytes, argc());
  appendEncodedArg(s_.bytes, req, 0);
  resp::appendBulk(s_.bytes, std::to_string(serverCursor));
  for (size_t i = 2; i < argc(); ++i) appendEncodedArg(s_.bytes, req, i);
  const uint32_t frag = r->addFragment();
  sendTo(*r, frag, it->backend, s_.bytes.data(), s_.bytes.size());
  enqueue(r);
  if (r->waiting == 0) fragmentsDone(*r);
}

void RedisSession::mergeScan(RedisRequest& r, const ScanMerge& m) {
  if (!r.error.empty()) {
    resp::appendError(r.reply, r.error);
    return;
  }
  const std::string& reply = r.fragment(0).reply;
  if (s_.elementSpans.empty()) s_.elementSpans.emplace_back();
  std::vector<resp::ByteSpan>& spans = s_.elementSpans[0];
  uint64_t next = 0;
  bool ok = resp::splitAggregate(reply.data(), reply.size(), spans) == resp::ParseStatus::Complete && spans.size() == 2;
  if (ok) {
    // The server's cursor, a bulk string: "$<n>\r\n<digits>\r\n".
    const std::string_view e(reply.data() + spans[0].offset, spans[0].length);
    const size_t header = e.find("\r\n");
    ok = header != std::string_view::npos && e.size() >= header + 4 &&
         parseCursor(e.substr(header + 2, e.size() - header - 4), next) && next <= (UINT64_MAX >> kSlotBits);
  }
  if (!ok) {
    resp::appendError(r.reply, "ERR backend sent a SCAN reply ringproxy cannot read");
    return;
  }
  const uint64_t cursor = next != 0 ? (next << kSlotBits) | m.slot : m.nextServer;
  resp::appendArrayHeader(r.reply, 2);
  resp::appendBulk(r.reply, std::to_string(cursor));
  r.reply.append(reply, spans[1].offset, spans[1].length);
}

}  // namespace proxy
