// Backends for Serial16550: where a guest's serial output goes and where its input comes from.
//   open_serial_file     appends the guest's output to a file
//   stdio_serial_backend writes the guest's output to the VMM's stdout
//   listen_serial_unix   a unix stream socket: one client at a time gets the output and types the input
#pragma once

#include "support/result.h"
#include "vm/devices/serial16550/serial16550.h"

#include <memory>
#include <string>

namespace vmgen::vm {

// A backend that also feeds input to the UART it is attached to, from a thread of its own. It attaches
// itself as that UART's backend when created; destroying it detaches it (set_backend(nullptr)) and stops
// its thread. The UART must outlive it.
class SerialEndpoint : public SerialBackend {
public:
    [[nodiscard]] virtual const std::string& path() const = 0;
    [[nodiscard]] virtual bool client_connected() const = 0;
};

// Appends output to `path` (created 0644 if missing).
Result<std::unique_ptr<SerialBackend>> open_serial_file(const std::string& path);

// Writes output to stdout with unbuffered write(2).
std::unique_ptr<SerialBackend> stdio_serial_backend();

// Listens on a unix stream socket at `path` (a stale socket file there is replaced; the file is removed
// again on destruction). One client at a time: it receives everything the guest transmits while it is
// connected, and what it sends is fed into `uart` with receive(), waiting while the receiver is full.
Result<std::unique_ptr<SerialEndpoint>> listen_serial_unix(const std::string& path, Serial16550& uart);

} // namespace vmgen::vm
