// A transition (previous_servers) for a memcached session: a cache that warms itself instead
// of turning the moved share of the keyspace into a burst of misses on the database behind it.
//
// A read of one key whose owner changed (text get/gets/gat/gats, meta mg, binary GET/GETK/
// GAT/GATK; quiet forms are sent loud and their final miss dropped) goes to the new owner as usual; if it misses there, the same request goes
// to the previous owner and that answer is the client's. When the previous owner had the item,
// it is copied to the new owner in the background of the client's reply: `mg key v f t` on the
// old owner, then `ms key ... ME` (mode E: add) on the new one, with the remaining TTL and flags,
// so a newer write on the new owner always wins. Deletes of a moved key reach both owners, so
// an old copy cannot come back. Everything else (sets, counters, multi-key gets) goes to the
// new owner only: sets make the new owner authoritative. A multi-key get asks the owners as
// usual, then the previous owners for the moved keys that missed (one get per previous owner),
// and merges everything in the client's key order.
#include <cstring>

#include "backends/memcache/memcache_reply_framer.h"
#include "proxy/memcache/memcache_session.h"

namespace proxy {

namespace mc = backends::memcache;

namespace {

// Replies nobody waits for (the delete sent to the previous owner).
class DiscardSink final : public backends::upstream::ReplySink {
 public:
  void onReply(uint64_t, const char*, size_t, bool) override {}
  void onFailure(uint64_t, std::string_view) override {}
};
DiscardSink gDiscard;

// A key the meta protocol can carry as it is (no spaces or control bytes, at most 250 bytes).
bool metaSafe(std::string_view key) {
  if (key.empty() || key.size() > 250) return false;
  for (char c : key)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  return true;
}

// Copies one item from its previous owner to its new one, in add mode, then deletes itself.
// Independent of the client's session (which may close first); tied to the host's routing
// generation, so a reload between the two steps drops the copy rather than send it astray.
class BackgroundCopy final : public backends::upstream::ReplySink {
 public:
  BackgroundCopy(SessionHost& host, PoolStats& stats, std::string key, uint32_t from, uint32_t to)
      : host_(host), stats_(stats), key_(std::move(key)), from_(from), to_(to),
        generation_(host.snapshot().generation) {}

  void start() {
    const std::string req = "mg " + key_ + " v f t\r\n";
    if (host_.upstream(from_, Channel::Default)
            .send(req.data(), req.size(), this, 0, mc::replyHint(mc::ReplyKind::Meta)) == 0)
      delete this;
  }

  void onReply(uint64_t step, const char* data, size_t len, bool) override {
    if (step == 0 && host_.snapshot().generation == generation_ && store(std::string_view(data, len))) return;
    if (step == 1 && len >= 2 && std::memcmp(data, "HD", 2) == 0) stats_.transitionMoves++;
    delete this;
  }
  void onFailure(uint64_t, std::string_view) override {
    stats_.transitionFailures++;
    delete this;
  }

 private:
  // "VA <n> f<flags> t<ttl>\r\n<data>\r\n" -> "ms <key> <n> F<flags> T<ttl> ME\r\n<data>\r\n".
  bool store(std::string_view reply) {
    if (reply.size() < 5 || reply.compare(0, 3, "VA ") != 0) return false;  // gone meanwhile
    const size_t eol = reply.find("\r\n");
    if (eol == std::string_view::npos) return false;
    const std::string_view line = reply.substr(3, eol - 3);
    const size_t n = std::strtoul(std::string(line).c_str(), nullptr, 10);
    std::string flags = "0", ttl = "0";
    for (size_t at = line.find(' '); at != std::string_view::npos; at = line.find(' ', at + 1)) {
      const std::string_view token = line.substr(at + 1, line.find(' ', at + 1) - at - 1);
      if (token.size() > 1 && token[0] == 'f') flags.assign(token.substr(1));
      if (token.size() > 1 && token[0] == 't') ttl.assign(token.substr(1));
    }
    if (ttl == "-1") ttl = "0";  // no expiry
    if (reply.size() < eol + 2 + n + 2) return false;
    std::string req = "ms " + key_ + " " + std::to_string(n) + " F" + flags + " T" + ttl + " ME\r\n";
    req.append(reply.substr(eol + 2, n));
    req += "\r\n";
    return host_.upstream(to_, Channel::Default).send(req.data(), req.size(), this, 1, mc::replyHint(mc::ReplyKind::Meta)) != 0;
  }

  SessionHost& host_;
  PoolStats& stats_;
  std::string key_;
  uint32_t from_, to_;
  uint64_t generation_;
};

bool isMiss(const char* data, size_t len, bool binary) {
  if (binary) return len >= mc::kBinaryHeaderLength && data[6] == 0 && data[7] == 1;  // KEY_NOT_FOUND
  return (len == 5 && std::memcmp(data, "END\r\n", 5) == 0) || (len >= 2 && std::memcmp(data, "EN", 2) == 0);
}

bool isHit(const char* data, size_t len, bool binary) {
  if (binary) return len >= mc::kBinaryHeaderLength && data[6] == 0 && data[7] == 0;
  return (len > 6 && std::memcmp(data, "VALUE ", 6) == 0) || (len >= 2 && (std::memcmp(data, "VA", 2) == 0 ||
                                                                          std::memcmp(data, "HD", 2) == 0));
}

}  // namespace

bool MemcacheSession::transitionRead(const char* req, std::string_view key, bool binary, bool quiet) {
  uint32_t from = 0, to = 0;
  if (!movedKey(*poolRoute(), host_.placement(pool()), key, from, to)) return false;
  MemcacheRequest* r = newMcRequest();
  McFallback& f = r->begin<McFallback>();
  f.from = from;
  f.to = to;
  f.binary = binary;
  f.quiet = quiet;
  f.opcode = binary ? static_cast<uint8_t>(req[1]) : 0;
  f.hint = mc::replyHint(parser_->replyKind());
  // A quiet read is sent loud (so a miss has a reply to act on); what memcached would not
  // have sent is dropped at the end (finishQuietFallback).
  size_t len = parser_->size();
  const char* bytes = quiet ? loudForm(req, len) : req;
  f.request.assign(bytes, len);
  f.key.assign(key);
  forward(*r, key, f.request.data(), f.request.size(), binary ? Channel::Binary : Channel::Default, f.hint);
  return true;
}

void MemcacheSession::transitionDelete(const char* bytes, size_t len, std::string_view key, bool binary) {
  uint32_t from = 0, to = 0;
  if (!movedKey(*poolRoute(), host_.placement(pool()), key, from, to)) return;
  // The old copy goes too, so that a later miss on the new owner cannot bring it back.
  (void)host_.upstream(from, binary ? Channel::Binary : Channel::Default)
      .send(bytes, len, &gDiscard, 0, mc::replyHint(parser_->replyKind()));
}

void MemcacheSession::finishQuietFallback(MemcacheRequest& r, const McFallback& f, const char* data, size_t len) {
  r.waiting = 0;
  r.reply.clear();
  if (!isMiss(data, len, f.binary)) {  // a hit (or an error): what memcached would have sent
    r.reply.assign(data, len);
    if (f.binary && len >= 2) r.reply[1] = static_cast<char>(f.opcode);  // the client's quiet opcode
  }
  complete(r);
}

bool MemcacheSession::onFallbackReply(MemcacheRequest& r, McFallback& f, uint32_t fragment, const char* data,
                                      size_t len) {
  if (fragment == 0 && isMiss(data, len, f.binary)) {
    // A miss on the new owner: the previous owner may still have it.
    stats().transitionChecks++;
    const uint32_t next = r.addFragment();
    if (sendFragment(r, next, f.from, host_.upstream(f.from, f.binary ? Channel::Binary : Channel::Default),
                     f.request.data(), f.request.size(), f.hint))
      return true;  // its reply is the client's
    // The previous owner cannot be asked: the new owner's miss stands.
  }
  if (fragment == 1 && isHit(data, len, f.binary) && metaSafe(f.key)) {
    (new BackgroundCopy(host_, stats(), f.key, f.from, f.to))->start();
  }
  return false;  // relay this reply
}

bool MemcacheSession::multiGetFallback(MemcacheRequest& r, McMultiGet& m) {
  const PoolRoute* route = poolRoute();
  if (route == nullptr || route->previousRing == nullptr) return false;
  // Which keys the owners had: walk each owner's items in the order its keys were asked.
  const uint32_t frags = r.fragmentCount();
  if (s_.retrievals.size() < frags) s_.retrievals.resize(frags);
  for (uint32_t f = 0; f < frags; ++f) {
    s_.retrievals[f].items.clear();
    const Fragment& frag = r.fragment(f);
    if (!frag.failed) (void)mc::splitRetrieval(frag.reply.data(), frag.reply.size(), s_.retrievals[f]);
  }
  s_.cursors.assign(frags, 0);
  const Placement& pl = host_.placement(pool());
  std::vector<std::vector<std::string_view>> byPrevious(host_.snapshot().backends.size());
  std::vector<uint32_t> previousOf(m.keyFragment.size(), McMultiGet::kNone);
  bool any = false;
  for (uint32_t i = 0; i < m.keyFragment.size(); ++i) {
    const uint32_t f = m.keyFragment[i];
    const Fragment& frag = r.fragment(f);
    if (frag.failed) continue;  // a failed owner's keys stay misses
    const std::string_view key = m.key(i);
    const auto& items = s_.retrievals[f].items;
    if (s_.cursors[f] < items.size() &&
        std::string_view(frag.reply.data() + items[s_.cursors[f]].key.offset, items[s_.cursors[f]].key.length) == key) {
      s_.cursors[f]++;
      continue;  // a hit
    }
    uint32_t from = 0, to = 0;
    if (!movedKey(*route, pl, key, from, to)) continue;  // did not move: a real miss
    byPrevious[from].push_back(key);
    previousOf[i] = from;
    any = true;
  }
  if (!any) return false;
  m.firstFallback = frags;
  m.fallbackFragment.assign(m.keyFragment.size(), McMultiGet::kNone);
  std::vector<uint32_t> fragmentOf(byPrevious.size(), McMultiGet::kNone);
  for (uint32_t from = 0; from < byPrevious.size(); ++from) {
    if (byPrevious[from].empty()) continue;
    s_.bytes.clear();
    mc::appendGet(s_.bytes, m.verb, byPrevious[from]);
    const uint32_t frag = r.addFragment();
    fragmentOf[from] = frag;
    stats().transitionChecks += byPrevious[from].size();
    sendFragment(r, frag, from, host_.upstream(from, Channel::Default), s_.bytes.data(), s_.bytes.size(),
                 mc::replyHint(mc::ReplyKind::TextRetrieval));
  }
  for (uint32_t i = 0; i < previousOf.size(); ++i)
    if (previousOf[i] != McMultiGet::kNone) m.fallbackFragment[i] = fragmentOf[previousOf[i]];
  return r.waiting > 0;  // none could be sent: merge what the owners said
}

void MemcacheSession::copyOver(std::string_view key, uint32_t from) {
  if (!metaSafe(key)) return;
  const uint32_t to = host_.placement(pool()).backendOf(key);
  if (to == from) return;
  (new BackgroundCopy(host_, stats(), std::string(key), from, to))->start();
}

}  // namespace proxy
