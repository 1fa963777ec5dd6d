// transition_scripts.h: the Lua scripts a transition runs on a key's new owner, shared by the
// proxy (redis/redis_transition.cc) and the migrator (ringctl/ringctl_migrate.cc), so both
// settle a key the same way. See the README, "Resharding that moves the data".
#pragma once

namespace proxy::transition {

// After a MIGRATE answered BUSYKEY: if the new owner's copy is byte for byte the old one (a
// MIGRATE that timed out and landed late), it gets the old copy's absolute expiry
// (ARGV[2], -1 for none); a newer write is left alone. ARGV[1]: the old copy's DUMP.
inline constexpr char kReconcile[] =
    "if redis.call('DUMP', KEYS[1]) == ARGV[1] then "
    "if ARGV[2] == '-1' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end "
    "return 1 end return 0";

// After a MIGRATE that took long: MIGRATE sends the TTL relative to when the old owner read
// the key, so a stalled target stretches it. If the copy's expiry is later than the old one
// (ARGV[1]) by at most ARGV[2] ms, it is set back; anything else (a newer write) is left alone.
inline constexpr char kFixTtl[] =
    "local t = redis.call('PEXPIRETIME', KEYS[1]) "
    "if t > tonumber(ARGV[1]) and t <= tonumber(ARGV[1]) + tonumber(ARGV[2]) then "
    "return redis.call('PEXPIREAT', KEYS[1], ARGV[1]) end return 0";

}  // namespace proxy::transition
