// ringctl: inspect rings offline (owner, shares, diff, check). Exit codes: 0 ok, 1 bad input
// (with a message), 2 usage.
#include <openssl/evp.h>

#include <cstdio>
#include <iostream>
#include <cstdlib>
#include <cstring>
#include <string>

#include "proxy/ringctl/ringctl_commands.h"

using namespace proxy::ringctl;

#ifdef RINGPROXY_VERSION
#define RINGCTL_VERSION RINGPROXY_VERSION
#else
#define RINGCTL_VERSION "unknown"
#endif

namespace {

const char kUsage[] =
    "usage: ringctl COMMAND [options]     (ringctl --version: the version)\n"
    "\n"
    "  owner  -c FILE [--pool NAME] [KEY...]   owner of each key (keys from stdin when none given)\n"
    "  shares -c FILE [--pool NAME]            each node's points and exact share of the keyspace\n"
    "  diff OLD.yml NEW.yml [--pool NAME]      share of the keyspace that changes owner, and flows\n"
    "  check  -c FILE [--no-resolve]           every error in a config file; warns of unresolvable hosts\n"
    "  hash-password < PASSWORD                the SHA-256 a users: entry's password_sha256 holds\n"
    "  status HOST:PORT [--token-file F]       a running proxy (its --admin address): generation,\n"
    "                                          pools, per-backend health and request rates\n"
    "  balance -c FILE [--pool NAME]           keys each backend holds beside its expected share\n"
    "  plan OLD.yml NEW.yml [-o OUT.yml]       the transition config from OLD to NEW (NEW with\n"
    "                                          previous_servers), and what will move\n"
    "  migrate -c FILE [--pool NAME] [--rate N] [--give-up S]\n"
    "                                          move every key of a pool in transition to its new\n"
    "                                          owner; exit 0 once nothing is left to move"
    "\n"
    "options: --json (machine-readable output), --svg FILE (shares, diff: draw each pool's\n"
    "         ring, shares against ideal, and what moves; every pool unless --pool)\n"
    "exit codes: 0 ok, 1 bad input, 2 usage\n";

int usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "ringctl: %s\n", why);
  std::fputs(kUsage, stderr);
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(nullptr);
  Options o;
  o.command = argv[1];
  if (o.command == "-h" || o.command == "--help" || o.command == "help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (o.command == "-V" || o.command == "--version" || o.command == "version") {
    std::printf("ringctl %s\n", RINGCTL_VERSION);
    return kExitOk;
  }
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](std::string& into) {
      if (i + 1 >= argc) return false;
      into = argv[++i];
      return true;
    };
    if (a == "-c" || a == "--conf-file") {
      if (!next(o.configFile)) return usage("-c needs a file");
    } else if (a == "--pool") {
      if (!next(o.pool)) return usage("--pool needs a name");
    } else if (a == "--svg") {
      if (!next(o.svgFile)) return usage("--svg needs a file");
    } else if (a == "--rate") {
      std::string v;
      if (!next(v)) return usage("--rate needs a number of keys per second");
      o.rate = std::atof(v.c_str());
      if (o.rate < 0) return usage("--rate must be 0 (no limit) or more");
    } else if (a == "--give-up") {
      std::string v;
      if (!next(v)) return usage("--give-up needs seconds");
      o.giveUpSeconds = std::atoi(v.c_str());
    } else if (a == "-o" || a == "--output") {
      if (!next(o.outFile)) return usage("-o needs a file");
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--no-resolve") {
      o.resolveHosts = false;
    } else if (a == "--token-file") {
      if (!next(o.tokenFile)) return usage("--token-file needs a file");
    } else if (a == "--") {
      for (++i; i < argc; ++i) o.positional.push_back(argv[i]);
    } else if (a.size() > 1 && a[0] == '-') {
      return usage(("unknown option " + a).c_str());
    } else {
      o.positional.push_back(a);
    }
  }
  const bool needsConfig = o.command == "owner" || o.command == "shares" || o.command == "check" ||
                           o.command == "balance" || o.command == "migrate";
  if (needsConfig && o.configFile.empty()) return usage((o.command + " needs -c FILE").c_str());
  if (o.command == "owner") return runOwner(o);
  if (o.command == "shares") return runShares(o);
  if (o.command == "diff") return runDiff(o);
  if (o.command == "check") return runCheck(o);
  if (o.command == "status") return runStatus(o);
  if (o.command == "balance") return runBalance(o);
  if (o.command == "migrate") return runMigrate(o);
  if (o.command == "plan") return runPlan(o);
  if (o.command == "hash-password") {
    // The SHA-256 a `users:` entry's password_sha256 holds, of the first line of stdin.
    std::string password;
    if (!std::getline(std::cin, password) || password.empty()) return usage("hash-password reads a password from stdin");
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(password.data(), password.size(), digest, &n, EVP_sha256(), nullptr);
    for (unsigned int i = 0; i < n; ++i) std::printf("%02x", digest[i]);
    std::printf("\n");
    return kExitOk;
  }
  return usage(("unknown command " + o.command).c_str());
}
