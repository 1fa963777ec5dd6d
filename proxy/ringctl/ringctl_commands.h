// ringctl_commands.h: the subcommands of ringctl, each a function from parsed options to an
// exit code (0 ok, 1 bad input, 2 usage). They read configs through config/ and reason with
// ring/; they never touch the proxy runtime.
#pragma once

#include <string>
#include <vector>

namespace proxy::ringctl {

struct Options {
  std::string command;
  std::string configFile;              // -c
  std::string pool;                    // --pool
  bool json = false;                   // --json
  std::string svgFile;                 // --svg
  std::vector<std::string> positional; // keys, or OLD NEW for diff
  double rate = 0;                     // migrate --rate: keys per second (0: no limit)
  int giveUpSeconds = 300;             // migrate --give-up: seconds without progress
  std::string outFile;                 // plan -o
  bool resolveHosts = true;            // check: look up server host names (--no-resolve: not)
  std::string tokenFile;               // status --token-file: the admin listener's bearer token
};

inline constexpr int kExitOk = 0;
inline constexpr int kExitBadInput = 1;
inline constexpr int kExitUsage = 2;

int runOwner(const Options& o);
int runShares(const Options& o);
int runDiff(const Options& o);
int runCheck(const Options& o);
int runStatus(const Options& o);   // ringctl_live.cc
int runBalance(const Options& o);  // ringctl_live.cc
int runMigrate(const Options& o);  // ringctl_migrate.cc
int runPlan(const Options& o);     // ringctl_plan.cc

}  // namespace proxy::ringctl
