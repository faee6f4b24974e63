#include "tests/guest_runner.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace vmgen::guest_test {

namespace {

void drain(int fd, std::string& into, bool& open)
{
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0)
        into.append(buf, static_cast<size_t>(n));
    else if (n == 0 || (errno != EINTR && errno != EAGAIN))
        open = false;
}

} // namespace

ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout)
{
    ProcessResult r;
    int out_pipe[2];
    int err_pipe[2];
    if (argv.empty() || pipe2(out_pipe, O_CLOEXEC) != 0)
        return r;
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        close(out_pipe[0]);
        close(out_pipe[1]);
        return r;
    }
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    auto start = std::chrono::steady_clock::now();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        int null_fd = open("/dev/null", O_RDONLY);
        if (null_fd >= 0)
            dup2(null_fd, 0);
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        execvp(args[0], args.data());
        dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (pid < 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        return r;
    }
    setpgid(pid, pid); // also from the parent: no race with the kill below
    r.started = true;

    bool out_open = true;
    bool err_open = true;
    auto deadline = start + timeout;
    int status = 0;
    bool reaped = false;
    while (!reaped) {
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            r.timed_out = true;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            reaped = true;
            break;
        }
        pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
        int wait_ms = static_cast<int>(
            std::min<long long>(100, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1));
        if (out_open || err_open) {
            if (!out_open)
                fds[0].fd = -1;
            if (!err_open)
                fds[1].fd = -1;
            if (poll(fds, 2, wait_ms) > 0) {
                if (out_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
                    drain(out_pipe[0], r.out, out_open);
                if (err_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
                    drain(err_pipe[0], r.err, err_open);
            }
        } else {
            usleep(static_cast<useconds_t>(wait_ms) * 1000);
        }
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            reaped = true;
    }
    // Collect what is left in the pipes (the child is gone; grandchildren were killed with the group).
    kill(-pid, SIGKILL);
    for (int i = 0; i < 50 && (out_open || err_open); ++i) {
        pollfd fds[2] = {{out_open ? out_pipe[0] : -1, POLLIN, 0}, {err_open ? err_pipe[0] : -1, POLLIN, 0}};
        if (poll(fds, 2, 20) <= 0)
            break;
        if (out_open && fds[0].revents)
            drain(out_pipe[0], r.out, out_open);
        if (err_open && fds[1].revents)
            drain(err_pipe[0], r.err, err_open);
    }
    close(out_pipe[0]);
    close(err_pipe[0]);

    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (WIFEXITED(status))
        r.exit_status = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        r.signal = WTERMSIG(status);
    return r;
}

std::string guest_path(std::string_view name)
{
    return std::string(VMGEN_GUEST_DIR) + "/" + std::string(name) + ".elf";
}

std::string guest_bzimage_path(std::string_view name)
{
    return std::string(VMGEN_GUEST_DIR) + "/" + std::string(name) + ".bzImage";
}

TempDir::TempDir()
{
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vmgen-guest-test.XXXXXX";
    if (mkdtemp(tmpl.data()))
        m_path = tmpl;
}

TempDir::~TempDir()
{
    if (!m_path.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
}

std::string read_text_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool write_file(const std::string& path, std::string_view bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    return static_cast<bool>(out);
}

std::vector<std::string> guest_lines(std::string_view serial_output)
{
    static constexpr std::string_view prefix = "vmgen-guest: ";
    std::vector<std::string> lines;
    size_t pos = 0;
    while (pos < serial_output.size()) {
        size_t end = serial_output.find('\n', pos);
        if (end == std::string_view::npos)
            end = serial_output.size();
        std::string_view l = serial_output.substr(pos, end - pos);
        while (!l.empty() && (l.back() == '\r' || l.back() == '\0'))
            l.remove_suffix(1);
        size_t at = l.find(prefix); // tolerate firmware noise before the prefix
        if (at != std::string_view::npos)
            lines.emplace_back(l.substr(at + prefix.size()));
        pos = end + 1;
    }
    return lines;
}

bool has_line(const std::vector<std::string>& lines, std::string_view line)
{
    for (const auto& l : lines)
        if (l == line)
            return true;
    return false;
}

std::string find_line(const std::vector<std::string>& lines, std::string_view prefix)
{
    for (const auto& l : lines)
        if (l.starts_with(prefix))
            return l;
    return "";
}

std::string guest_result(const std::vector<std::string>& lines)
{
    std::string r = find_line(lines, "result ");
    return r.empty() ? r : r.substr(7);
}

std::string describe(const ProcessResult& r, std::string_view serial_output)
{
    std::ostringstream s;
    s << "started=" << r.started << " timed_out=" << r.timed_out << " exit_status=" << r.exit_status
      << " signal=" << r.signal << " seconds=" << r.seconds << "\n--- stderr ---\n"
      << r.err << "\n--- stdout ---\n"
      << r.out << "\n--- serial ---\n"
      << serial_output << "\n---";
    return s.str();
}

bool kvm_accessible() { return access("/dev/kvm", R_OK | W_OK) == 0; }

std::string find_in_path(std::string_view name)
{
    const char* path = getenv("PATH");
    std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    size_t pos = 0;
    while (pos <= dirs.size()) {
        size_t end = dirs.find(':', pos);
        if (end == std::string_view::npos)
            end = dirs.size();
        std::string candidate = std::string(dirs.substr(pos, end - pos)) + "/" + std::string(name);
        if (end > pos && access(candidate.c_str(), X_OK) == 0)
            return candidate;
        pos = end + 1;
    }
    return "";
}

} // namespace vmgen::guest_test
