#pragma once
// Child processes for the benchmark samples: the spawned iii-test-engine and worker processes
// (each process's CPU time is measured on its own).

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace bench {

class Child {
public:
    Child() = default;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        close_fd(to_child_);
        close_fd(from_child_);
    }

    /// fork+exec of args[0]; its stdout (and, with `with_stdin`, its stdin) become pipes.
    /// The child gets SIGTERM should this process die first.
    void spawn(const std::vector<std::string>& args, bool with_stdin) {
        int out[2];
        int in[2] = {-1, -1};
        if (pipe2(out, O_CLOEXEC) != 0 || (with_stdin && pipe2(in, O_CLOEXEC) != 0))
            throw std::system_error(errno, std::generic_category(), "pipe2");
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        const pid_t parent = getpid();
        const pid_t pid = fork();
        if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
        if (pid == 0) {  // async-signal-safe calls only from here on
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) _exit(127);
            if (with_stdin) dup2(in[0], STDIN_FILENO);
            dup2(out[1], STDOUT_FILENO);
            execv(argv[0], argv.data());
            _exit(127);
        }
        pid_ = pid;
        close(out[1]);
        from_child_ = out[0];
        if (with_stdin) {
            close(in[0]);
            to_child_ = in[1];
        }
        name_ = args[0];
    }

    pid_t pid() const { return pid_; }

    /// The next line of the child's stdout (without the newline); nullopt on EOF or timeout.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
                std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return line;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd p{from_child_, POLLIN, 0};
            const int ready = poll(&p, 1, static_cast<int>(left.count()));
            if (ready < 0 && errno == EINTR) continue;
            if (ready <= 0) return std::nullopt;
            char chunk[512];
            const ssize_t n = read(from_child_, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return std::nullopt;
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    void write_line(const std::string& line) {
        const std::string text = line + "\n";
        if (write(to_child_, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
            throw std::runtime_error("cannot write to " + name_);
    }

    /// Ends the child: "quit" on its stdin (when it has one) or `signal`, then waits up to
    /// `grace` before SIGKILL. Returns the exit status (as waitpid), -1 when it had to be killed.
    int stop(int signal, std::chrono::milliseconds grace) {
        if (pid_ <= 0) return -1;
        if (to_child_ >= 0) {
            (void)!write(to_child_, "quit\n", 5);
            close_fd(to_child_);
        } else {
            kill(pid_, signal);
        }
        const auto deadline = std::chrono::steady_clock::now() + grace;
        int status = 0;
        for (;;) {
            const pid_t done = waitpid(pid_, &status, WNOHANG);
            if (done == pid_) break;
            if (std::chrono::steady_clock::now() > deadline) {
                kill(pid_, SIGKILL);
                waitpid(pid_, &status, 0);
                status = -1;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        pid_ = -1;
        return status;
    }

private:
    static void close_fd(int& fd) {
        if (fd >= 0) close(fd);
        fd = -1;
    }

    pid_t pid_ = -1;
    int to_child_ = -1;
    int from_child_ = -1;
    std::string buffer_;
    std::string name_;
};

/// This executable's path (/proc/self/exe).
inline std::string self_exe() {
    char buf[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) throw std::system_error(errno, std::generic_category(), "readlink /proc/self/exe");
    return std::string(buf, static_cast<std::size_t>(n));
}

/// `<dir of this executable>/../lib/testing/iii-test-engine`: where the build puts the engine
/// relative to samples/.
inline std::string default_engine_path() {
    const std::string self = self_exe();
    return self.substr(0, self.rfind('/')) + "/../lib/testing/iii-test-engine";
}

/// Spawns `path --port 0` into `engine` and returns the URL it prints on start.
inline std::string spawn_test_engine(Child& engine, const std::string& path,
                                     const std::vector<std::string>& extra_args = {}) {
    std::vector<std::string> args{path, "--port", "0"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    engine.spawn(args, false);
    // "iii-test-engine listening on ws://127.0.0.1:<port>"
    const std::string_view marker = "listening on ";
    for (;;) {
        auto line = engine.read_line(std::chrono::seconds(10));
        if (!line) throw std::runtime_error(path + " did not report its address");
        if (auto at = line->find(marker); at != std::string::npos) return line->substr(at + marker.size());
    }
}

}  // namespace bench
