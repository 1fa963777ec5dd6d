#include "proxy/control/config_watch.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace proxy {

namespace {

constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE;

std::string dirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string baseOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

ConfigWatch::~ConfigWatch() { close(); }

bool ConfigWatch::start(uv_loop_t* loop, const std::string& path, std::function<void()> onChange,
                        std::string& error) {
  path_ = path;
  onChange_ = std::move(onChange);
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    error = std::string("inotify: ") + std::strerror(errno);
    return false;
  }
  const std::string dir = dirOf(path);
  if (inotify_add_watch(fd_, dir.c_str(), kMask) < 0) {
    error = dir + ": " + std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    return false;
  }
  watchDirectories();
  poll_ = new uv_poll_t;
  poll_->data = this;
  int rc = uv_poll_init(loop, poll_, fd_);
  if (rc == 0)
    rc = uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* h, int status, int) {
      if (status == 0 && h->data != nullptr) static_cast<ConfigWatch*>(h->data)->onReadable();
    });
  if (rc < 0) {
    error = std::string("cannot poll inotify: ") + uv_strerror(rc);
    close();
    return false;
  }
  return true;
}

void ConfigWatch::close() {
  if (poll_ != nullptr) {
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  if (fd_ >= 0) ::close(fd_);  // after the handle stopped watching it
  fd_ = -1;
  watched_.clear();
}

void ConfigWatch::watchDirectories() {
  // The path itself, and where it leads: realpath follows every symlink on the way.
  std::string paths[2] = {path_, ""};
  char resolved[PATH_MAX];
  if (::realpath(path_.c_str(), resolved) != nullptr) paths[1] = resolved;
  for (const std::string& p : paths) {
    if (p.empty()) continue;
    const std::string dir = dirOf(p);
    const int wd = inotify_add_watch(fd_, dir.c_str(), kMask);
    if (wd >= 0) watched_[wd] = Watched{dir, baseOf(p)};  // the same directory twice: the same descriptor
  }
}

bool ConfigWatch::matters(int wd, uint32_t mask, const char* name) const {
  if ((mask & IN_MOVED_TO) != 0) return true;  // renamed into place: complete by construction
  const auto it = watched_.find(wd);
  if (it == watched_.end() || name == nullptr) return false;
  if ((mask & IN_CREATE) != 0) {
    // A symlink is created whole (`ln -sf`); a new regular file counts when its writer closes it.
    struct stat st {};
    return ::lstat((it->second.dir + "/" + name).c_str(), &st) == 0 && S_ISLNK(st.st_mode);
  }
  return (mask & IN_CLOSE_WRITE) != 0 && it->second.name == name;
}

void ConfigWatch::onReadable() {
  alignas(inotify_event) char buf[16 * 1024];
  bool changed = false;
  for (;;) {
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) break;  // EAGAIN: drained
    for (ssize_t off = 0; off < n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      if ((e->mask & IN_IGNORED) != 0) {
        watched_.erase(e->wd);  // its directory is gone (an old ..timestamp directory)
        continue;
      }
      changed = changed || matters(e->wd, e->mask, e->len > 0 ? e->name : nullptr);
    }
  }
  if (!changed) return;
  watchDirectories();
  onChange_();
}

}  // namespace proxy
