// new-vhd, get-vhd, test-vhd: the commands that work on virtual disk image files (Hyper-V's New-VHD, Get-VHD,
// Test-VHD). The format follows the file's extension: .vhd, .vhdx, anything else raw.
#include "mgmt/cli_internal.h"
#include "mgmt/vm_settings.h"
#include "mgmt/progress_bar.h"
#include "vm/disk/block_device.h"
#include "vm/disk/disk_ops.h"
#include "vm/disk/image_lock.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <memory>
#include <vector>

namespace vmgen::mgmt::cli {
namespace {

using vm::disk::BlockDevice;
using vm::disk::DiskFormat;
using vm::disk::DiskInfo;
using vm::disk::DiskType;

int finish(Result<int> result, std::ostream& err) { return result ? *result : report_error(err, result.error()); }

using vm::disk::format_from_path;
using vm::disk::format_name;
using vm::disk::type_name;

Result<std::unique_ptr<BlockDevice>> open_image(const std::string& path, bool read_only)
{
    return vm::disk::open_disk(path, read_only);
}

Result<std::string> required_positional(const ParsedArgs& parsed, std::string_view command)
{
    if (parsed.positionals.empty())
        return fail("{} needs the path of an image file (see 'vmgen {} --help')", command, command);
    if (parsed.positionals[0].empty())
        return fail("{}: the image path is empty", command);
    return parsed.positionals[0];
}

// ---- new-vhd ----

constexpr OptionSpec new_vhd_options[] = {
    {"size"}, {"fixed", false}, {"dynamic", false}, {"differencing", false}, {"parent"}, {"block-size"},
    {"logical-sector"}};

struct NewVhdRequest {
    std::string path;
    DiskFormat format = DiskFormat::Raw;
    DiskType type = DiskType::Dynamic;
    uint64_t size = 0;
    uint32_t block_size = 0; // 0: the format's default
    uint32_t logical_sector = 512;
    std::string parent;
};

Result<NewVhdRequest> parse_new_vhd(const ParsedArgs& parsed)
{
    NewVhdRequest request;
    request.path = TRY(required_positional(parsed, "new-vhd"));
    request.format = format_from_path(request.path);
    const auto format = format_name(request.format);

    int types = 0;
    for (const char* flag : {"fixed", "dynamic", "differencing"})
        types += parsed.flag(flag) ? 1 : 0;
    if (types > 1)
        return fail("choose one of --fixed, --dynamic and --differencing");
    if (parsed.flag("fixed"))
        request.type = DiskType::Fixed;
    else if (parsed.flag("differencing"))
        request.type = DiskType::Differencing;
    else if (request.format == DiskFormat::Raw) {
        if (parsed.flag("dynamic"))
            return fail("a raw image has no dynamic type (it is created sparse): use .vhd or .vhdx, or drop --dynamic");
        request.type = DiskType::Fixed;
    }

    if (request.type == DiskType::Differencing) {
        if (request.format == DiskFormat::Raw)
            return fail("a raw image cannot be differencing: use a .vhd or .vhdx path");
        const auto* parent = parsed.value("parent");
        if (parent == nullptr || parent->empty())
            return fail("--differencing needs --parent PATH");
        if (parsed.value("size") != nullptr)
            return fail("a differencing disk has its parent's size: drop --size");
        if (parsed.value("block-size") != nullptr)
            return fail("a differencing disk has its parent's block size: drop --block-size");
        std::error_code ec;
        if (!std::filesystem::exists(*parent, ec))
            return fail("parent {}: no such file", *parent);
        if (format_from_path(*parent) != request.format)
            return fail("parent {}: the parent of a differencing {} must be a {} (.{})", *parent, format, format,
                        request.format == DiskFormat::Vhd ? "vhd" : "vhdx");
        request.parent = *parent;
    } else {
        if (parsed.value("parent") != nullptr)
            return fail("--parent is only for --differencing");
        const auto* size = parsed.value("size");
        if (size == nullptr)
            return fail("new-vhd needs --size (e.g. --size 64G)");
        request.size = TRY_CTX(parse_memory_size(*size), "--size");
        if (request.size == 0)
            return fail("--size must not be 0");
    }

    if (const auto* block = parsed.value("block-size")) {
        if (request.format == DiskFormat::Raw)
            return fail("a raw image has no block size: drop --block-size");
        if (request.type == DiskType::Fixed)
            return fail("a fixed {} has no block size: drop --block-size", format);
        auto bytes = TRY_CTX(parse_memory_size(*block), "--block-size");
        if (bytes == 0 || bytes > std::numeric_limits<uint32_t>::max())
            return fail("invalid --block-size '{}'", *block);
        request.block_size = static_cast<uint32_t>(bytes);
    }

    if (const auto* sector = parsed.value("logical-sector")) {
        if (*sector == "512")
            request.logical_sector = 512;
        else if (*sector == "4096")
            request.logical_sector = 4096;
        else
            return fail("invalid --logical-sector '{}': must be 512 or 4096", *sector);
        if (request.logical_sector == 4096 && request.format != DiskFormat::Vhdx)
            return fail("--logical-sector 4096 is only for VHDX: {} images have 512-byte sectors", format);
    }
    if (request.type != DiskType::Differencing && request.size % request.logical_sector != 0)
        return fail("--size must be a multiple of the logical sector size ({} bytes)", request.logical_sector);
    return request;
}

Result<void> create_image(const NewVhdRequest& request)
{
    vm::disk::CreateOptions options;
    options.type = request.type;
    options.size = request.size;
    options.block_size = request.block_size;
    options.logical_sector_size = request.logical_sector;
    options.parent = request.parent;
    return vm::disk::create_disk(request.path, options);
}

// ---- get-vhd ----

nlohmann::json null_if_empty(const std::string& text)
{
    return text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text);
}

nlohmann::json info_json(const std::string& path, const DiskInfo& info)
{
    return {
        {"Path", path},
        {"VhdFormat", std::string(format_name(info.format))},
        {"VhdType", std::string(type_name(info.type))},
        {"FileSize", info.file_size},
        {"Size", info.virtual_size},
        {"MinimumSize", nullptr},
        {"LogicalSectorSize", info.logical_sector_size},
        {"PhysicalSectorSize", info.physical_sector_size},
        {"BlockSize", info.block_size},
        {"ParentPath", null_if_empty(info.parent_path)},
        {"DiskIdentifier", null_if_empty(info.identifier)},
    };
}

// A key : value list, like `Get-VHD | Format-List`.
void print_info_list(std::ostream& out, const std::string& path, const DiskInfo& info)
{
    const std::vector<std::pair<std::string_view, std::string>> rows = {
        {"Path", path},
        {"VhdFormat", std::string(format_name(info.format))},
        {"VhdType", std::string(type_name(info.type))},
        {"FileSize", fmt::format("{}", info.file_size)},
        {"Size", fmt::format("{}", info.virtual_size)},
        {"LogicalSectorSize", fmt::format("{}", info.logical_sector_size)},
        {"PhysicalSectorSize", fmt::format("{}", info.physical_sector_size)},
        {"BlockSize", fmt::format("{}", info.block_size)},
        {"ParentPath", info.parent_path},
        {"DiskIdentifier", info.identifier},
    };
    size_t width = 0;
    for (const auto& row : rows)
        width = std::max(width, row.first.size());
    for (const auto& row : rows) {
        std::string line = fmt::format("{:<{}} : {}", row.first, width, row.second);
        while (!line.empty() && line.back() == ' ')
            line.pop_back();
        out << line << '\n';
    }
}

std::string display_path(const std::string& path)
{
    std::error_code ec;
    auto absolute = std::filesystem::absolute(path, ec);
    return ec ? path : absolute.lexically_normal().string();
}

Result<int> new_vhd(std::span<const std::string> args, std::ostream& out)
{
    auto parsed = TRY(parse_args("new-vhd", args, new_vhd_options, 0, 1));
    if (parsed.help) {
        print_command_help(out, "new-vhd");
        return exit_ok;
    }
    auto request = TRY(parse_new_vhd(parsed));
    std::error_code ec;
    if (std::filesystem::symlink_status(request.path, ec).type() != std::filesystem::file_type::not_found)
        return fail("{} already exists", request.path);
    if (auto created = create_image(request); !created) {
        // The formats remove what they made; make sure nothing is left behind either way.
        if (std::filesystem::symlink_status(request.path, ec).type() != std::filesystem::file_type::not_found)
            std::filesystem::remove(request.path, ec);
        return fail(created.error());
    }
    auto device = open_image(request.path, true);
    if (!device) {
        std::filesystem::remove(request.path, ec);
        return fail(device.error().with_context("checking the new image"));
    }
    print_info_list(out, display_path(request.path), (*device)->info());
    return exit_ok;
}

constexpr OptionSpec get_vhd_options[] = {{"format"}};

Result<int> get_vhd(std::span<const std::string> args, std::ostream& out)
{
    auto parsed = TRY(parse_args("get-vhd", args, get_vhd_options, 0, 1));
    if (parsed.help) {
        print_command_help(out, "get-vhd");
        return exit_ok;
    }
    std::string format = "table";
    if (const auto* value = parsed.value("format")) {
        if (*value != "table" && *value != "json")
            return fail("invalid format '{}': must be table or json", *value);
        format = *value;
    }
    auto path = TRY(required_positional(parsed, "get-vhd"));
    auto device = TRY(open_image(path, true));
    if (format == "json")
        out << info_json(display_path(path), device->info()).dump(2) << '\n';
    else
        print_info_list(out, display_path(path), device->info());
    return exit_ok;
}

Result<int> test_vhd(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                     const CliContext& context)
{
    auto parsed = TRY(parse_args("test-vhd", args, {}, 0, 1));
    if (parsed.help) {
        print_command_help(out, "test-vhd");
        return exit_ok;
    }
    auto path = TRY(required_positional(parsed, "test-vhd"));
    ProgressBar bar(err, context.show_progress, "Checking");
    auto checked = vm::disk::check_disk(path, bar.callback());
    bar.finish();
    if (!checked) {
        err << "vmgen: error: " << checked.error().message() << '\n';
        return exit_error;
    }
    out << path << ": OK\n";
    return exit_ok;
}

// ---- convert-vhd ----

constexpr OptionSpec convert_vhd_options[] = {{"vhd-type"}, {"block-size"}, {"logical-sector"}};

Result<int> convert_vhd(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                        const CliContext& context)
{
    auto parsed = TRY(parse_args("convert-vhd", args, convert_vhd_options, 0, 2));
    if (parsed.help) {
        print_command_help(out, "convert-vhd");
        return exit_ok;
    }
    if (parsed.positionals.size() != 2 || parsed.positionals[0].empty() || parsed.positionals[1].empty())
        return fail("convert-vhd needs a source and a destination path (see 'vmgen convert-vhd --help')");
    const std::string& source = parsed.positionals[0];
    const std::string& destination = parsed.positionals[1];
    const DiskFormat format = format_from_path(destination);

    vm::disk::ConvertOptions options;
    if (const auto* type = parsed.value("vhd-type")) {
        std::string lower = *type;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
        if (lower == "fixed")
            options.type = DiskType::Fixed;
        else if (lower == "dynamic")
            options.type = DiskType::Dynamic;
        else
            return fail("invalid --vhd-type '{}': must be fixed or dynamic", *type);
        if (format == DiskFormat::Raw && options.type == DiskType::Dynamic)
            return fail("a raw image has no dynamic type (it is written sparse): use .vhd or .vhdx, or drop --vhd-type");
    }
    if (const auto* block = parsed.value("block-size")) {
        auto bytes = TRY_CTX(parse_memory_size(*block), "--block-size");
        if (bytes == 0 || bytes > std::numeric_limits<uint32_t>::max())
            return fail("invalid --block-size '{}'", *block);
        options.block_size = static_cast<uint32_t>(bytes);
    }
    if (const auto* sector = parsed.value("logical-sector")) {
        if (*sector != "512" && *sector != "4096")
            return fail("invalid --logical-sector '{}': must be 512 or 4096", *sector);
        options.logical_sector_size = *sector == "512" ? 512U : 4096U;
    }
    std::error_code ec;
    if (std::filesystem::symlink_status(destination, ec).type() != std::filesystem::file_type::not_found)
        return fail("{} already exists", destination);

    // The source must not change under the copy (a running VM writing it).
    auto source_lock = TRY(vm::disk::lock_image(source, vm::disk::LockMode::Shared));
    ProgressBar bar(err, context.show_progress, "Converting");
    auto converted = vm::disk::convert_disk(source, destination, options, bar.callback());
    bar.finish();
    TRY(std::move(converted));
    auto device = TRY_CTX(open_image(destination, true), "checking {}", destination);
    print_info_list(out, display_path(destination), device->info());
    return exit_ok;
}

// ---- resize-vhd ----

constexpr OptionSpec resize_vhd_options[] = {{"size"}, {"allow-data-loss", false}};

Result<int> resize_vhd(std::span<const std::string> args, std::ostream& out)
{
    auto parsed = TRY(parse_args("resize-vhd", args, resize_vhd_options, 0, 1));
    if (parsed.help) {
        print_command_help(out, "resize-vhd");
        return exit_ok;
    }
    auto path = TRY(required_positional(parsed, "resize-vhd"));
    const auto* size = parsed.value("size");
    if (size == nullptr)
        return fail("resize-vhd needs --size (e.g. --size 128G)");
    const uint64_t bytes = TRY_CTX(parse_memory_size(*size), "--size");
    if (bytes == 0)
        return fail("--size must not be 0");
    {
        auto lock = TRY(vm::disk::lock_image(path, vm::disk::LockMode::Exclusive));
        TRY(vm::disk::resize_disk(path, bytes, parsed.flag("allow-data-loss")));
    }
    auto device = TRY_CTX(open_image(path, true), "checking {}", path);
    print_info_list(out, display_path(path), device->info());
    return exit_ok;
}

// ---- merge-vhd ----

Result<int> merge_vhd(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                      const CliContext& context)
{
    auto parsed = TRY(parse_args("merge-vhd", args, {}, 0, 1));
    if (parsed.help) {
        print_command_help(out, "merge-vhd");
        return exit_ok;
    }
    auto path = TRY(required_positional(parsed, "merge-vhd"));
    // The merge writes the parent and deletes the child: nobody else may use either (the parent's own parents
    // are only read).
    auto child_lock = TRY(vm::disk::lock_image(path, vm::disk::LockMode::Exclusive, /*parents=*/false));
    std::string parent_path = TRY(open_image(path, true))->info().parent_path;
    vm::disk::ImageLock parent_lock;
    if (!parent_path.empty())
        parent_lock = TRY(vm::disk::lock_image(parent_path, vm::disk::LockMode::Exclusive));
    ProgressBar bar(err, context.show_progress, "Merging");
    auto merged = vm::disk::merge_disk(path, bar.callback());
    bar.finish();
    const std::string parent = TRY(std::move(merged));
    auto device = TRY_CTX(open_image(parent, true), "checking {}", parent);
    print_info_list(out, display_path(parent), device->info());
    return exit_ok;
}

// ---- optimize-vhd ----

Result<int> optimize_vhd(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                         const CliContext& context)
{
    auto parsed = TRY(parse_args("optimize-vhd", args, {}, 0, 1));
    if (parsed.help) {
        print_command_help(out, "optimize-vhd");
        return exit_ok;
    }
    auto path = TRY(required_positional(parsed, "optimize-vhd"));
    auto lock = TRY(vm::disk::lock_image(path, vm::disk::LockMode::Exclusive));
    ProgressBar bar(err, context.show_progress, "Optimizing");
    auto optimized = vm::disk::optimize_disk(path, bar.callback());
    bar.finish();
    lock = {};
    const auto report = TRY(std::move(optimized));
    auto device = TRY_CTX(open_image(path, true), "checking {}", path);
    print_info_list(out, display_path(path), device->info());
    out << fmt::format("FileSizeBefore     : {}\n", report.file_size_before);
    return exit_ok;
}

} // namespace

int cmd_new_vhd(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext&)
{
    return finish(new_vhd(args, out), err);
}

int cmd_get_vhd(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext&)
{
    return finish(get_vhd(args, out), err);
}

int cmd_test_vhd(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context)
{
    return finish(test_vhd(args, out, err, context), err);
}

int cmd_convert_vhd(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                    const CliContext& context)
{
    return finish(convert_vhd(args, out, err, context), err);
}

int cmd_resize_vhd(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext&)
{
    return finish(resize_vhd(args, out), err);
}

int cmd_merge_vhd(std::span<const std::string> args, std::ostream& out, std::ostream& err, const CliContext& context)
{
    return finish(merge_vhd(args, out, err, context), err);
}

int cmd_optimize_vhd(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                     const CliContext& context)
{
    return finish(optimize_vhd(args, out, err, context), err);
}

} // namespace vmgen::mgmt::cli
