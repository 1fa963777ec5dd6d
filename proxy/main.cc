// ringproxy: the program. Parses the command line (twemproxy's flags plus ours), loads and
// validates the config, daemonizes (-d), starts the signal thread, opens every listener
// (pools, stats, admin: any that fails ends start-up with its reason and exit 1), starts the
// workers, and only then reports itself running (pid file, the -d parent exits 0). Then the
// control loop serves until SIGTERM/SIGINT (see signal_thread.h for every signal).
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/io/memory_budget.h"
#include "config/load.h"
#include "proxy/control/control.h"
#include "proxy/control/crash_trace.h"
#include "proxy/control/daemonize.h"
#include "proxy/control/signal_thread.h"
#include "proxy/runtime/log.h"

#ifndef RINGPROXY_VERSION
#define RINGPROXY_VERSION "0.1.0"
#endif

namespace {

const char kUsage[] =
    "Usage: ringproxy [-?hVdDt] [-v verbosity level] [-o output file]\n"
    "                 [-c conf file] [-s stats port] [-a stats addr]\n"
    "                 [-i stats interval] [-p pid file] [-m mbuf size]\n"
    "                 [--workers N] [--admin ADDR:PORT] [--admin-token-file FILE]\n"
    "                 [--admin-tls-cert FILE --admin-tls-key FILE]\n"
    "                 [--max-buffered-bytes N] [--no-watch]\n"
    "\n"
    "Options:\n"
    "  -h, --help             : this help\n"
    "  -V, --version          : show version and exit\n"
    "  -t, --test-conf        : test configuration for syntax errors and exit (0 valid)\n"
    "  -d, --daemonize        : run as a daemon\n"
    "  -D, --describe-stats   : print stats description and exit\n"
    "  -v, --verbose=N        : log level (default: 5; 3 errors .. 7 debug)\n"
    "  -o, --output=S         : log file (default: stderr)\n"
    "  -c, --conf-file=S      : configuration file (default: conf/nutcracker.yml)\n"
    "  -s, --stats-port=N     : stats port (default: 22222; 0: none)\n"
    "  -a, --stats-addr=S     : stats address (default: 127.0.0.1, loopback only)\n"
    "  -i, --stats-interval=N : accepted for twemproxy compatibility; stats are always live\n"
    "  -p, --pid-file=S       : pid file\n"
    "  -m, --mbuf-size=N      : accepted for twemproxy compatibility; buffers grow as needed\n"
    "      --workers=N        : worker threads (default: half the cores, at least 1)\n"
    "      --admin=ADDR:PORT  : admin HTTP: /metrics /stats /status /ring?pool=P, POST /reload\n"
    "      --admin-token-file=S : admin requests need \"Authorization: Bearer <the file's first line>\";\n"
    "                         without it POST /reload is refused on a listener not on loopback\n"
    "      --admin-tls-cert=S --admin-tls-key=S : the admin listener serves HTTPS with this PEM\n"
    "                         certificate (chain) and key\n"
    "      --max-buffered-bytes=N : refuse new requests while socket buffers hold more than N\n"
    "                         bytes in all (default 1073741824; 0: no limit)\n"
    "      --no-watch         : do not reload when the config file changes (SIGHUP still does)\n";

// -D: the counters of the stats port, with twemproxy's names (and what ringproxy means by them).
const char kStatsDescription[] =
    "pool stats:\n"
    "  client_eof          \"clients that closed their connection\"\n"
    "  client_err          \"clients closed for an error (socket or protocol)\"\n"
    "  client_connections  \"client connections open now\"\n"
    "  server_ejects       \"ejections of a backend from the ring\"\n"
    "  forward_error       \"requests that could not be forwarded or answered\"\n"
    "  fragments           \"sub-requests made by splitting multi-key requests\"\n"
    "\n"
    "server stats:\n"
    "  server_eof          \"backend connections closed by the backend\"\n"
    "  server_err          \"backend connections dropped for an error\"\n"
    "  server_timedout     \"requests that got no reply within the timeout\"\n"
    "  server_connections  \"backend connections open now\"\n"
    "  server_ejected_at   \"when the backend was last ejected (usec since the epoch)\"\n"
    "  requests            \"requests sent\"\n"
    "  request_bytes       \"bytes sent\"\n"
    "  responses           \"replies received\"\n"
    "  response_bytes      \"bytes received\"\n"
    "  in_queue            \"requests waiting to be sent (always 0: sent in the same loop turn)\"\n"
    "  in_queue_bytes      \"request bytes not yet accepted by the kernel\"\n"
    "  out_queue           \"requests sent and awaiting a reply\"\n"
    "  out_queue_bytes     \"bytes of requests awaiting a reply\"\n"
    "\n"
    "ringproxy serves the same counters live (no aggregation interval) on the stats port, and\n"
    "more on its admin listener: GET /metrics (Prometheus), /stats, /status, /ring?pool=NAME.\n";

struct Args {
  std::string conf = "conf/nutcracker.yml";
  bool testOnly = false;
  bool daemonize = false;
  bool describeStats = false;
  int verbosity = proxy::log::kNotice;
  std::string logFile;
  std::string pidFile;
  int statsPort = 22222;
  std::string statsAddr = "127.0.0.1";
  int workers = 0;
  bool watchConfig = true;
  int64_t maxBufferedBytes = 1024LL * 1024 * 1024;
  std::string adminAddr;
  int adminPort = 0;
  std::string adminTokenFile;
  std::string adminTlsCert;
  std::string adminTlsKey;
};

// Accepts "-c FILE", "-cFILE", "--conf-file FILE" and "--conf-file=FILE".
bool takeValue(int argc, char** argv, int& i, const char* shortName, const char* longName, std::string& out) {
  const std::string a = argv[i];
  const std::string s = shortName, l = longName;
  if (a == s || a == l) {
    if (i + 1 >= argc) return false;
    out = argv[++i];
    return true;
  }
  if (a.rfind(l + "=", 0) == 0) {
    out = a.substr(l.size() + 1);
    return true;
  }
  if (s.size() == 2 && a.size() > 2 && a.rfind(s, 0) == 0 && a[1] != '-') {
    out = a.substr(2);
    return true;
  }
  return false;
}

bool parseInt(const std::string& s, int& v) {
  char* end = nullptr;
  const long n = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || n < 0 || n > 1000000000) return false;
  v = static_cast<int>(n);
  return true;
}

int usageError(const std::string& why) {
  std::fprintf(stderr, "ringproxy: %s\n\n%s", why.c_str(), kUsage);
  return 2;
}

// A start-up failure: on stderr (the terminal, also under -d until the proxy runs) and in
// the log file when there is one. Exit status 1.
int startupFailure(const Args& args, const std::string& why) {
  std::fprintf(stderr, "ringproxy: %s\n", why.c_str());
  if (!args.logFile.empty()) LOG_ERROR("start-up failed: %s", why.c_str());
  return 1;
}

// Short flags without a value may be bundled as getopt allows (`-tc FILE`, `-dt`): each is
// split into its own argument here, before the options are read.
std::vector<std::string> splitBundledFlags(int argc, char** argv) {
  static constexpr std::string_view kFlags = "tdDhV?";
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    while (i > 0 && a.size() > 2 && a[0] == '-' && a[1] != '-' && kFlags.find(a[1]) != std::string_view::npos) {
      out.push_back(a.substr(0, 2));
      a.erase(1, 1);  // "-tc" -> "-c" (not "-" + substr: GCC 12 -Wrestrict false positive)
    }
    out.push_back(std::move(a));
  }
  return out;
}

// The options that take a value: named when the value is missing.
bool takesValue(const std::string& a) {
  for (const char* o : {"-c", "--conf-file", "-o", "--output", "-p", "--pid-file", "-a", "--stats-addr", "-v",
                        "--verbose", "-s", "--stats-port", "-i", "--stats-interval", "-m", "--mbuf-size", "-w",
                        "--workers", "--admin", "--admin-token-file", "--admin-tls-cert", "--admin-tls-key",
                        "--max-buffered-bytes"})
    if (a == o) return true;
  return false;
}

}  // namespace

int main(int rawArgc, char** rawArgv) {
  std::vector<std::string> split = splitBundledFlags(rawArgc, rawArgv);
  std::vector<char*> argvStorage;
  for (std::string& s : split) argvStorage.push_back(s.data());
  argvStorage.push_back(nullptr);
  const int argc = static_cast<int>(split.size());
  char** argv = argvStorage.data();
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    std::string v;
    if (i + 1 >= argc && takesValue(a)) return usageError("option '" + a + "' requires an argument");
    if (a == "-h" || a == "--help" || a == "-?") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "-V" || a == "--version") {
      std::printf("This is ringproxy-%s (twemproxy 0.5.0 compatible)\n", RINGPROXY_VERSION);
      return 0;
    } else if (a == "-t" || a == "--test-conf") {
      args.testOnly = true;
    } else if (a == "-d" || a == "--daemonize") {
      args.daemonize = true;
    } else if (a == "-D" || a == "--describe-stats") {
      args.describeStats = true;
    } else if (takeValue(argc, argv, i, "-c", "--conf-file", v)) {
      args.conf = v;
    } else if (takeValue(argc, argv, i, "-o", "--output", v)) {
      args.logFile = v;
    } else if (takeValue(argc, argv, i, "-p", "--pid-file", v)) {
      args.pidFile = v;
    } else if (takeValue(argc, argv, i, "-a", "--stats-addr", v)) {
      args.statsAddr = v;
    } else if (takeValue(argc, argv, i, "-v", "--verbose", v)) {
      if (!parseInt(v, args.verbosity)) return usageError("bad verbosity '" + v + "'");
    } else if (takeValue(argc, argv, i, "-s", "--stats-port", v)) {
      if (!parseInt(v, args.statsPort) || args.statsPort > 65535) return usageError("bad stats port '" + v + "'");
    } else if (takeValue(argc, argv, i, "-i", "--stats-interval", v) || takeValue(argc, argv, i, "-m", "--mbuf-size", v)) {
      // Accepted so twemproxy init scripts work unchanged; stats are live and buffers grow.
    } else if (takeValue(argc, argv, i, "-w", "--workers", v)) {
      if (!parseInt(v, args.workers) || args.workers < 1 || args.workers > 1024) return usageError("bad worker count '" + v + "'");
    } else if (takeValue(argc, argv, i, "--admin", "--admin", v)) {
      // ADDR:PORT, or PORT alone (loopback).
      const size_t colon = v.rfind(':');
      const std::string host = colon == std::string::npos ? "127.0.0.1" : v.substr(0, colon);
      const std::string port = colon == std::string::npos ? v : v.substr(colon + 1);
      if (!parseInt(port, args.adminPort) || args.adminPort < 1 || args.adminPort > 65535)
        return usageError("bad --admin address '" + v + "' (ADDR:PORT)");
      args.adminAddr = host.empty() ? "127.0.0.1" : host;
    } else if (takeValue(argc, argv, i, "--max-buffered-bytes", "--max-buffered-bytes", v)) {
      char* end = nullptr;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 0) return usageError("bad --max-buffered-bytes '" + v + "'");
      args.maxBufferedBytes = n;
    } else if (takeValue(argc, argv, i, "--admin-token-file", "--admin-token-file", v)) {
      args.adminTokenFile = v;
    } else if (takeValue(argc, argv, i, "--admin-tls-cert", "--admin-tls-cert", v)) {
      args.adminTlsCert = v;
    } else if (takeValue(argc, argv, i, "--admin-tls-key", "--admin-tls-key", v)) {
      args.adminTlsKey = v;
    } else if (a == "--no-watch") {
      args.watchConfig = false;
    } else {
      return usageError("unknown option '" + a + "'");
    }
  }

  if (args.describeStats) {
    std::fputs(kStatsDescription, stdout);
    return 0;
  }
  proxy::log::setLevel(args.verbosity);
  if (!args.logFile.empty() && !proxy::log::setFile(args.logFile.c_str())) {
    std::fprintf(stderr, "ringproxy: cannot open log file %s: %s\n", args.logFile.c_str(), std::strerror(errno));
    return 1;
  }
  proxy::installCrashTrace();
  signal(SIGPIPE, SIG_IGN);  // a peer that went away is an error on its socket, not a signal

  config::Topology topology;
  {
    std::string text;
    config::LoadError error;
    if (!config::readConfigFile(args.conf, text, error)) {
      std::fprintf(stderr, "ringproxy: cannot read configuration file: %s\n", error.str().c_str());
      return 1;
    }
    std::vector<config::LoadError> errors;
    if (!config::loadTopologyText(text, args.conf, topology, errors)) {
      std::fprintf(stderr, "ringproxy: configuration file '%s' syntax is invalid\n", args.conf.c_str());
      for (const config::LoadError& e : errors) std::fprintf(stderr, "%s\n", e.str().c_str());
      return 1;
    }
  }
  if (args.testOnly) {
    std::printf("ringproxy: configuration file '%s' syntax is ok\n", args.conf.c_str());
    return 0;
  }
  std::string err;
  if (args.daemonize && !proxy::daemonizeAndWait(err)) return startupFailure(args, err);
  // Before any other thread exists (they inherit its signal mask), and after the fork.
  proxy::SignalThread signals;
  if (!signals.start(err)) return startupFailure(args, err);
  backends::io::setBufferLimit(args.maxBufferedBytes);
  proxy::ControlOptions options;
  options.configFile = args.conf;
  // Default: one worker per two cores. The proxy usually shares its host with clients or
  // backends; on 2 cores, a second worker beside redis-server and the client cost 48% more CPU
  // per request at -P 1 (7.1 vs 4.8 µs) and a third less throughput than one worker, while
  // -P 16 gained nothing. On a host of its own, --workers N uses every core.
  options.workers = args.workers > 0 ? args.workers : std::max(1, static_cast<int>(uv_available_parallelism()) / 2);
  options.watchConfig = args.watchConfig;
  options.statsAddr = args.statsAddr;
  options.statsPort = args.statsPort;
  options.adminAddr = args.adminAddr;
  options.adminPort = args.adminPort;
  if (args.adminTlsCert.empty() != args.adminTlsKey.empty()) {
    std::fprintf(stderr, "ringproxy: --admin-tls-cert and --admin-tls-key go together\n");
    return 1;
  }
  options.adminTlsCert = args.adminTlsCert;
  options.adminTlsKey = args.adminTlsKey;
  if (!args.adminTokenFile.empty()) {
    // The token is the file's first line; a file that cannot be read or holds none is an error,
    // never an open admin listener.
    std::ifstream in(args.adminTokenFile);
    std::string token;
    if (!in || !std::getline(in, token)) {
      std::fprintf(stderr, "ringproxy: --admin-token-file %s: cannot read it\n", args.adminTokenFile.c_str());
      return 1;
    }
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) token.pop_back();
    if (token.size() < 16) {
      std::fprintf(stderr, "ringproxy: --admin-token-file %s: the token (its first line) must be 16 characters or more\n",
                   args.adminTokenFile.c_str());
      return 1;
    }
    options.adminToken = token;
  }
  proxy::Control control(options);
  // Large blocks (big values, their reply copies) come straight from mmap and go straight back
  // on free, instead of staying resident in the heap after a burst. A fixed threshold also
  // stops glibc from raising it after the first large free.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  // Every client is a file descriptor: allow as many as the hard limit permits.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &files) != 0) LOG_WARN("cannot raise the open-files limit: %s", std::strerror(errno));
  }
  LOG_NOTICE("ringproxy %s starting, pid %d, %d worker%s, config %s", RINGPROXY_VERSION, getpid(), options.workers,
             options.workers == 1 ? "" : "s", args.conf.c_str());
  if (!control.prepare(std::move(topology), err)) return startupFailure(args, err);
  if (!control.start(&signals, err)) return startupFailure(args, err);
  if (!args.pidFile.empty()) {
    std::ofstream pf(args.pidFile);
    pf << getpid() << "\n";
    if (!pf) LOG_WARN("cannot write pid file %s", args.pidFile.c_str());
  }
  // Every listener is bound and the workers run: now the -d parent may say so.
  proxy::reportRunning(args.logFile.empty());
  LOG_NOTICE("ringproxy running");
  const int rc = control.run();
  if (!args.pidFile.empty()) ::unlink(args.pidFile.c_str());
  LOG_NOTICE("ringproxy stopped");
  return rc;
}
