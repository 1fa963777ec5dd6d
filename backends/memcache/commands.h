// commands.h: memcached's commands as data, for the three dialects a client may speak on one
// connection (memcached tells them apart by the first byte of each request: 0x80 starts a
// binary packet, anything else a text line; meta commands are text lines whose verb is two
// letters starting with 'm').
//
// The request framer reads these tables to know where a command's keys are, whether a data
// block follows its line, how many tokens it takes and what its reply will look like; the
// proxy reads them to route (one key, many keys, none) and the tests iterate over them.
// Token counts and binary shape rules are memcached 1.6's own (proto_text.c, proto_bin.c),
// so whatever the framer accepts is framed by memcached exactly the same way.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "backends/memcache/memcache_types.h"

namespace backends::memcache {

enum class Dialect : uint8_t { Text, Meta, Binary };

enum class Command : uint8_t {
  // text retrieval
  Get, Gets, Gat, Gats,
  // text storage: a data block follows the line
  Set, Add, Replace, Append, Prepend, Cas,
  // text, one key, one line
  Delete, Incr, Decr, Touch,
  // text, no key
  Version, Quit, Verbosity, FlushAll, Stats,
  // meta
  MetaGet, MetaSet, MetaDelete, MetaArithmetic, MetaNoop, MetaDebug,
  // any binary packet: see the opcode and binaryOpcodeInfo()
  Binary,
  // a text or meta verb memcached does not know (answered with ERROR)
  Unknown,
};

struct TextCommandInfo {
  Command command;
  std::string_view name;  // case-sensitive, as memcached compares it
  Dialect dialect;        // Text or Meta
  ReplyKind reply;
  uint8_t minTokens;      // tokens of the line, the verb included
  uint8_t maxTokens;      // 0: no upper bound (keys or meta flags)
  uint8_t firstKey;       // token index of the (first) key; 0: the command takes no key
  bool multiKey;          // every token from firstKey on is a key (the get family)
  uint8_t bytesToken;     // index of the data length token; 0: no data block follows
  bool noreply;           // a trailing `noreply` token is understood
};

// Every text and meta command, in Command order.
[[nodiscard]] std::span<const TextCommandInfo> textCommands() noexcept;
// nullptr for Command::Binary and Command::Unknown.
[[nodiscard]] const TextCommandInfo* textCommandInfo(Command command) noexcept;
// The entry whose name is `verb`, or nullptr.
[[nodiscard]] const TextCommandInfo* findTextCommand(std::string_view verb) noexcept;

// Binary opcodes (protocol_binary.h).
inline constexpr uint8_t kOpcodeGet = 0x00;
inline constexpr uint8_t kOpcodeSet = 0x01;
inline constexpr uint8_t kOpcodeAdd = 0x02;
inline constexpr uint8_t kOpcodeReplace = 0x03;
inline constexpr uint8_t kOpcodeDelete = 0x04;
inline constexpr uint8_t kOpcodeIncrement = 0x05;
inline constexpr uint8_t kOpcodeDecrement = 0x06;
inline constexpr uint8_t kOpcodeQuit = 0x07;
inline constexpr uint8_t kOpcodeFlush = 0x08;
inline constexpr uint8_t kOpcodeGetQ = 0x09;
inline constexpr uint8_t kOpcodeNoop = 0x0a;
inline constexpr uint8_t kOpcodeVersion = 0x0b;
inline constexpr uint8_t kOpcodeGetK = 0x0c;
inline constexpr uint8_t kOpcodeGetKQ = 0x0d;
inline constexpr uint8_t kOpcodeAppend = 0x0e;
inline constexpr uint8_t kOpcodePrepend = 0x0f;
inline constexpr uint8_t kOpcodeStat = 0x10;
inline constexpr uint8_t kOpcodeSetQ = 0x11;
inline constexpr uint8_t kOpcodeAddQ = 0x12;
inline constexpr uint8_t kOpcodeReplaceQ = 0x13;
inline constexpr uint8_t kOpcodeDeleteQ = 0x14;
inline constexpr uint8_t kOpcodeIncrementQ = 0x15;
inline constexpr uint8_t kOpcodeDecrementQ = 0x16;
inline constexpr uint8_t kOpcodeQuitQ = 0x17;
inline constexpr uint8_t kOpcodeFlushQ = 0x18;
inline constexpr uint8_t kOpcodeAppendQ = 0x19;
inline constexpr uint8_t kOpcodePrependQ = 0x1a;
inline constexpr uint8_t kOpcodeTouch = 0x1c;
inline constexpr uint8_t kOpcodeGat = 0x1d;
inline constexpr uint8_t kOpcodeGatQ = 0x1e;
inline constexpr uint8_t kOpcodeGatK = 0x23;
inline constexpr uint8_t kOpcodeGatKQ = 0x24;

enum class Presence : uint8_t { Forbidden, Required, Optional };

// What memcached accepts for one opcode; a packet breaking these rules is refused with
// "Invalid arguments" (memcached then closes; the proxy can skip it, since the body length
// still frames it). Rules memcached leaves out but that would desynchronise a backend if a
// packet broke them (a value after a TOUCH, which memcached would read as the next command)
// are added, so that whatever is forwarded is framed identically by the backend.
struct BinaryOpcodeInfo {
  uint8_t opcode;
  std::string_view name;
  uint8_t baseOpcode;  // the loud form of a quiet opcode (GETQ -> GET); itself otherwise
  bool quiet;          // success replies are suppressed (GETQ, GETKQ, GATQ, GATKQ: misses)
  uint8_t extras;      // required extras length
  uint8_t extrasAlt;   // a second accepted extras length (FLUSH: 0 or 4); == extras if none
  Presence key;
  Presence value;
  ReplyKind reply;     // Binary, or BinaryStat for STAT's packet sequence
};

// Every opcode the proxy knows, in opcode order.
[[nodiscard]] std::span<const BinaryOpcodeInfo> binaryOpcodes() noexcept;
// nullptr for an opcode the proxy does not know (answered with "Unknown command").
[[nodiscard]] const BinaryOpcodeInfo* binaryOpcodeInfo(uint8_t opcode) noexcept;

}  // namespace backends::memcache
