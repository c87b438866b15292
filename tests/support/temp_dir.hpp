// A fresh directory under the system temp dir for one test, removed with everything in it when
// the test ends.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

namespace kb::test {

class TempDir {
public:
  // `tag` names the directory (kb-<tag>-<pid>-<n>) so leftovers are easy to attribute.
  explicit TempDir(const std::string& tag = "test") {
    m_path = std::filesystem::temp_directory_path() /
             ("kb-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(s_count++));
    std::filesystem::remove_all(m_path);
    std::filesystem::create_directories(m_path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Path of `name` inside the directory.
  std::string file(const std::string& name) const { return (m_path / name).string(); }
  std::string dir() const { return m_path.string(); }

private:
  std::filesystem::path m_path;
  static inline int s_count = 0;
};

} // namespace kb::test
