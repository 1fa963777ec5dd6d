// config_watch.h: tells the control thread when the config file may have been replaced or
// rewritten in full, and never while a writer is still in the middle of it.
//
// A change is reported when a writer closes the file (inotify's IN_CLOSE_WRITE, not each
// write: a writer that pauses with the file open is not caught half-way), or when a file or
// symlink is renamed into, or a symlink created in, the directory (the atomic replacements of
// editors, config managers and Kubernetes' `..data` symlink swap). If the path is a symlink,
// the directory of the file it leads to is watched too. A plain new file appearing is not a
// change until its writer closes it. The caller still compares contents: most events in the
// directory concern other files.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <string>

namespace proxy {

class ConfigWatch {
 public:
  ConfigWatch() = default;
  ConfigWatch(const ConfigWatch&) = delete;
  ConfigWatch& operator=(const ConfigWatch&) = delete;
  ~ConfigWatch();

  // Starts watching `path` on `loop`; `onChange` runs on the loop's thread. False with
  // `error` set if the watch cannot be set up (the caller logs it; reloads still work by
  // SIGHUP and POST /reload).
  bool start(uv_loop_t* loop, const std::string& path, std::function<void()> onChange, std::string& error);
  // Stops watching; the handle closes on the loop.
  void close();

 private:
  void onReadable();
  // Adds watches for the path's directory and, through symlinks, its target's directory
  // (again after each change: a swap can move the target to a new directory).
  void watchDirectories();
  bool matters(int wd, uint32_t mask, const char* name) const;

  std::string path_;
  std::function<void()> onChange_;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;  // heap: it must outlive this object until its close callback
  // Watched directories by watch descriptor, with the name in each whose close-after-write
  // counts (the config's file name there).
  struct Watched {
    std::string dir;
    std::string name;
  };
  std::map<int, Watched> watched_;
};

}  // namespace proxy
