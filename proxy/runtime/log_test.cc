// log_test.cc: what reaches the log cannot forge a line, a rotated file is followed by
// reopen(), and SIGTTIN/SIGTTOU's level steps stay within error..debug.
#include "proxy/runtime/log.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

std::string escape(const std::string& in, size_t room = 1024) {
  std::string out(room, '?');
  out.resize(proxy::log::escapeControls(in.data(), in.size(), out.data(), room));
  return out;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("control bytes are escaped, everything else is kept") {
  CHECK(escape("plain text: {ok} 100%") == "plain text: {ok} 100%");
  CHECK(escape("a\nb") == "a\\nb");
  CHECK(escape("a\r\nb\tc") == "a\\r\\nb\\tc");
  CHECK(escape("\x1b[31mred") == "\\x1b[31mred");
  CHECK(escape(std::string("nul\0x", 5)) == "nul\\x00x");
  CHECK(escape("del\x7f") == "del\\x7f");
  CHECK(escape("\x01\x1f") == "\\x01\\x1f");
  CHECK(escape("caf\xc3\xa9 \\n") == "caf\xc3\xa9 \\n");  // UTF-8 and a literal backslash-n stay
  // Truncation never cuts an escape in half.
  CHECK(escape("ab\x1b", 4) == "ab");
  CHECK(escape("ab\x1b", 6) == "ab\\x1b");
  CHECK(escape("a\n", 2) == "a");
}

TEST_CASE("a message with a newline stays one line; reopen follows a renamed file") {
  const auto dir = std::filesystem::temp_directory_path() / ("ringproxy_log_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "proxy.log").string();
  REQUIRE(proxy::log::setFile(path.c_str()));

  proxy::log::write(proxy::log::kError, "bad key '%s'", "x\n[2024-01-01 00:00:00.000] notice forged");
  std::string text = readFile(path);
  CHECK(text.find("bad key 'x\\n[2024-01-01 00:00:00.000] notice forged'\n") != std::string::npos);
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);

  // logrotate: rename, then ask for a reopen; the next line goes to a new file at the path.
  const int fdBefore = proxy::log::fd();
  std::filesystem::rename(path, path + ".1");
  std::string error;
  REQUIRE(proxy::log::reopen(error));
  CHECK(proxy::log::fd() == fdBefore);  // same number: the crash handler's copy stays valid
  proxy::log::write(proxy::log::kNotice, "after rotation");
  CHECK(readFile(path).find("after rotation") != std::string::npos);
  CHECK(readFile(path + ".1").find("after rotation") == std::string::npos);

  // A path that cannot be opened keeps the current file.
  std::filesystem::remove_all(dir);
  CHECK_FALSE(proxy::log::reopen(error));
  CHECK(error.find("proxy.log") != std::string::npos);
}

TEST_CASE("level steps stay within error..debug") {
  proxy::log::setLevel(proxy::log::kNotice);
  CHECK(proxy::log::adjustLevel(+1) == proxy::log::kInfo);
  CHECK(proxy::log::adjustLevel(+1) == proxy::log::kDebug);
  CHECK(proxy::log::adjustLevel(+1) == proxy::log::kDebug);
  for (int i = 0; i < 10; ++i) proxy::log::adjustLevel(-1);
  CHECK(proxy::log::level() == proxy::log::kError);
  proxy::log::setLevel(11);  // -v 11 (twemproxy's most verbose) steps down into range
  CHECK(proxy::log::adjustLevel(-1) == proxy::log::kDebug);
  CHECK(std::string(proxy::log::levelName(proxy::log::kWarn)) == "warn");
  proxy::log::setLevel(proxy::log::kNotice);
}
