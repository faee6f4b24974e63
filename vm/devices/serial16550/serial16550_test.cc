#include "vm/devices/serial16550/serial16550.h"
#include "vm/io/recording_line.h"

#include "vm/devices/serial16550/backends.h"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace vmgen::vm {
namespace {

using S = Serial16550;

using FakeLine = RecordingLine;

class RecordingBackend final : public SerialBackend {
public:
    void write_bytes(std::span<const uint8_t> bytes) override
    {
        std::lock_guard lock(m_lock);
        m_bytes.insert(m_bytes.end(), bytes.begin(), bytes.end());
    }
    std::string text() const
    {
        std::lock_guard lock(m_lock);
        return std::string(m_bytes.begin(), m_bytes.end());
    }

private:
    mutable std::mutex m_lock;
    std::vector<uint8_t> m_bytes;
};

class SerialTest : public ::testing::Test {
protected:
    uint8_t rd(uint8_t reg)
    {
        std::array<uint8_t, 1> b {};
        uart.read(reg, b);
        return b[0];
    }
    void wr(uint8_t reg, uint8_t value)
    {
        const std::array<uint8_t, 1> b { value };
        uart.write(reg, b);
    }
    void feed(const std::string& s)
    {
        const auto n = uart.receive(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
        ASSERT_EQ(n, s.size());
    }

    FakeLine line;
    RecordingBackend backend;
    Serial16550 uart { line, &backend, "com1" };
};

TEST_F(SerialTest, ResetValues)
{
    EXPECT_EQ(rd(S::reg_ier), 0);
    EXPECT_EQ(rd(S::reg_iir), S::iir_no_interrupt);
    EXPECT_EQ(rd(S::reg_lcr), 0);
    EXPECT_EQ(rd(S::reg_mcr), 0);
    EXPECT_EQ(rd(S::reg_lsr), S::lsr_thre | S::lsr_temt);
    EXPECT_EQ(rd(S::reg_msr), S::msr_cts | S::msr_dsr | S::msr_dcd);
    EXPECT_EQ(uart.rx_space(), 1u);
}

TEST_F(SerialTest, TransmitGoesToBackend)
{
    for (char c : std::string("hi\n"))
        wr(S::reg_data, static_cast<uint8_t>(c));
    EXPECT_EQ(backend.text(), "hi\n");
    EXPECT_EQ(rd(S::reg_lsr) & (S::lsr_thre | S::lsr_temt), S::lsr_thre | S::lsr_temt);
}

TEST_F(SerialTest, DivisorLatch)
{
    wr(S::reg_lcr, S::lcr_dlab | 0x03);
    wr(S::reg_data, 0x01);
    wr(S::reg_ier, 0x02);
    EXPECT_EQ(rd(S::reg_data), 0x01);
    EXPECT_EQ(rd(S::reg_ier), 0x02);
    EXPECT_EQ(uart.divisor(), 0x0201);
    EXPECT_TRUE(backend.text().empty()); // DLL write is not a transmit
    wr(S::reg_lcr, 0x03);
    EXPECT_EQ(rd(S::reg_lcr), 0x03);
    EXPECT_EQ(rd(S::reg_ier), 0); // IER untouched by the DLM write
    wr(S::reg_ier, 0xff);
    EXPECT_EQ(rd(S::reg_ier), 0x0f);
    wr(S::reg_scr, 0x5a);
    EXPECT_EQ(rd(S::reg_scr), 0x5a);
}

TEST_F(SerialTest, ReceiveWithoutFifoHoldsOneByte)
{
    EXPECT_EQ(uart.receive(std::array<uint8_t, 3> { 'a', 'b', 'c' }), 1u);
    EXPECT_EQ(uart.rx_space(), 0u);
    EXPECT_EQ(rd(S::reg_lsr) & S::lsr_dr, S::lsr_dr);
    EXPECT_EQ(rd(S::reg_data), 'a');
    EXPECT_EQ(rd(S::reg_lsr) & S::lsr_dr, 0);
    EXPECT_EQ(rd(S::reg_data), 'a'); // empty receiver: last character again
    EXPECT_EQ(uart.rx_space(), 1u);
}

TEST_F(SerialTest, FifoTriggerLevelsAndTimeout)
{
    wr(S::reg_iir, S::fcr_enable | 0x80); // trigger level 8
    EXPECT_EQ(uart.rx_space(), 16u);
    wr(S::reg_ier, S::ier_rx_data);
    EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_no_interrupt);
    feed("1234");
    EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_rx_timeout);
    feed("5678");
    EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_rx_data);
    EXPECT_EQ(rd(S::reg_data), '1');
    EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_rx_timeout);

    // 16 bytes is all the FIFO takes.
    const std::string many(20, 'x');
    EXPECT_EQ(uart.receive(std::span(reinterpret_cast<const uint8_t*>(many.data()), many.size())), 9u);
    EXPECT_EQ(uart.rx_space(), 0u);

    // Trigger levels 1, 4 and 14.
    const std::array<std::pair<uint8_t, size_t>, 3> levels { { { 0x00, 1 }, { 0x40, 4 }, { 0xc0, 14 } } };
    for (const auto& [bits, level] : levels) {
        wr(S::reg_iir, static_cast<uint8_t>(S::fcr_enable | S::fcr_clear_rx | bits));
        EXPECT_EQ(rd(S::reg_lsr) & S::lsr_dr, 0);
        for (size_t i = 1; i < level; ++i) {
            feed("y");
            EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_rx_timeout) << level;
        }
        feed("z");
        EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_rx_data) << level;
    }

    // Disabling the FIFOs empties them and drops the IIR FIFO bits.
    wr(S::reg_iir, 0);
    EXPECT_EQ(rd(S::reg_lsr) & S::lsr_dr, 0);
    EXPECT_EQ(rd(S::reg_iir), S::iir_no_interrupt);
    EXPECT_EQ(uart.rx_space(), 1u);
}

TEST_F(SerialTest, ThreInterruptSemantics)
{
    wr(S::reg_mcr, S::mcr_out2);
    EXPECT_TRUE(line.levels().empty());
    // Enabling ETBEI with THR empty raises it.
    wr(S::reg_ier, S::ier_thre);
    EXPECT_TRUE(line.high());
    EXPECT_EQ(rd(S::reg_iir), S::iir_thre);
    // Reading IIR while THRE is the source clears it.
    EXPECT_FALSE(line.high());
    EXPECT_EQ(rd(S::reg_iir), S::iir_no_interrupt);
    // Writing THR: the byte leaves and THRE is pending again.
    wr(S::reg_data, 'x');
    EXPECT_TRUE(line.high());
    EXPECT_EQ(rd(S::reg_iir), S::iir_thre);
    // A THR write while pending clears and re-raises: a fresh edge.
    wr(S::reg_data, 'y');
    line.clear();
    wr(S::reg_data, 'z');
    EXPECT_EQ(line.levels(), (std::vector<bool> { false, true }));
    // Disabling ETBEI drops the line.
    wr(S::reg_ier, 0);
    EXPECT_FALSE(line.high());
    EXPECT_EQ(backend.text(), "xyz");
}

TEST_F(SerialTest, InterruptPriorities)
{
    wr(S::reg_iir, S::fcr_enable); // trigger level 1
    wr(S::reg_mcr, S::mcr_out2 | S::mcr_loop | S::mcr_dtr);
    wr(S::reg_ier, S::ier_rx_data | S::ier_thre | S::ier_line_status | S::ier_modem_status);
    // Modem status (CTS dropped on entering loopback: RTS is clear) < THRE < RX data < line status.
    for (int i = 0; i < 17; ++i)
        wr(S::reg_data, static_cast<uint8_t>('a' + i)); // the 17th overruns the FIFO
    EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_line_status);
    EXPECT_EQ(rd(S::reg_lsr), S::lsr_oe | S::lsr_dr | S::lsr_thre | S::lsr_temt);
    EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_rx_data);
    for (int i = 0; i < 16; ++i)
        EXPECT_EQ(rd(S::reg_data), 'a' + i);
    EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_thre);
    EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_modem_status);
    EXPECT_EQ(rd(S::reg_msr) & 0x0f, S::msr_dcts);
    EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_no_interrupt);
}

TEST_F(SerialTest, Out2GatesTheLine)
{
    wr(S::reg_ier, S::ier_rx_data);
    feed("a");
    EXPECT_TRUE(line.levels().empty()); // pending, but OUT2 is clear
    EXPECT_EQ(rd(S::reg_iir), S::iir_rx_data);
    wr(S::reg_mcr, S::mcr_out2);
    EXPECT_EQ(line.levels(), std::vector<bool> { true });
    wr(S::reg_mcr, 0);
    EXPECT_EQ(line.levels(), (std::vector<bool> { true, false }));
    wr(S::reg_mcr, S::mcr_out2);
    EXPECT_TRUE(line.high());
    EXPECT_EQ(rd(S::reg_data), 'a');
    EXPECT_EQ(line.levels(), (std::vector<bool> { true, false, true, false }));
    // Setting the same level again does not call set_level.
    wr(S::reg_mcr, S::mcr_out2 | S::mcr_dtr);
    EXPECT_EQ(line.levels().size(), 4u);
}

TEST_F(SerialTest, LoopbackReturnsBytesAndMapsModemLines)
{
    wr(S::reg_iir, S::fcr_enable);
    wr(S::reg_mcr, S::mcr_loop);
    EXPECT_EQ(rd(S::reg_msr), S::msr_dcts | S::msr_ddsr | S::msr_ddcd); // all inputs dropped
    wr(S::reg_mcr, S::mcr_loop | S::mcr_rts);
    EXPECT_EQ(rd(S::reg_msr), S::msr_cts | S::msr_dcts);
    wr(S::reg_mcr, S::mcr_loop | S::mcr_dtr | S::mcr_out1 | S::mcr_out2);
    EXPECT_EQ(rd(S::reg_msr), S::msr_dsr | S::msr_ri | S::msr_dcd | S::msr_dcts | S::msr_ddsr | S::msr_ddcd);
    wr(S::reg_mcr, S::mcr_loop | S::mcr_dtr | S::mcr_out2); // RI trailing edge
    EXPECT_EQ(rd(S::reg_msr), S::msr_dsr | S::msr_dcd | S::msr_teri);

    wr(S::reg_data, 0x55);
    wr(S::reg_data, 0xaa);
    EXPECT_TRUE(backend.text().empty());
    EXPECT_EQ(rd(S::reg_lsr) & S::lsr_dr, S::lsr_dr);
    EXPECT_EQ(rd(S::reg_data), 0x55);
    EXPECT_EQ(rd(S::reg_data), 0xaa);

    // The outside is disconnected.
    EXPECT_EQ(uart.rx_space(), 0u);
    EXPECT_EQ(uart.receive(std::array<uint8_t, 1> { 'q' }), 0u);

    // Interrupts are pending but the OUT2 pin is forced inactive in loopback.
    wr(S::reg_ier, S::ier_rx_data);
    wr(S::reg_data, 1);
    EXPECT_EQ(rd(S::reg_iir), S::iir_fifo_enabled | S::iir_rx_data); // trigger level 1
    EXPECT_TRUE(line.levels().empty());
    wr(S::reg_mcr, S::mcr_out2);
    EXPECT_TRUE(line.high());
    EXPECT_EQ(uart.rx_space(), 15u);
}

TEST_F(SerialTest, OverrunWithoutFifoReplacesCharacter)
{
    wr(S::reg_mcr, S::mcr_loop);
    wr(S::reg_data, 'a');
    wr(S::reg_data, 'b');
    EXPECT_EQ(rd(S::reg_lsr), S::lsr_oe | S::lsr_dr | S::lsr_thre | S::lsr_temt);
    EXPECT_EQ(rd(S::reg_lsr), S::lsr_dr | S::lsr_thre | S::lsr_temt); // OE cleared by reading
    EXPECT_EQ(rd(S::reg_data), 'b');
}

TEST_F(SerialTest, ModemInputChangesRaiseModemStatus)
{
    wr(S::reg_mcr, S::mcr_out2);
    wr(S::reg_ier, S::ier_modem_status);
    EXPECT_FALSE(line.high());
    uart.set_modem_inputs(S::msr_cts | S::msr_dsr);
    EXPECT_TRUE(line.high());
    EXPECT_EQ(rd(S::reg_iir), S::iir_modem_status);
    EXPECT_EQ(rd(S::reg_msr), S::msr_cts | S::msr_dsr | S::msr_ddcd);
    EXPECT_FALSE(line.high());
}

TEST_F(SerialTest, OddAccessesAreHarmless)
{
    std::array<uint8_t, 8> wide {};
    uart.read(8, wide);
    EXPECT_EQ(io_value(wide), ~0ull);
    uart.read(~0ull, wide);
    EXPECT_EQ(io_value(wide), ~0ull);
    // A 16-bit read at 6 covers MSR and SCR; past the end reads all ones.
    wr(S::reg_scr, 0x42);
    std::array<uint8_t, 4> dword {};
    uart.read(6, dword);
    EXPECT_EQ(dword[1], 0x42);
    EXPECT_EQ(dword[2], 0xff);
    EXPECT_EQ(dword[3], 0xff);
    const std::array<uint8_t, 4> junk { 1, 2, 3, 4 };
    uart.write(0x1000, junk);
    uart.write(~0ull - 1, junk);
    wr(S::reg_lsr, 0xff);
    EXPECT_EQ(rd(S::reg_lsr), S::lsr_thre | S::lsr_temt);
    EXPECT_TRUE(backend.text().empty());
}

TEST_F(SerialTest, DisconnectedPortDropsOutput)
{
    uart.set_backend(nullptr);
    wr(S::reg_data, 'x');
    EXPECT_TRUE(backend.text().empty());
    EXPECT_EQ(rd(S::reg_lsr) & S::lsr_thre, S::lsr_thre);
}

std::string temp_path(const char* tag)
{
    return fmt::format("/tmp/vmgen-serial-test-{}-{}", tag, ::getpid());
}

TEST(SerialBackends, FileBackendAppends)
{
    const std::string path = temp_path("file");
    ::unlink(path.c_str());
    {
        std::ofstream(path) << "before:";
    }
    {
        auto backend = open_serial_file(path);
        ASSERT_TRUE(backend) << backend.error().message();
        FakeLine line;
        Serial16550 uart(line, backend->get());
        for (char c : std::string("boot ok"))
            uart.write(0, std::array<uint8_t, 1> { static_cast<uint8_t>(c) });
    }
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str(), "before:boot ok");
    ::unlink(path.c_str());

    EXPECT_FALSE(open_serial_file("/nonexistent-dir/x/y"));
}

TEST(SerialBackends, StdioBackendWrites)
{
    auto backend = stdio_serial_backend();
    ASSERT_NE(backend, nullptr);
    const std::string s = "[serial stdio backend test]\n";
    backend->write_bytes(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

int connect_unix(const std::string& path)
{
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) < 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

template <typename F> bool wait_until(F condition)
{
    for (int i = 0; i < 2000; ++i) {
        if (condition())
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return condition();
}

TEST(SerialBackends, UnixSocketRoundTrip)
{
    const std::string path = temp_path("sock");
    FakeLine line;
    Serial16550 uart(line);
    auto endpoint = listen_serial_unix(path, uart);
    ASSERT_TRUE(endpoint) << endpoint.error().message();
    EXPECT_EQ((*endpoint)->path(), path);
    EXPECT_FALSE((*endpoint)->client_connected());

    const int fd = connect_unix(path);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(wait_until([&] { return (*endpoint)->client_connected(); }));

    // Guest output reaches the client.
    for (char c : std::string("login: "))
        uart.write(0, std::array<uint8_t, 1> { static_cast<uint8_t>(c) });
    std::string got;
    std::array<char, 64> buf {};
    while (got.size() < 7) {
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        ASSERT_GT(n, 0);
        got.append(buf.data(), static_cast<size_t>(n));
    }
    EXPECT_EQ(got, "login: ");

    // Client input reaches the guest, 40 bytes through a 16-byte FIFO: the endpoint waits for room.
    const std::array<uint8_t, 1> fcr { Serial16550::fcr_enable };
    uart.write(Serial16550::reg_iir, fcr);
    std::string sent;
    for (int i = 0; i < 40; ++i)
        sent.push_back(static_cast<char>('A' + i % 26));
    ASSERT_EQ(::send(fd, sent.data(), sent.size(), 0), static_cast<ssize_t>(sent.size()));
    std::string received;
    ASSERT_TRUE(wait_until([&] {
        std::array<uint8_t, 1> lsr {};
        uart.read(Serial16550::reg_lsr, lsr);
        while ((lsr[0] & Serial16550::lsr_dr) != 0) {
            std::array<uint8_t, 1> b {};
            uart.read(Serial16550::reg_data, b);
            received.push_back(static_cast<char>(b[0]));
            uart.read(Serial16550::reg_lsr, lsr);
        }
        return received.size() >= sent.size();
    }));
    EXPECT_EQ(received, sent);

    // The client goes away; a new one can connect.
    ::close(fd);
    ASSERT_TRUE(wait_until([&] { return !(*endpoint)->client_connected(); }));
    const int fd2 = connect_unix(path);
    ASSERT_GE(fd2, 0);
    ASSERT_TRUE(wait_until([&] { return (*endpoint)->client_connected(); }));
    uart.write(0, std::array<uint8_t, 1> { '!' });
    char c = 0;
    ASSERT_EQ(::recv(fd2, &c, 1, 0), 1);
    EXPECT_EQ(c, '!');

    // Shutting down with a client connected and input waiting for room in the receiver.
    const std::string more(64, 'm');
    ASSERT_EQ(::send(fd2, more.data(), more.size(), 0), static_cast<ssize_t>(more.size()));
    endpoint->reset();
    EXPECT_NE(::access(path.c_str(), F_OK), 0); // socket file removed
    uart.write(0, std::array<uint8_t, 1> { 'x' }); // detached: goes nowhere
    ::close(fd2);
}

TEST(SerialBackends, UnixSocketRefusesNonSocketPath)
{
    const std::string path = temp_path("plain");
    {
        std::ofstream(path) << "x";
    }
    FakeLine line;
    Serial16550 uart(line);
    EXPECT_FALSE(listen_serial_unix(path, uart));
    EXPECT_FALSE(listen_serial_unix(std::string(200, 'a'), uart));
    ::unlink(path.c_str());
}

} // namespace
} // namespace vmgen::vm
