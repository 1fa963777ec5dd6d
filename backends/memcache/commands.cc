#include "backends/memcache/commands.h"

#include <array>

namespace backends::memcache {

namespace {

using enum Command;
constexpr Dialect kText = Dialect::Text;
constexpr Dialect kMeta = Dialect::Meta;
constexpr ReplyKind kRetrieval = ReplyKind::TextRetrieval;
constexpr ReplyKind kLine = ReplyKind::TextLine;

// Token counts are memcached's (its WANT_TOKENS checks, minus the terminal token it counts).
// `gat` needs a key here although memcached answers a bare `gat <exptime>` with END: a
// retrieval without keys has nothing to route.
constexpr TextCommandInfo kTextCommands[] = {
    // command          name         dialect reply               min max key  multi bytes noreply
    {Get,            "get",       kText, kRetrieval,          2,  0,  1,  true,  0, false},
    {Gets,           "gets",      kText, kRetrieval,          2,  0,  1,  true,  0, false},
    {Gat,            "gat",       kText, kRetrieval,          3,  0,  2,  true,  0, false},
    {Gats,           "gats",      kText, kRetrieval,          3,  0,  2,  true,  0, false},
    {Set,            "set",       kText, kLine,               5,  6,  1,  false, 4, true},
    {Add,            "add",       kText, kLine,               5,  6,  1,  false, 4, true},
    {Replace,        "replace",   kText, kLine,               5,  6,  1,  false, 4, true},
    {Append,         "append",    kText, kLine,               5,  6,  1,  false, 4, true},
    {Prepend,        "prepend",   kText, kLine,               5,  6,  1,  false, 4, true},
    {Cas,            "cas",       kText, kLine,               6,  7,  1,  false, 4, true},
    {Delete,         "delete",    kText, kLine,               2,  4,  1,  false, 0, true},
    {Incr,           "incr",      kText, kLine,               3,  4,  1,  false, 0, true},
    {Decr,           "decr",      kText, kLine,               3,  4,  1,  false, 0, true},
    {Touch,          "touch",     kText, kLine,               3,  4,  1,  false, 0, true},
    {Version,        "version",   kText, kLine,               1,  0,  0,  false, 0, false},
    {Quit,           "quit",      kText, kLine,               1,  0,  0,  false, 0, false},
    {Verbosity,      "verbosity", kText, kLine,               2,  3,  0,  false, 0, true},
    {FlushAll,       "flush_all", kText, kLine,               1,  3,  0,  false, 0, true},
    {Stats,          "stats",     kText, ReplyKind::TextStats, 1, 0,  0,  false, 0, false},
    {MetaGet,        "mg",        kMeta, ReplyKind::Meta,     2,  0,  1,  false, 0, false},
    {MetaSet,        "ms",        kMeta, ReplyKind::Meta,     3,  0,  1,  false, 2, false},
    {MetaDelete,     "md",        kMeta, ReplyKind::Meta,     2,  0,  1,  false, 0, false},
    {MetaArithmetic, "ma",        kMeta, ReplyKind::Meta,     2,  0,  1,  false, 0, false},
    {MetaNoop,       "mn",        kMeta, ReplyKind::Meta,     1,  0,  0,  false, 0, false},
    {MetaDebug,      "me",        kMeta, ReplyKind::Meta,     2,  0,  1,  false, 0, false},
};

static_assert(std::size(kTextCommands) == static_cast<size_t>(Command::Binary));

constexpr bool tableInCommandOrder() {
  for (size_t i = 0; i < std::size(kTextCommands); ++i) {
    if (static_cast<size_t>(kTextCommands[i].command) != i) return false;
  }
  return true;
}
static_assert(tableInCommandOrder());

constexpr Presence kNo = Presence::Forbidden;
constexpr Presence kYes = Presence::Required;
constexpr Presence kAny = Presence::Optional;
constexpr ReplyKind kPacket = ReplyKind::Binary;

// memcached's dispatch_bin_command rules. Values are forbidden where memcached does not read
// one (GET, DELETE, INCR, STAT, TOUCH/GAT): it would take those bytes for the next packet.
constexpr BinaryOpcodeInfo kBinaryOpcodes[] = {
    // opcode            name          base               quiet  ext alt key   value
    {kOpcodeGet,        "GET",        kOpcodeGet,        false, 0,  0,  kYes, kNo,  kPacket},
    {kOpcodeSet,        "SET",        kOpcodeSet,        false, 8,  8,  kYes, kAny, kPacket},
    {kOpcodeAdd,        "ADD",        kOpcodeAdd,        false, 8,  8,  kYes, kAny, kPacket},
    {kOpcodeReplace,    "REPLACE",    kOpcodeReplace,    false, 8,  8,  kYes, kAny, kPacket},
    {kOpcodeDelete,     "DELETE",     kOpcodeDelete,     false, 0,  0,  kYes, kNo,  kPacket},
    {kOpcodeIncrement,  "INCREMENT",  kOpcodeIncrement,  false, 20, 20, kYes, kNo,  kPacket},
    {kOpcodeDecrement,  "DECREMENT",  kOpcodeDecrement,  false, 20, 20, kYes, kNo,  kPacket},
    {kOpcodeQuit,       "QUIT",       kOpcodeQuit,       false, 0,  0,  kNo,  kNo,  kPacket},
    {kOpcodeFlush,      "FLUSH",      kOpcodeFlush,      false, 0,  4,  kNo,  kNo,  kPacket},
    {kOpcodeGetQ,       "GETQ",       kOpcodeGet,        true,  0,  0,  kYes, kNo,  kPacket},
    {kOpcodeNoop,       "NOOP",       kOpcodeNoop,       false, 0,  0,  kNo,  kNo,  kPacket},
    {kOpcodeVersion,    "VERSION",    kOpcodeVersion,    false, 0,  0,  kNo,  kNo,  kPacket},
    {kOpcodeGetK,       "GETK",       kOpcodeGetK,       false, 0,  0,  kYes, kNo,  kPacket},
    {kOpcodeGetKQ,      "GETKQ",      kOpcodeGetK,       true,  0,  0,  kYes, kNo,  kPacket},
    {kOpcodeAppend,     "APPEND",     kOpcodeAppend,     false, 0,  0,  kYes, kAny, kPacket},
    {kOpcodePrepend,    "PREPEND",    kOpcodePrepend,    false, 0,  0,  kYes, kAny, kPacket},
    {kOpcodeStat,       "STAT",       kOpcodeStat,       false, 0,  0,  kAny, kNo,  ReplyKind::BinaryStat},
    {kOpcodeSetQ,       "SETQ",       kOpcodeSet,        true,  8,  8,  kYes, kAny, kPacket},
    {kOpcodeAddQ,       "ADDQ",       kOpcodeAdd,        true,  8,  8,  kYes, kAny, kPacket},
    {kOpcodeReplaceQ,   "REPLACEQ",   kOpcodeReplace,    true,  8,  8,  kYes, kAny, kPacket},
    {kOpcodeDeleteQ,    "DELETEQ",    kOpcodeDelete,     true,  0,  0,  kYes, kNo,  kPacket},
    {kOpcodeIncrementQ, "INCREMENTQ", kOpcodeIncrement,  true,  20, 20, kYes, kNo,  kPacket},
    {kOpcodeDecrementQ, "DECREMENTQ", kOpcodeDecrement,  true,  20, 20, kYes, kNo,  kPacket},
    {kOpcodeQuitQ,      "QUITQ",      kOpcodeQuit,       true,  0,  0,  kNo,  kNo,  kPacket},
    {kOpcodeFlushQ,     "FLUSHQ",     kOpcodeFlush,      true,  0,  4,  kNo,  kNo,  kPacket},
    {kOpcodeAppendQ,    "APPENDQ",    kOpcodeAppend,     true,  0,  0,  kYes, kAny, kPacket},
    {kOpcodePrependQ,   "PREPENDQ",   kOpcodePrepend,    true,  0,  0,  kYes, kAny, kPacket},
    {kOpcodeTouch,      "TOUCH",      kOpcodeTouch,      false, 4,  4,  kYes, kNo,  kPacket},
    {kOpcodeGat,        "GAT",        kOpcodeGat,        false, 4,  4,  kYes, kNo,  kPacket},
    {kOpcodeGatQ,       "GATQ",       kOpcodeGat,        true,  4,  4,  kYes, kNo,  kPacket},
    {kOpcodeGatK,       "GATK",       kOpcodeGatK,       false, 4,  4,  kYes, kNo,  kPacket},
    {kOpcodeGatKQ,      "GATKQ",      kOpcodeGatK,       true,  4,  4,  kYes, kNo,  kPacket},
};

// One byte per opcode: its index in kBinaryOpcodes plus one, 0 when unknown.
constexpr std::array<uint8_t, 256> kOpcodeIndex = [] {
  std::array<uint8_t, 256> index{};
  for (size_t i = 0; i < std::size(kBinaryOpcodes); ++i) {
    index[kBinaryOpcodes[i].opcode] = static_cast<uint8_t>(i + 1);
  }
  return index;
}();

}  // namespace

std::span<const TextCommandInfo> textCommands() noexcept { return kTextCommands; }

const TextCommandInfo* textCommandInfo(Command command) noexcept {
  const auto i = static_cast<size_t>(command);
  return i < std::size(kTextCommands) ? &kTextCommands[i] : nullptr;
}

const TextCommandInfo* findTextCommand(std::string_view verb) noexcept {
  // Meta verbs are all two letters starting with 'm'; no text verb is that short.
  if (verb.size() == 2 && verb[0] == 'm') {
    switch (verb[1]) {
      case 'g': return &kTextCommands[static_cast<size_t>(MetaGet)];
      case 's': return &kTextCommands[static_cast<size_t>(MetaSet)];
      case 'd': return &kTextCommands[static_cast<size_t>(MetaDelete)];
      case 'a': return &kTextCommands[static_cast<size_t>(MetaArithmetic)];
      case 'n': return &kTextCommands[static_cast<size_t>(MetaNoop)];
      case 'e': return &kTextCommands[static_cast<size_t>(MetaDebug)];
      default: return nullptr;
    }
  }
  // About twenty entries, nearly all rejected on their length: cheaper than hashing.
  for (const TextCommandInfo& info : kTextCommands) {
    if (info.name == verb) return &info;
  }
  return nullptr;
}

std::span<const BinaryOpcodeInfo> binaryOpcodes() noexcept { return kBinaryOpcodes; }

const BinaryOpcodeInfo* binaryOpcodeInfo(uint8_t opcode) noexcept {
  const uint8_t i = kOpcodeIndex[opcode];
  return i == 0 ? nullptr : &kBinaryOpcodes[i - 1];
}

}  // namespace backends::memcache
