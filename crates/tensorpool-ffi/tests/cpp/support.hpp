// Test support: temporary directories under /dev/shm, child processes with a deadline, and
// the payload convention of `tp produce` / `tp consume --verify` (crates/tp/src/cmd/synth.rs),
// implemented here independently: bytes 0..8 the seq (LE), 8..12 the CRC32C of bytes 12..
// (LE), 12.. a pattern derived from the seq.
#pragma once

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace tpt {

/// A fresh directory under /dev/shm, removed with everything in it.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "tp-cpp-test-") {
        std::string tmpl = "/dev/shm/" + prefix + "XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = buf.data();
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string sub(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

/// A child process whose stdout and stderr go to a file.
class Child {
public:
    Child(const std::vector<std::string>& argv, const std::string& log) : log_(log) {
        // Everything the child needs is prepared before fork: after it, only
        // async-signal-safe calls (the parent has other threads).
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        pid_ = ::fork();
        if (pid_ == 0) {
            if (fd >= 0) {
                ::dup2(fd, 1);
                ::dup2(fd, 2);
            }
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        if (fd >= 0) ::close(fd);
    }
    ~Child() {
        if (pid_ > 0 && !exited_) {
            ::kill(pid_, SIGKILL);
            int st = 0;
            ::waitpid(pid_, &st, 0);
        }
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    /// Whether it has exited (non-blocking).
    bool done() {
        if (exited_) return true;
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            exited_ = true;
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        return exited_;
    }
    /// Waits up to `timeout`; kills it after that. Returns the exit status (-1: killed).
    int wait(std::chrono::milliseconds timeout) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (!done()) {
            if (std::chrono::steady_clock::now() > end) {
                ::kill(pid_, SIGKILL);
                int st = 0;
                ::waitpid(pid_, &st, 0);
                exited_ = true;
                return status_ = -1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return status_;
    }
    std::string output() const {
        std::ifstream in(log_);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

private:
    pid_t pid_ = -1;
    bool exited_ = false;
    int status_ = -1;
    std::string log_;
};

/// CRC32C (Castagnoli, reflected 0x82F63B78), bitwise table.
inline std::uint32_t crc32c(std::span<const std::uint8_t> data) {
    static const std::array<std::uint32_t, 256> table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    std::uint32_t crc = 0xFFFFFFFFu;
    for (std::uint8_t b : data) crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

constexpr std::size_t kHeaderLen = 12;

inline void put_le(std::uint8_t* p, std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline std::uint64_t get_le(const std::uint8_t* p, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return v;
}

/// Writes seq, pattern and checksum (synth.rs `fill_payload`).
inline void fill_payload(std::span<std::uint8_t> buf, std::uint64_t seq) {
    if (buf.size() < kHeaderLen) {
        for (auto& b : buf) b = static_cast<std::uint8_t>(seq);
        return;
    }
    std::uint64_t x = (seq * 0x9E3779B97F4A7C15ull) ^ 0xD1B54A32D192ED03ull;
    std::span<std::uint8_t> body = buf.subspan(kHeaderLen);
    std::size_t i = 0;
    for (; i + 8 <= body.size(); i += 8) {
        x += 0x9E3779B97F4A7C15ull;
        put_le(body.data() + i, x, 8);
    }
    for (; i < body.size(); ++i) body[i] = static_cast<std::uint8_t>(x);
    put_le(buf.data(), seq, 8);
    put_le(buf.data() + 8, crc32c(body), 4);
}

/// Whether `bytes` is the payload of frame `seq` (synth.rs `verify_payload`).
inline bool verify_payload(std::span<const std::uint8_t> bytes, std::uint64_t seq) {
    if (bytes.size() < kHeaderLen) return true;
    return get_le(bytes.data(), 8) == seq &&
           crc32c(bytes.subspan(kHeaderLen)) == static_cast<std::uint32_t>(get_le(bytes.data() + 8, 4));
}

/// The `tp` binary (built by the CMake project with the same cargo profile).
inline std::string tp_binary() { return TP_BINARY; }

}  // namespace tpt
