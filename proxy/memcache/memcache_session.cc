#include "proxy/memcache/memcache_session.h"

#include <algorithm>
#include <cstring>

#include "backends/io/memory_budget.h"
#include "backends/memcache/memcache_reply_framer.h"
#include "proxy/runtime/routing_snapshot.h"

namespace proxy {

namespace mc = backends::memcache;

namespace {

constexpr uint16_t kBinaryStatusInternalError = 0x0084;
constexpr uint16_t kBinaryStatusNotSupported = 0x0083;

uint16_t binaryStatus(const char* data, size_t len) {
  if (len < mc::kBinaryHeaderLength) return kBinaryStatusInternalError;
  return static_cast<uint16_t>((static_cast<uint8_t>(data[6]) << 8) | static_cast<uint8_t>(data[7]));
}

mc::RequestLimits limitsFor(const config::Pool& pool) {
  mc::RequestLimits l;
  l.maxValueLength = static_cast<size_t>(pool.maxRequestBytes);
  l.maxKeys = static_cast<size_t>(std::min<uint64_t>(pool.maxRequestArgs, l.maxKeys));
  return l;
}

}  // namespace

MemcacheSession::MemcacheSession(SessionHost& host, MemcacheFrontend& frontend, size_t pool)
    : ClientSession(host, frontend.requests, pool), frontend_(frontend), s_(frontend.scratch) {}

ClientSession* MemcacheFrontend::newSession(SessionHost& host, size_t pool) {
  return new MemcacheSession(host, *this, pool);
}

MemcacheSession::~MemcacheSession() { frontend_.parsers.giveBack(parser_); }

void MemcacheSession::processInput() {
  if (input().empty()) return;
  if (parser_ == nullptr) {
    parser_ = frontend_.parsers.get();
    const PoolRoute* route = poolRoute();
    if (route != nullptr) parser_->setLimits(limitsFor(route->config));
  }
  frameRequests();
  // Nothing half-framed is left: give the parser back (idle connections hold none).
  if (input().empty()) frontend_.parsers.giveBack(parser_);
}

void MemcacheSession::frameRequests() {
  backends::io::Buffer& in = input();
  while (!finishing() && !in.empty() && wantsMoreInput()) {
    const char* req = in.readable();
    const mc::RequestStatus st = parser_->parse(req, in.readableSize());
    if (st == mc::RequestStatus::NeedMore) break;
    if (poolRoute() == nullptr) {  // a reload removed this client's pool
      replyLocal(parser_->dialect() == mc::Dialect::Binary ? "" : "SERVER_ERROR this pool was removed\r\n");
      closeAfterFlush();
      return;
    }
    if (st == mc::RequestStatus::Error) {
      // Unframeable: answer what can be answered, then close this client only.
      stats().protocolErrors++;
      stats().clientErr++;
      s_.bytes.clear();
      if (mc::appendErrorReply(s_.bytes, *parser_)) replyLocal(s_.bytes);
      closeAfterFlush();
      return;
    }
    // Binary requests travel on other backend connections than text and meta ones, so a
    // request of the other kind must not overtake requests still in flight: its effects
    // would land out of order (a binary SET then a text GET). Wait for them to finish.
    const bool binary = parser_->dialect() == mc::Dialect::Binary;
    if (hasQueued() && binary != inflightBinary_) {
      parser_->reset();
      holdInputUntilDrained();
      return;
    }
    inflightBinary_ = binary;
    const size_t size = parser_->size();
    stats().requests++;
    if (st == mc::RequestStatus::BadKey || st == mc::RequestStatus::Invalid) {
      // Framed but unacceptable: answer as memcached would and carry on.
      stats().errorsReplied++;
      s_.bytes.clear();
      if (mc::appendErrorReply(s_.bytes, *parser_)) replyLocal(s_.bytes);
    } else if (backends::io::overBufferLimit()) {
      // The process holds --max-buffered-bytes already: refuse new work, not memory.
      stats().limitErrors++;
      if (parser_->dialect() == mc::Dialect::Binary) {
        replyBinary(parser_->binary().opcode, mc::kBinaryStatusOutOfMemory, parser_->binary().opaque,
                    "ringproxy is over its buffer limit (--max-buffered-bytes)");
      } else if (!parser_->noreply()) {
        replyLocal("SERVER_ERROR out of memory: ringproxy is over its buffer limit (--max-buffered-bytes)\r\n");
      }
    } else {
      dispatch(req);
    }
    parser_->reset();
    in.consume(size);
  }
}

void MemcacheSession::dispatch(const char* req) {
  if (parser_->dialect() == mc::Dialect::Binary) dispatchBinary(req);
  else dispatchText(req);
}

std::string_view MemcacheSession::hashKey(const char* req) {
  if (parser_->dialect() == mc::Dialect::Binary) {
    const mc::ByteSpan k = parser_->binary().key;
    return {req + k.offset, k.length};
  }
  const std::string_view key = parser_->key(req, 0);
  if (!parser_->keyIsBase64()) return key;
  // Meta keys with the b flag are base64: route by the bytes they stand for, as a text or
  // binary client writing the same key would.
  s_.keyBuffer.resize(mc::base64DecodedCapacity(key.size()));
  size_t n = 0;
  if (!mc::decodeBase64(key, s_.keyBuffer.data(), &n)) return key;  // the parser checked it
  return {s_.keyBuffer.data(), n};
}

const char* MemcacheSession::loudForm(const char* req, size_t& len) {
  const mc::ByteSpan q = parser_->noreplySpan();
  len = parser_->size();
  if (parser_->dialect() == mc::Dialect::Binary) {
    if (!parser_->binaryInfo()->quiet) return req;
    // The same packet under its loud opcode: a reply always comes back.
    s_.bytes.assign(req, len);
    s_.bytes[1] = static_cast<char>(parser_->binaryInfo()->baseOpcode);
    return s_.bytes.data();
  }
  if (q.length == 0) return req;
  // Text/meta: drop the marker token and the space before it.
  const size_t cut = q.offset > 0 && req[q.offset - 1] == ' ' ? q.offset - 1 : q.offset;
  s_.bytes.assign(req, cut);
  s_.bytes.append(req + q.offset + q.length, len - q.offset - q.length);
  len = s_.bytes.size();
  return s_.bytes.data();
}

void MemcacheSession::dispatchText(const char* req) {
  using mc::Command;
  switch (parser_->command()) {
    case Command::Version:
      replyLocal("VERSION ringproxy-" RINGPROXY_VERSION "\r\n");
      return;
    case Command::Quit:
      closeAfterFlush();  // earlier replies first, then close; nothing after quit runs
      return;
    case Command::MetaNoop:
      // Answered in order: only after every earlier request, quiet ones included, settled.
      replyLocal("MN\r\n");
      return;
    case Command::FlushAll: {
      // A sound meaning for a fleet: flush every server of the pool.
      size_t len = 0;
      const char* bytes = loudForm(req, len);
      MemcacheRequest* r = newMcRequest();
      r->begin<McFlush>().noreply = parser_->noreply();
      broadcast(*r, bytes, len, Channel::Default);
      return;
    }
    case Command::Stats:
    case Command::Verbosity:
      stats().errorsReplied++;
      if (!parser_->noreply())
        replyLocal("SERVER_ERROR ringproxy does not support '" + std::string(parser_->token(req, 0)) +
                   "': it is per server; ask the backends directly, or the proxy's stats port\r\n");
      return;
    case Command::Get:
    case Command::Gets:
    case Command::Gat:
    case Command::Gats:
      if (parser_->keys().size() > 1) {
        multiGet(req);
        return;
      }
      break;
    default:
      break;
  }
  const std::string_view key = hashKey(req);
  if (poolRoute()->previousRing != nullptr) {
    // A transition: reads of moved keys fall back to their previous owner, deletes reach it.
    const Command c = parser_->command();
    const bool read = c == Command::Get || c == Command::Gets || c == Command::Gat || c == Command::Gats ||
                      c == Command::MetaGet;
    const bool quiet = parser_->noreply();  // only meta mg has a quiet form among reads
    if (read && (!quiet || c == Command::MetaGet) && transitionRead(req, key, false, quiet)) return;
    if (c == Command::Delete || c == Command::MetaDelete) {
      size_t n = 0;
      const char* loud = loudForm(req, n);
      transitionDelete(loud, n, key, false);
    }
  }
  if (parser_->noreply() && parser_->dialect() == mc::Dialect::Meta) {
    // Quiet meta: sent quiet, with a barrier behind it; the backend's reply through its MN is
    // exactly what memcached keeps in quiet mode, and the proxy strips the MN.
    s_.bytes.assign(req, parser_->size());
    s_.bytes += "mn\r\n";
    MemcacheRequest* r = newMcRequest();
    r->begin<McQuietMeta>();
    forward(*r, key, s_.bytes.data(), s_.bytes.size(), Channel::Default, mc::kHintMetaThroughNoop);
    return;
  }
  size_t len = 0;
  const char* bytes = loudForm(req, len);
  MemcacheRequest* r = newMcRequest();
  if (parser_->noreply()) r->begin<McQuietText>();
  else r->begin<McRelay>();
  forward(*r, key, bytes, len, Channel::Default);
}

void MemcacheSession::dispatchBinary(const char* req) {
  const mc::BinaryRequest& b = parser_->binary();
  const mc::BinaryOpcodeInfo* info = parser_->binaryInfo();
  const uint8_t op = b.opcode;
  switch (info->baseOpcode) {
    case mc::kOpcodeNoop:
      replyBinary(op, mc::kBinaryStatusOk, b.opaque, "");
      return;
    case mc::kOpcodeVersion:
      replyBinary(op, mc::kBinaryStatusOk, b.opaque, "ringproxy-" RINGPROXY_VERSION);
      return;
    case mc::kOpcodeQuit:
      if (!info->quiet) replyBinary(op, mc::kBinaryStatusOk, b.opaque, "");
      closeAfterFlush();
      return;
    case mc::kOpcodeFlush: {
      size_t len = 0;
      const char* bytes = loudForm(req, len);
      MemcacheRequest* r = newMcRequest();
      r->begin<McBinaryFlush>() = McBinaryFlush{op, info->quiet, b.opaque};
      broadcast(*r, bytes, len, Channel::Binary);
      return;
    }
    case mc::kOpcodeStat:
      stats().errorsReplied++;
      replyBinary(op, kBinaryStatusNotSupported, b.opaque,
                  "ringproxy does not merge STAT: ask the backends, or the proxy's stats port");
      return;
    default:
      break;
  }
  const std::string_view key = hashKey(req);
  if (poolRoute()->previousRing != nullptr) {
    const uint8_t base = info->baseOpcode;
    const bool read = base == mc::kOpcodeGet || base == mc::kOpcodeGetK || base == mc::kOpcodeGat || base == mc::kOpcodeGatK;
    if (read && transitionRead(req, key, true, info->quiet)) return;
    if (base == mc::kOpcodeDelete) {
      size_t n = 0;
      const char* loud = loudForm(req, n);
      transitionDelete(loud, n, key, true);
    }
  }
  size_t len = 0;
  const char* bytes = loudForm(req, len);
  MemcacheRequest* r = newMcRequest();
  r->begin<McBinary>() = McBinary{op, info->quiet, b.opaque};
  forward(*r, key, bytes, len, Channel::Binary);
}

void MemcacheSession::forward(MemcacheRequest& r, std::string_view key, const char* bytes, size_t len,
                              Channel channel, uint32_t hint) {
  const uint32_t backend = host_.placement(pool()).backendOf(key);
  const uint32_t frag = r.addFragment();
  if (hint == UINT32_MAX) hint = mc::replyHint(parser_->replyKind());
  const bool sent = sendFragment(r, frag, backend, host_.upstream(backend, channel), bytes, len, hint);
  enqueue(&r);
  if (!sent) {
    failureReply(r, r.error);
    complete(r);
  }
}

void MemcacheSession::multiGet(const char* req) {
  const Placement& pl = host_.placement(pool());
  MemcacheRequest* r = newMcRequest();
  McMultiGet& m = r->begin<McMultiGet>();
  const auto keys = parser_->keys();
  if (poolRoute()->previousRing != nullptr) {
    // A transition: kept to ask the previous owners for the moved keys that miss.
    const mc::ByteSpan p = parser_->prefix();
    m.verb.assign(req + p.offset, p.length);
  }
  s_.fragmentOfBackend.assign(host_.snapshot().backends.size(), -1);
  m.keyEnd.resize(keys.size());
  m.keyFragment.resize(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    m.keyText.append(parser_->key(req, i));  // kept to match the shards' items at merge time
    m.keyEnd[i] = static_cast<uint32_t>(m.keyText.size());
    const uint32_t backend = pl.backendOf(parser_->key(req, i));
    int32_t frag = s_.fragmentOfBackend[backend];
    if (frag < 0) {
      frag = static_cast<int32_t>(r->addFragment());
      s_.fragmentOfBackend[backend] = frag;
      r->fragment(frag).backend = backend;
      if (s_.subKeys.size() <= size_t(frag)) s_.subKeys.emplace_back();
      s_.subKeys[frag].clear();
    }
    m.keyFragment[i] = static_cast<uint32_t>(frag);
    s_.subKeys[frag].push_back(keys[i]);
  }
  const uint32_t hint = mc::replyHint(parser_->replyKind());
  for (uint32_t frag = 0; frag < r->fragmentCount(); ++frag) {
    // "<verb> [exptime] k1 k2 ..." with this shard's keys, in the client's order.
    s_.bytes.clear();
    mc::appendGet(s_.bytes, req, parser_->prefix(), s_.subKeys[frag]);
    const uint32_t backend = r->fragment(frag).backend;
    sendFragment(*r, frag, backend, host_.upstream(backend, Channel::Default), s_.bytes.data(), s_.bytes.size(), hint);
    stats().fragments++;
  }
  enqueue(r);
  if (r->waiting == 0) fragmentsDone(*r);
}

void MemcacheSession::broadcast(MemcacheRequest& r, const char* bytes, size_t len, Channel channel) {
  const Placement& pl = host_.placement(pool());
  const uint32_t hint = mc::replyHint(parser_->replyKind());
  for (uint32_t node = 0; node < pl.nodeCount(); ++node) {
    const uint32_t frag = r.addFragment();
    const uint32_t backend = pl.nodeBackend[node];
    sendFragment(r, frag, backend, host_.upstream(backend, channel), bytes, len, hint);
  }
  enqueue(&r);
  if (r.waiting == 0) fragmentsDone(r);
}

bool MemcacheSession::keepReply(MemcacheRequest& r, const char* data, size_t len) {
  if (r.as<McQuietText>() != nullptr) return false;  // noreply: nothing goes back, not even errors
  if (r.as<McQuietMeta>() != nullptr) return len > 4;  // the quiet request's own reply, before the MN
  if (const McBinary* b = r.as<McBinary>(); b != nullptr && b->quiet) {
    const uint16_t status = binaryStatus(data, len);
    const uint8_t op = b->opcode;
    const bool getLike = op == mc::kOpcodeGetQ || op == mc::kOpcodeGetKQ || op == mc::kOpcodeGatQ ||
                         op == mc::kOpcodeGatKQ;
    return getLike ? status != mc::kBinaryStatusKeyNotFound : status != mc::kBinaryStatusOk;
  }
  return true;
}

void MemcacheSession::onFragmentReply(Request& base, uint32_t fragment, const char* data, size_t len, bool isError) {
  auto& r = static_cast<MemcacheRequest&>(base);
  if (McFallback* f = r.as<McFallback>()) {
    if (fragment == 0) f->miss.assign(data, len);
    if (onFallbackReply(r, *f, fragment, data, len)) return;  // the previous owner was asked
    if (f->quiet) finishQuietFallback(r, *f, data, len);
    else relayReply(r, data, len);
    return;
  }
  const McBinary* binary = r.as<McBinary>();
  if (r.as<McRelay>() != nullptr || (binary != nullptr && !binary->quiet)) {
    relayReply(r, data, len);
    return;
  }
  if (!r.merges()) {  // quiet text or meta, quiet binary: the reply is filtered
    r.waiting = 0;
    r.reply.clear();
    if (keepReply(r, data, len)) {
      // Quiet meta: everything but the trailing MN the proxy added.
      r.reply.assign(data, r.as<McQuietMeta>() != nullptr ? len - 4 : len);
      // A quiet binary request was sent loud: give the reply the client's opcode back.
      if (binary != nullptr && len >= 2) r.reply[1] = static_cast<char>(binary->opcode);
    }
    complete(r);
    return;
  }
  Fragment& f = r.fragment(fragment);
  f.reply.assign(data, len);
  if (isError) {
    f.failed = true;
    if (r.error.empty()) r.error = std::string(data, len >= 2 ? len - 2 : len);
  }
  if (r.fragmentSettled()) fragmentsDone(r);
  else r.accountHeldBytes();  // the parts that came, kept until the others do
}

void MemcacheSession::onFragmentFailure(Request& base, uint32_t fragment, std::string_view why) {
  auto& r = static_cast<MemcacheRequest&>(base);
  stats().forwardErrors++;
  if (McFallback* f = r.as<McFallback>(); f != nullptr && fragment == 1) {
    // The previous owner failed: the new owner's miss stands.
    if (f->quiet) finishQuietFallback(r, *f, f->miss.data(), f->miss.size());
    else relayReply(r, f->miss.data(), f->miss.size());
    return;
  }
  r.fragment(fragment).failed = true;
  if (r.error.empty()) r.error = std::string(why);
  if (!r.merges()) {  // one fragment: its failure is the reply
    r.waiting = 0;
    failureReply(r, why);
    complete(r);
    return;
  }
  if (r.fragmentSettled()) fragmentsDone(r);
}

void MemcacheSession::failureReply(MemcacheRequest& r, std::string_view why) {
  r.reply.clear();
  stats().errorsReplied++;
  if (r.as<McQuietText>() != nullptr) return;  // noreply: the client asked for silence
  if (const McBinary* b = r.as<McBinary>()) {
    mc::appendBinaryResponse(r.reply, b->opcode, kBinaryStatusInternalError, b->opaque, 0, "", "", why);
    return;
  }
  if (const McFallback* f = r.as<McFallback>(); f != nullptr && f->binary && f->request.size() >= mc::kBinaryHeaderLength) {
    uint32_t opaque = 0;  // as the client sent it (big-endian), echoed unchanged
    for (int i = 12; i < 16; ++i) opaque = (opaque << 8) | static_cast<uint8_t>(f->request[static_cast<size_t>(i)]);
    mc::appendBinaryResponse(r.reply, f->opcode, kBinaryStatusInternalError, opaque, 0, "", "", why);
    return;
  }
  if (const McBinaryFlush* b = r.as<McBinaryFlush>()) {
    mc::appendBinaryResponse(r.reply, b->opcode, kBinaryStatusInternalError, b->opaque, 0, "", "", why);
    return;
  }
  // A backend's own error line (a shard of a merged request answered one) goes back as it
  // is; the proxy's own reasons get memcached's SERVER_ERROR.
  const bool backendLine = why.starts_with("SERVER_ERROR ") || why.starts_with("CLIENT_ERROR ");
  r.reply = backendLine ? "" : "SERVER_ERROR ";
  r.reply.append(why);
  r.reply += "\r\n";
}

void MemcacheSession::fragmentsDone(MemcacheRequest& r) {
  r.reply.clear();
  if (McMultiGet* m = r.as<McMultiGet>()) {
    // A transition: moved keys that missed are asked of their previous owners first.
    if (!m->verb.empty() && m->firstFallback == McMultiGet::kNone && multiGetFallback(r, *m)) return;
    mergeMultiGet(r, *m);
    complete(r);
    return;
  }
  // flush_all / binary FLUSH: OK only when every server said OK.
  bool allOk = true;
  for (uint32_t f = 0; f < r.fragmentCount(); ++f) allOk = allOk && !r.fragment(f).failed;
  if (const McFlush* flush = r.as<McFlush>()) {
    if (flush->noreply) {
      // nothing goes back
    } else if (allOk) {
      r.reply = "OK\r\n";
    } else {
      failureReply(r, r.error);
    }
  } else if (const McBinaryFlush* b = r.as<McBinaryFlush>()) {
    if (!allOk) failureReply(r, r.error);
    else if (!b->quiet) mc::appendBinaryResponse(r.reply, b->opcode, mc::kBinaryStatusOk, b->opaque, 0, "", "", "");
  }
  complete(r);
}

void MemcacheSession::mergeMultiGet(MemcacheRequest& r, const McMultiGet& m) {
  // Each shard answered VALUE items for its keys in the order asked: walk them with one
  // cursor per shard and emit the items in the client's key order, then one END. A failed
  // shard's keys are left out (misses, as memcached reports them) and counted; only when
  // every shard failed is the whole reply an error.
  const uint32_t frags = r.fragmentCount();
  if (s_.retrievals.size() < frags) s_.retrievals.resize(frags);
  uint32_t failed = 0;
  const uint32_t owners = std::min(frags, m.firstFallback);  // the fallback fragments come after
  for (uint32_t f = 0; f < frags; ++f) {
    Fragment& frag = r.fragment(f);
    s_.retrievals[f].items.clear();
    if (!frag.failed && mc::splitRetrieval(frag.reply.data(), frag.reply.size(), s_.retrievals[f]) !=
                            mc::ParseStatus::Complete) {
      frag.failed = true;
    }
    if (frag.failed && f < owners) failed++;
  }
  if (failed == owners) {
    failureReply(r, r.error.empty() ? "no shard answered" : r.error);
    return;
  }
  s_.cursors.assign(frags, 0);
  for (uint32_t i = 0; i < m.keyFragment.size(); ++i) {
    const uint32_t f = m.keyFragment[i];
    Fragment& frag = r.fragment(f);
    if (frag.failed) continue;
    const auto& items = s_.retrievals[f].items;
    if (s_.cursors[f] < items.size()) {
      // Misses are simply absent: the next item either is this key's or a later key's.
      const mc::RetrievalItem& it = items[s_.cursors[f]];
      const std::string_view itemKey(frag.reply.data() + it.key.offset, it.key.length);
      const uint32_t begin = i == 0 ? 0 : m.keyEnd[i - 1];
      const std::string_view key(m.keyText.data() + begin, m.keyEnd[i] - begin);
      if (itemKey == key) {
        r.reply.append(frag.reply, it.item.offset, it.item.length);
        s_.cursors[f]++;
        continue;
      }
    }
    // A moved key that missed on its new owner: its previous owner's item, if it had one.
    const uint32_t fb = i < m.fallbackFragment.size() ? m.fallbackFragment[i] : McMultiGet::kNone;
    if (fb == McMultiGet::kNone || r.fragment(fb).failed) continue;
    const auto& fbItems = s_.retrievals[fb].items;
    if (s_.cursors[fb] >= fbItems.size()) continue;
    const mc::RetrievalItem& it = fbItems[s_.cursors[fb]];
    const std::string_view key = m.key(i);
    if (std::string_view(r.fragment(fb).reply.data() + it.key.offset, it.key.length) != key) continue;
    r.reply.append(r.fragment(fb).reply, it.item.offset, it.item.length);
    s_.cursors[fb]++;
    copyOver(key, r.fragment(fb).backend);
  }
  r.reply += "END\r\n";
}

void MemcacheSession::replyBinary(uint8_t opcode, uint16_t status, uint32_t opaque, std::string_view value) {
  s_.bytes.clear();
  mc::appendBinaryResponse(s_.bytes, opcode, status, opaque, 0, "", "", value);
  replyLocal(s_.bytes);
}

}  // namespace proxy
