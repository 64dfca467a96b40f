/**
 * @file tensorpool.hpp
 * @brief Header-only C++20 API of tensorpool, on the C ABI of tensorpool.h.
 *
 * - RAII, move-only handles: Context, TensorSpec, Producer, Claim, Consumer, Driver,
 *   IdleStrategy.
 * - Zero-copy views: Claim::bytes() / Claim::as<T>() write the shared-memory slot in place;
 *   Frame::bytes() / Frame::values<T>() read it in place (std::span).
 * - Errors are exceptions (tensorpool::Error: code + message); the try_* functions return
 *   a tensorpool::Result<T> instead, for hot paths that must not throw.
 * - Consumer::poll takes any callable `void(const Frame&)`; it is passed through the C
 *   callback's `void*`, and an exception it throws is rethrown after the poll returns.
 *
 * @code
 * tensorpool::Context ctx = tensorpool::Context::embedded();
 * tensorpool::Producer producer(ctx, tensorpool::ProducerOptions(10000).standalone("/dev/shm/tp"));
 * tensorpool::TensorSpec spec(tensorpool::Dtype::Uint16, {480, 640});
 * tensorpool::Claim claim = producer.claim(spec);
 * for (auto& px : claim.as<std::uint16_t>()) px = 0;
 * claim.commit();
 * @endcode
 */
#pragma once

// C++20 or later (std::span is the view type throughout): fail early with one clear message.
// MSVC reports __cplusplus as 199711L unless /Zc:__cplusplus is given; _MSVC_LANG is right.
#if defined(_MSVC_LANG) && _MSVC_LANG > __cplusplus
#define TENSORPOOL_CPLUSPLUS_ _MSVC_LANG
#else
#define TENSORPOOL_CPLUSPLUS_ __cplusplus
#endif
#if TENSORPOOL_CPLUSPLUS_ < 202002L
#error "tensorpool.hpp requires C++20 or later (compile with -std=c++20, or /std:c++20 on MSVC); from C or an older C++ standard, include tensorpool.h, the C API, instead"
#endif
#undef TENSORPOOL_CPLUSPLUS_

#include <tensorpool.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
// issue 18 (types, lifetimes, logging, std::expected, std::mdspan)
#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>
#include <version>
#if __has_include(<expected>)
#include <expected>
#endif
#if __has_include(<mdspan>)
#include <mdspan>
#endif

namespace tensorpool {

/// Status codes of the C API (tp_status).
enum class Status : int {
    Ok = TP_OK,
    Null = TP_ERR_NULL,
    InvalidHandle = TP_ERR_INVALID_HANDLE,
    InvalidArgument = TP_ERR_INVALID_ARGUMENT,
    Config = TP_ERR_CONFIG,
    Aeron = TP_ERR_AERON,
    Attach = TP_ERR_ATTACH,
    Shm = TP_ERR_SHM,
    RegionInvalid = TP_ERR_REGION_INVALID,
    NoRegions = TP_ERR_NO_REGIONS,
    NoPoolFits = TP_ERR_NO_POOL_FITS,
    State = TP_ERR_STATE,
    Late = TP_ERR_LATE,
    BufferTooSmall = TP_ERR_BUFFER_TOO_SMALL,
    Timeout = TP_ERR_TIMEOUT,
    Io = TP_ERR_IO,
    Panic = TP_ERR_PANIC,
    MediaDriverLost = TP_ERR_MEDIA_DRIVER_LOST,
};

/// The name of a status (`"TP_ERR_TIMEOUT"`).
inline std::string_view status_name(Status s) noexcept { return tp_status_name(static_cast<int>(s)); }

/// Element type of a tensor.
enum class Dtype : std::uint32_t {
    Uint8 = TP_DTYPE_UINT8, Int8 = TP_DTYPE_INT8, Uint16 = TP_DTYPE_UINT16,
    Int16 = TP_DTYPE_INT16, Uint32 = TP_DTYPE_UINT32, Int32 = TP_DTYPE_INT32,
    Uint64 = TP_DTYPE_UINT64, Int64 = TP_DTYPE_INT64, Float32 = TP_DTYPE_FLOAT32,
    Float64 = TP_DTYPE_FLOAT64, Boolean = TP_DTYPE_BOOLEAN, Bytes = TP_DTYPE_BYTES,
    Bit = TP_DTYPE_BIT,
};

/// Bytes per element (0 for an unknown value).
inline std::size_t dtype_size(Dtype d) noexcept { return tp_dtype_size(static_cast<std::uint32_t>(d)); }
/// Short name: `"u16"`, `"f32"`, ...
inline std::string_view dtype_name(Dtype d) noexcept { return tp_dtype_name(static_cast<std::uint32_t>(d)); }

/// The Dtype of a C++ arithmetic type (`dtype_of<float>() == Dtype::Float32`).
template <class T>
constexpr Dtype dtype_of() noexcept {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, bool>) return Dtype::Boolean;
    else if constexpr (std::is_same_v<U, float>) return Dtype::Float32;
    else if constexpr (std::is_same_v<U, double>) return Dtype::Float64;
    else if constexpr (std::is_integral_v<U> && sizeof(U) == 1) return std::is_signed_v<U> ? Dtype::Int8 : Dtype::Uint8;
    else if constexpr (std::is_integral_v<U> && sizeof(U) == 2) return std::is_signed_v<U> ? Dtype::Int16 : Dtype::Uint16;
    else if constexpr (std::is_integral_v<U> && sizeof(U) == 4) return std::is_signed_v<U> ? Dtype::Int32 : Dtype::Uint32;
    else if constexpr (std::is_integral_v<U> && sizeof(U) == 8) return std::is_signed_v<U> ? Dtype::Int64 : Dtype::Uint64;
    else if constexpr (std::is_same_v<U, std::byte>) return Dtype::Bytes;
    else static_assert(sizeof(U) == 0, "no tensorpool dtype for this type");
}

namespace detail {
/// The Dtype of T, or nothing for a type without one (a SFINAE-free dtype_of).
template <class T>
constexpr std::optional<Dtype> dtype_opt() noexcept {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, bool> || std::is_same_v<U, float> || std::is_same_v<U, double> ||
                  std::is_same_v<U, std::byte> || (std::is_integral_v<U> && sizeof(U) <= 8))
        return dtype_of<U>();
    else
        return std::nullopt;
}
}  // namespace detail

/// Whether elements of T may view a tensor of dtype `d`: T's own dtype (`std::uint16_t` for
/// Uint16, never `std::int16_t`), or any one-byte type for Bytes, or `std::byte` for the
/// 8-bit integer dtypes (raw bytes).
template <class T>
constexpr bool dtype_accepts(Dtype d) noexcept {
    using U = std::remove_cv_t<T>;
    if (d == Dtype::Bytes) return sizeof(U) == 1;
    if (std::is_same_v<U, std::byte>) return d == Dtype::Uint8 || d == Dtype::Int8;
    constexpr std::optional<Dtype> own = detail::dtype_opt<U>();
    return own.has_value() && *own == d;
}

/// Memory order of a tensor's dimensions.
enum class MajorOrder : std::uint32_t { Row = TP_ORDER_ROW, Column = TP_ORDER_COLUMN };
/// Consumer delivery mode.
enum class Mode : std::uint32_t { Stream = TP_MODE_STREAM, RateLimited = TP_MODE_RATE_LIMITED };
/// Where a consumer stands.
enum class ConsumerState : std::uint32_t {
    Unmapped = TP_CONSUMER_UNMAPPED, Mapped = TP_CONSUMER_MAPPED, Fallback = TP_CONSUMER_FALLBACK,
};

/// An error of the library: the C status code and its one-line message (`what()`).
class Error : public std::runtime_error {
public:
    Error(Status code, const std::string& message) : std::runtime_error(message), code_(code) {}
    /// The status code.
    Status code() const noexcept { return code_; }

private:
    Status code_;
};

namespace detail {
/// The Error of a failed C call (its message is read from tp_last_error()).
inline Error error_of(tp_status s) { return Error(static_cast<Status>(s), tp_last_error()); }
/// Throws the Error of a failed C call.
inline void check(tp_status s) {
    if (s != TP_OK) throw error_of(s);
}
inline const char* c_str_or_null(const std::string& s) noexcept { return s.empty() ? nullptr : s.c_str(); }
inline std::uint64_t ms(std::chrono::milliseconds d) noexcept {
    return d.count() <= 0 ? 0 : static_cast<std::uint64_t>(d.count());
}
/// Reads a string through a `(buf, cap, len)` C function.
template <class F>
std::string read_string(F&& f) {
    std::size_t len = 0;
    check(f(nullptr, 0, &len));
    std::string s(len, '\0');
    check(f(s.data(), len + 1, &len));
    return s;
}
}  // namespace detail

#if defined(__cpp_lib_expected) && __cpp_lib_expected >= 202202L
#define TENSORPOOL_RESULT_IS_EXPECTED 1
/**
 * Either a value or an Error: `std::expected<T, Error>` (C++23) with `ok()` and `code()`;
 * `value()` throws the Error itself (not `std::bad_expected_access`).
 */
template <class T>
class [[nodiscard]] Result : public std::expected<T, Error> {
    using Base = std::expected<T, Error>;

public:
    Result(T value) : Base(std::move(value)) {}
    Result(Error error) : Base(std::unexpect, std::move(error)) {}
    /// Whether a value is held.
    bool ok() const noexcept { return this->has_value(); }
    /// The value; throws the Error when there is none.
    T& value() & {
        if (!ok()) throw this->error();
        return Base::operator*();
    }
    T&& value() && {
        if (!ok()) throw this->error();
        return std::move(Base::operator*());
    }
    /// The error code (`Status::Ok` when a value is held).
    Status code() const noexcept { return ok() ? Status::Ok : this->error().code(); }
};

/// Result of an operation without a value.
template <>
class [[nodiscard]] Result<void> : public std::expected<void, Error> {
    using Base = std::expected<void, Error>;

public:
    Result() = default;
    Result(Error error) : Base(std::unexpect, std::move(error)) {}
    bool ok() const noexcept { return this->has_value(); }
    /// Throws the Error, if any.
    void value() const {
        if (!ok()) throw this->error();
    }
    Status code() const noexcept { return ok() ? Status::Ok : this->error().code(); }
};
#else
/**
 * Either a value or an Error: the non-throwing alternative for hot paths
 * (C++20 has no std::expected; under C++23 Result derives from it). `value()` throws the error if there is one.
 */
template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}
    /// Whether a value is held.
    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    /// The value; throws the Error when there is none.
    T& value() & { return ok() ? std::get<0>(v_) : throw std::get<1>(v_); }
    T&& value() && { return ok() ? std::get<0>(std::move(v_)) : throw std::get<1>(v_); }
    T& operator*() & { return value(); }
    T* operator->() { return &value(); }
    /// The error (precondition: `!ok()`).
    const Error& error() const { return std::get<1>(v_); }
    /// The error code (`Status::Ok` when a value is held).
    Status code() const noexcept { return ok() ? Status::Ok : std::get<1>(v_).code(); }

private:
    std::variant<T, Error> v_;
};

/// Result of an operation without a value.
template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : e_(std::move(error)) {}
    bool ok() const noexcept { return !e_.has_value(); }
    explicit operator bool() const noexcept { return ok(); }
    /// Throws the Error, if any.
    void value() const {
        if (e_) throw *e_;
    }
    const Error& error() const { return *e_; }
    Status code() const noexcept { return e_ ? e_->code() : Status::Ok; }

private:
    std::optional<Error> e_;
};

#endif

namespace detail {
/// A C status as a Result<void>.
inline Result<void> status(tp_status s) {
    if (s != TP_OK) return error_of(s);
    return {};
}
/// Calls `f(&out)` and returns `out`, or the Error of a failed call.
template <class T, class F>
Result<T> get(F&& f) {
    T out{};
    tp_status s = f(&out);
    if (s != TP_OK) return error_of(s);
    return out;
}
/// Reads a string through a `(buf, cap, len)` C function without throwing.
template <class F>
Result<std::string> try_read_string(F&& f) {
    std::size_t len = 0;
    tp_status s = f(nullptr, 0, &len);
    if (s != TP_OK) return error_of(s);
    std::string out(len, '\0');
    s = f(out.data(), len + 1, &len);
    if (s != TP_OK) return error_of(s);
    return out;
}
}  // namespace detail

/// `CLOCK_MONOTONIC` in ns, the clock of `do_work` and frame timestamps.
inline std::uint64_t monotonic_ns() noexcept { return tp_monotonic_ns(); }
/// The library version.
inline std::string_view version() noexcept { return tp_version(); }
/// The SHM layout version written and read.
inline std::uint32_t layout_version() noexcept { return tp_layout_version(); }

namespace detail {
/// A move-only owner of a C handle freed by `Free`.
template <class H, tp_status (*Free)(H*)>
class Handle {
public:
    Handle() = default;
    explicit Handle(H* h) noexcept : h_(h) {}
    Handle(Handle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }
    void reset() noexcept {
        if (h_) (void)Free(std::exchange(h_, nullptr));
    }
    H* get() const noexcept { return h_; }

private:
    H* h_ = nullptr;
};
}  // namespace detail

/// The Aeron connection of a process (an embedded media driver, or an external one).
class Context {
public:
    /// Starts an embedded media driver (in `aeron_dir`, absolute, or a fresh private
    /// directory); a relative directory is Error(InvalidArgument).
    static Context embedded(const std::string& aeron_dir = {}) { return try_embedded(aeron_dir).value(); }
    static Result<Context> try_embedded(const std::string& aeron_dir = {}) {
        tp_context* h = nullptr;
        tp_status s = tp_context_new_embedded(detail::c_str_or_null(aeron_dir), &h);
        if (s != TP_OK) return detail::error_of(s);
        return Context(h);
    }
    /// Connects to the media driver running in `aeron_dir`.
    static Context connect(const std::string& aeron_dir,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        return try_connect(aeron_dir, timeout).value();
    }
    static Result<Context> try_connect(const std::string& aeron_dir,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        tp_context* h = nullptr;
        tp_status s = tp_context_connect(aeron_dir.c_str(), detail::ms(timeout), &h);
        if (s != TP_OK) return detail::error_of(s);
        return Context(h);
    }
    /// Connects with a driver timeout: how long the media driver may be silent before every
    /// producer and consumer of this context fails with Status::MediaDriverLost (0: Aeron's
    /// 10 s).
    static Context connect_with(const std::string& aeron_dir, std::chrono::milliseconds connect_timeout,
                                std::chrono::milliseconds driver_timeout) {
        tp_context* h = nullptr;
        detail::check(tp_context_connect_with(aeron_dir.c_str(), detail::ms(connect_timeout),
                                              detail::ms(driver_timeout), &h));
        return Context(h);
    }
    Result<std::string> try_aeron_dir() const {
        return detail::try_read_string([&](char* b, std::size_t c, std::size_t* l) {
            return tp_context_aeron_dir(get(), b, c, l);
        });
    }
    Result<bool> try_is_embedded() const {
        return detail::get<bool>([&](bool* b) { return tp_context_is_embedded(get(), b); });
    }
    /// The Aeron directory in use.
    std::string aeron_dir() const {
        return detail::read_string([&](char* b, std::size_t c, std::size_t* l) {
            return tp_context_aeron_dir(get(), b, c, l);
        });
    }
    /// Whether this context runs its own media driver.
    bool is_embedded() const {
        bool b = false;
        detail::check(tp_context_is_embedded(get(), &b));
        return b;
    }
    /// The C handle.
    tp_context* get() const noexcept { return h_.get(); }

private:
    explicit Context(tp_context* h) : h_(h) {}
    detail::Handle<tp_context, tp_context_free> h_;
};

/// A validated tensor description (dtype, shape, strides, order); build once, claim often.
/// Every dimension is at least 1 (`{480, 0}` is Error(InvalidArgument)), 1 to 8 of them.
class TensorSpec {
public:
    /// A contiguous tensor.
    TensorSpec(Dtype dtype, std::span<const std::size_t> shape, MajorOrder order = MajorOrder::Row)
        : TensorSpec(try_create(dtype, shape, order).value()) {}
    TensorSpec(Dtype dtype, std::initializer_list<std::size_t> shape, MajorOrder order = MajorOrder::Row)
        : TensorSpec(dtype, std::span<const std::size_t>(shape.begin(), shape.size()), order) {}
    /// A contiguous tensor whose dtype is T's (`TensorSpec::of<float>({480, 640})`).
    template <class T>
    static TensorSpec of(std::initializer_list<std::size_t> shape, MajorOrder order = MajorOrder::Row) {
        return TensorSpec(dtype_of<T>(), shape, order);
    }
    template <class T>
    static TensorSpec of(std::span<const std::size_t> shape, MajorOrder order = MajorOrder::Row) {
        return TensorSpec(dtype_of<T>(), shape, order);
    }
    template <class T>
    static Result<TensorSpec> try_of(std::span<const std::size_t> shape, MajorOrder order = MajorOrder::Row) {
        return try_create(dtype_of<T>(), shape, order);
    }
    /// A tensor with explicit byte strides (0 entries inferred); as many strides as dims.
    static TensorSpec strided(Dtype dtype, MajorOrder order, std::span<const std::size_t> shape,
                              std::span<const std::size_t> strides) {
        return try_strided(dtype, order, shape, strides).value();
    }
    /// The constructors without throwing.
    static Result<TensorSpec> try_create(Dtype dtype, std::span<const std::size_t> shape,
                                         MajorOrder order = MajorOrder::Row) {
        return make(dtype, order, shape, nullptr);
    }
    static Result<TensorSpec> try_strided(Dtype dtype, MajorOrder order, std::span<const std::size_t> shape,
                                          std::span<const std::size_t> strides) {
        if (strides.size() != shape.size())
            return Error(Status::InvalidArgument, "as many strides as dimensions are needed");
        return make(dtype, order, shape, strides.data());
    }
    /// Declares progress in rows (dimension 0) / columns (dimension 1), so progress handlers
    /// get whole-row (column) prefixes; Error(InvalidArgument) when the tensor does not fit.
    TensorSpec& progress_rows() { try_progress_unit(TP_PROGRESS_UNIT_ROWS).value(); return *this; }
    TensorSpec& progress_columns() { try_progress_unit(TP_PROGRESS_UNIT_COLUMNS).value(); return *this; }
    Result<void> try_progress_unit(std::uint32_t unit) {
        return detail::status(tp_tensor_spec_set_progress_unit(h_.get(), unit));
    }
    /// Payload bytes the tensor spans.
    std::size_t len_bytes() const noexcept { return len_; }
    Dtype dtype() const noexcept { return dtype_; }
    const tp_tensor_spec* get() const noexcept { return h_.get(); }

private:
    TensorSpec(tp_tensor_spec* h, Dtype dtype, std::size_t len) : h_(h), dtype_(dtype), len_(len) {}
    static Result<TensorSpec> make(Dtype dtype, MajorOrder order, std::span<const std::size_t> shape,
                                   const std::size_t* strides) {
        tp_tensor_spec* h = nullptr;
        tp_status s = tp_tensor_spec_new(static_cast<std::uint32_t>(dtype), static_cast<std::uint32_t>(order),
                                         shape.size(), shape.data(), strides, &h);
        if (s != TP_OK) return detail::error_of(s);
        detail::Handle<tp_tensor_spec, tp_tensor_spec_free> owner(h);
        std::size_t len = 0;
        s = tp_tensor_spec_len_bytes(h, &len);
        if (s != TP_OK) return detail::error_of(s);
        TensorSpec spec(nullptr, dtype, len);
        spec.h_ = std::move(owner);
        return spec;
    }
    detail::Handle<tp_tensor_spec, tp_tensor_spec_free> h_;
    Dtype dtype_;
    std::size_t len_ = 0;
};

/// Where an SHM driver listens (attach options of producers and consumers in driver mode).
class DriverEndpoints {
public:
    /// The Driver Model §17 defaults.
    DriverEndpoints() { detail::check(tp_driver_endpoints_init(&raw_)); }
    /// From a C struct (its strings are copied).
    explicit DriverEndpoints(const tp_driver_endpoints& e) : raw_(e) {
        control_channel_ = e.control_channel ? e.control_channel : "";
        announce_channel_ = e.announce_channel ? e.announce_channel : "";
    }
    DriverEndpoints& control(std::string channel, std::int32_t stream_id) {
        control_channel_ = std::move(channel);
        raw_.control_stream_id = stream_id;
        return *this;
    }
    DriverEndpoints& announce(std::string channel, std::int32_t stream_id) {
        announce_channel_ = std::move(channel);
        raw_.announce_stream_id = stream_id;
        return *this;
    }
    DriverEndpoints& keepalive_interval(std::chrono::milliseconds d) { raw_.keepalive_interval_ms = detail::ms(d); return *this; }
    DriverEndpoints& announce_period(std::chrono::milliseconds d) { raw_.announce_period_ms = detail::ms(d); return *this; }
    /// How long building a producer waits for its lease.
    DriverEndpoints& attach_timeout(std::chrono::milliseconds d) { raw_.attach_timeout_ms = detail::ms(d); return *this; }
    /// The C struct; its strings point into this object.
    tp_driver_endpoints to_c() const noexcept {
        tp_driver_endpoints e = raw_;
        e.control_channel = detail::c_str_or_null(control_channel_);
        e.announce_channel = detail::c_str_or_null(announce_channel_);
        return e;
    }

private:
    tp_driver_endpoints raw_{};
    std::string control_channel_, announce_channel_;
};

/// How a producer is built (builder style; every field has the C API's default).
class ProducerOptions {
public:
    explicit ProducerOptions(std::uint32_t stream_id) { detail::check(tp_producer_options_init(&raw_, stream_id)); }
    /// Standalone: own files under `shm_base_dir` (absolute).
    ProducerOptions& standalone(std::string shm_base_dir) {
        raw_.use_driver = false;
        base_dir_ = std::move(shm_base_dir);
        return *this;
    }
    /// Driver mode: lease from the SHM driver at `endpoints`; its files lie in `shm_base_dir`.
    ProducerOptions& driver(DriverEndpoints endpoints, std::string shm_base_dir) {
        raw_.use_driver = true;
        driver_ = std::move(endpoints);
        base_dir_ = std::move(shm_base_dir);
        return *this;
    }
    ProducerOptions& header_nslots(std::uint32_t n) { raw_.header_nslots = n; return *this; }
    /// One payload pool of `stride_bytes` per slot.
    ProducerOptions& pool(std::uint16_t pool_id, std::uint32_t stride_bytes) {
        raw_.pool_id = pool_id;
        raw_.stride_bytes = stride_bytes;
        return *this;
    }
    ProducerOptions& prefault(bool on) { raw_.prefault = on; return *this; }
    ProducerOptions& producer_id(std::uint32_t id) { raw_.producer_id = id; return *this; }
    ProducerOptions& announce_period(std::chrono::milliseconds d) { raw_.announce_period_ms = detail::ms(d); return *this; }
    ProducerOptions& aeron_timeout(std::chrono::milliseconds d) { raw_.aeron_timeout_ms = detail::ms(d); return *this; }
    /// Aeron channel of every logical stream.
    ProducerOptions& channel(std::string c) { channel_ = std::move(c); return *this; }
    ProducerOptions& name(std::string n) { name_ = std::move(n); return *this; }
    /// `DataSourceAnnounce` summary.
    ProducerOptions& summary(std::string s) { summary_ = std::move(s); return *this; }
    /// The C struct; its strings point into this object.
    tp_producer_options to_c() const noexcept {
        tp_producer_options o = raw_;
        o.shm_base_dir = detail::c_str_or_null(base_dir_);
        o.channel = detail::c_str_or_null(channel_);
        o.name = detail::c_str_or_null(name_);
        o.summary = detail::c_str_or_null(summary_);
        o.driver = driver_.to_c();
        return o;
    }

private:
    tp_producer_options raw_{};
    std::string base_dir_, channel_, name_, summary_;
    DriverEndpoints driver_;
};

/// Progress hints of a consumer (0: no hint): smallest interval (µs), byte delta, row delta.
struct ProgressHints {
    std::uint32_t interval_us = 0;
    std::uint32_t bytes_delta = 0;
    std::uint32_t major_delta_units = 0;
};

/// How a consumer is built.
class ConsumerOptions {
public:
    explicit ConsumerOptions(std::uint32_t stream_id) { detail::check(tp_consumer_options_init(&raw_, stream_id)); }
    /// The directory announced regions must lie in.
    ConsumerOptions& allowed_base_dir(std::string dir) { base_dir_ = std::move(dir); return *this; }
    ConsumerOptions& mode(Mode m, std::uint32_t max_rate_hz = 0) {
        raw_.mode = static_cast<std::uint32_t>(m);
        raw_.max_rate_hz = max_rate_hz;
        return *this;
    }
    ConsumerOptions& consumer_id(std::uint32_t id) { raw_.consumer_id = id; return *this; }
    ConsumerOptions& expected_layout_version(std::uint32_t v) { raw_.expected_layout_version = v; return *this; }
    /// Attach through the SHM driver at `endpoints`.
    ConsumerOptions& driver(DriverEndpoints endpoints) {
        raw_.use_driver = true;
        driver_ = std::move(endpoints);
        return *this;
    }
    ConsumerOptions& channel(std::string c) { channel_ = std::move(c); return *this; }
    ConsumerOptions& aeron_timeout(std::chrono::milliseconds d) { raw_.aeron_timeout_ms = detail::ms(d); return *this; }
    ConsumerOptions& activity_timeout(std::chrono::milliseconds d) { raw_.activity_timeout_ms = detail::ms(d); return *this; }
    /// Asks the producer for `FrameProgress` (see Consumer::poll_progress), with hints.
    ConsumerOptions& progress() { return progress(ProgressHints{}); }
    ConsumerOptions& progress(ProgressHints hints) {
        raw_.supports_progress = true;
        raw_.progress_interval_us = hints.interval_us;
        raw_.progress_bytes_delta = hints.bytes_delta;
        raw_.progress_major_delta_units = hints.major_delta_units;
        return *this;
    }
    /// Requests a per-consumer descriptor stream.
    ConsumerOptions& descriptor_stream(std::string channel, std::int32_t stream_id) {
        descriptor_channel_ = std::move(channel);
        raw_.descriptor_stream_id = stream_id;
        return *this;
    }
    /// Requests a per-consumer control stream (`FrameProgress`).
    ConsumerOptions& control_stream(std::string channel, std::int32_t stream_id) {
        control_channel_ = std::move(channel);
        raw_.control_stream_id = stream_id;
        return *this;
    }
    tp_consumer_options to_c() const noexcept {
        tp_consumer_options o = raw_;
        o.allowed_base_dir = detail::c_str_or_null(base_dir_);
        o.channel = detail::c_str_or_null(channel_);
        o.descriptor_channel = detail::c_str_or_null(descriptor_channel_);
        o.control_channel = detail::c_str_or_null(control_channel_);
        o.driver = driver_.to_c();
        return o;
    }

private:
    tp_consumer_options raw_{};
    std::string base_dir_, channel_, descriptor_channel_, control_channel_;
    DriverEndpoints driver_;
};

class Producer;

/// One metadata attribute (Wire Spec §10.3).
struct MetaAttribute {
    std::string key;
    std::string format = "text/plain";
    std::string value;
};

/// What a producer reports about itself.
using ProducerInfo = tp_producer_info;
/// Every producer counter (one documented field each).
using ProducerCountersAll = tp_producer_counters_all;

/**
 * A claimed slot: write the tensor in place through bytes() or as<T>(), then commit().
 * Destroying an uncommitted claim aborts it. Move-only; at most one per producer. It cannot
 * outlive its Producer: when the producer is destroyed first, the claim is aborted and
 * emptied (bytes() is empty, as<T>() and commit() are Error(State)).
 */
class [[nodiscard]] Claim {
public:
    Claim(Claim&& o) noexcept : p_(std::exchange(o.p_, nullptr)), c_(o.c_), dtype_(o.dtype_), owner_(o.owner_) {
        adopt(o);
    }
    Claim& operator=(Claim&& o) noexcept {
        if (this != &o) {
            abort();
            p_ = std::exchange(o.p_, nullptr);
            c_ = o.c_;
            dtype_ = o.dtype_;
            owner_ = o.owner_;
            adopt(o);
        }
        return *this;
    }
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;
    ~Claim() { abort(); }

    /// Sequence of the frame being written.
    std::uint64_t seq() const noexcept { return c_.seq; }
    /// The dtype of the spec claimed for.
    Dtype dtype() const noexcept { return dtype_; }
    /// The payload slot in shared memory (it holds what an earlier frame left: write it all).
    /// Empty once committed, aborted or orphaned.
    std::span<std::byte> bytes() const noexcept {
        if (!p_) return {};
        return {reinterpret_cast<std::byte*>(c_.data), c_.len};
    }
    /// The slot as elements of T; T must match the dtype (dtype_accepts): `as<double>()` on a
    /// u16 claim is Error(InvalidArgument).
    template <class T>
    std::span<T> as() const {
        return try_as<T>().value();
    }
    template <class T>
    Result<std::span<T>> try_as() const {
        static_assert(std::is_trivially_copyable_v<T>);
        if (!p_) return Error(Status::State, "as: the claim is committed, aborted or its producer is gone");
        if (!dtype_accepts<T>(dtype_))
            return Error(Status::InvalidArgument,
                         "as: the element type does not match the claim's dtype " + std::string(dtype_name(dtype_)));
        if (c_.len % sizeof(T) != 0)
            return Error(Status::InvalidArgument, "payload length is not a multiple of the element size");
        return std::span<T>{reinterpret_cast<T*>(c_.data), c_.len / sizeof(T)};
    }
    /// Reports that the first `bytes_filled` bytes are written (FrameProgress, when some
    /// consumer asked and the throttle allows); whether a message went out.
    bool progress(std::size_t bytes_filled) { return try_progress(bytes_filled).value(); }
    Result<bool> try_progress(std::size_t bytes_filled) {
        if (!p_) return Error(Status::State, "progress: the claim is not open");
        return detail::get<bool>([&](bool* sent) { return tp_producer_claim_progress(p_, bytes_filled, sent); });
    }
    /// Overrides the capture timestamp (default: the claim time, CLOCK_MONOTONIC).
    void set_timestamp_ns(std::uint64_t ts) { try_set_timestamp_ns(ts).value(); }
    Result<void> try_set_timestamp_ns(std::uint64_t ts) {
        if (!p_) return Error(Status::State, "set_timestamp_ns: the claim is not open");
        return detail::status(tp_producer_claim_set_timestamp_ns(p_, ts));
    }
    /// Sets the TraceLink trace id of the frame's descriptor (0: none).
    void set_trace_id(std::uint64_t id) { try_set_trace_id(id).value(); }
    Result<void> try_set_trace_id(std::uint64_t id) {
        if (!p_) return Error(Status::State, "set_trace_id: the claim is not open");
        return detail::status(tp_producer_claim_set_trace_id(p_, id));
    }
    /// Commits (seqlock commit + FrameDescriptor); returns the sequence.
    std::uint64_t commit() { return try_commit().value(); }
    /// Commits without throwing.
    Result<std::uint64_t> try_commit() {
        if (!p_) return Error(Status::State, "commit: the claim was already committed or aborted, or its producer is gone");
        std::uint64_t seq = 0;
        tp_status s = tp_producer_commit(std::exchange(p_, nullptr), &seq);
        release();
        if (s != TP_OK) return detail::error_of(s);
        return seq;
    }
    /// Aborts (no descriptor; the slot stays in progress). Idempotent.
    void abort() noexcept {
        if (p_) (void)tp_producer_abort(std::exchange(p_, nullptr));
        release();
    }
    /// Whether the claim is still open.
    bool is_open() const noexcept { return p_ != nullptr; }

private:
    friend class Producer;
    Claim(tp_producer* p, tp_claim c, Dtype dtype, Producer* owner) noexcept;
    void adopt(Claim& from) noexcept;
    void release() noexcept;
    /// The producer is going: abort and empty.
    void orphan() noexcept {
        abort();
        owner_ = nullptr;
        c_.data = nullptr;
        c_.len = 0;
    }
    tp_producer* p_;
    tp_claim c_;
    Dtype dtype_ = Dtype::Bytes;
    Producer* owner_ = nullptr;
};

/// The most used producer counters.
using ProducerCounters = tp_producer_counters;

/// A producer of one data source: claim -> write in place -> commit; do_work() between frames.
class Producer {
public:
    Producer(const Context& ctx, const ProducerOptions& options) : Producer(try_create(ctx, options).value()) {}
    /// The constructor without throwing.
    static Result<Producer> try_create(const Context& ctx, const ProducerOptions& options) {
        tp_producer_options o = options.to_c();
        tp_producer* h = nullptr;
        tp_status s = tp_producer_new(ctx.get(), &o, &h);
        if (s != TP_OK) return detail::error_of(s);
        return Producer(h);
    }
    Producer(Producer&& o) noexcept : h_(std::move(o.h_)), open_(std::exchange(o.open_, nullptr)) {
        if (open_) open_->owner_ = this;
    }
    Producer& operator=(Producer&& o) noexcept {
        if (this != &o) {
            if (open_) open_->orphan();
            h_ = std::move(o.h_);
            open_ = std::exchange(o.open_, nullptr);
            if (open_) open_->owner_ = this;
        }
        return *this;
    }
    Producer(const Producer&) = delete;
    Producer& operator=(const Producer&) = delete;
    /// Aborts and empties an open claim first (it cannot outlive its producer).
    ~Producer() {
        if (open_) open_->orphan();
    }
    /// Claims the next slot for `spec` (throws on failure).
    Claim claim(const TensorSpec& spec) { return try_claim(spec).value(); }
    /// Claims without throwing.
    Result<Claim> try_claim(const TensorSpec& spec) {
        tp_claim c{};
        tp_status s = tp_producer_claim(get(), spec.get(), &c);
        if (s != TP_OK) return detail::error_of(s);
        return Claim(get(), c, spec.dtype(), this);
    }
    /// Claims with an explicit payload length (at least the tensor's extent).
    Claim claim_len(const TensorSpec& spec, std::size_t len) { return try_claim_len(spec, len).value(); }
    Result<Claim> try_claim_len(const TensorSpec& spec, std::size_t len) {
        tp_claim c{};
        tp_status s = tp_producer_claim_len(get(), spec.get(), len, &c);
        if (s != TP_OK) return detail::error_of(s);
        return Claim(get(), c, spec.dtype(), this);
    }
    /// Copies `payload` into the next slot and commits it.
    std::uint64_t offer(const TensorSpec& spec, std::span<const std::byte> payload) {
        return try_offer(spec, payload).value();
    }
    Result<std::uint64_t> try_offer(const TensorSpec& spec, std::span<const std::byte> payload) {
        return detail::get<std::uint64_t>([&](std::uint64_t* seq) {
            return tp_producer_offer(get(), spec.get(), reinterpret_cast<const std::uint8_t*>(payload.data()),
                                     payload.size(), seq);
        });
    }
    /// One duty cycle (announces, QoS, hellos, keepalives); returns the work done.
    std::size_t do_work(std::uint64_t now_ns = 0) { return try_do_work(now_ns).value(); }
    Result<std::size_t> try_do_work(std::uint64_t now_ns = 0) {
        return detail::get<std::size_t>([&](std::size_t* w) { return tp_producer_do_work(get(), now_ns, w); });
    }
    std::uint64_t epoch() const { return try_epoch().value(); }
    Result<std::uint64_t> try_epoch() const { return read_u64(tp_producer_epoch); }
    std::uint64_t next_seq() const { return try_next_seq().value(); }
    Result<std::uint64_t> try_next_seq() const { return read_u64(tp_producer_next_seq); }
    ProducerCounters counters() const { return try_counters().value(); }
    Result<ProducerCounters> try_counters() const {
        return detail::get<ProducerCounters>([&](ProducerCounters* c) { return tp_producer_get_counters(get(), c); });
    }
    /// Every counter, one documented field each (docs/cpp.md "Counters").
    ProducerCountersAll counters_all() const { return try_counters_all().value(); }
    Result<ProducerCountersAll> try_counters_all() const {
        return detail::get<ProducerCountersAll>(
            [&](ProducerCountersAll* c) { return tp_producer_get_counters_all(get(), c); });
    }
    /// Any counter by name (`"committed"`, `"hellos"`, ...): the field names of counters_all().
    std::uint64_t counter(const std::string& name) const { return try_counter(name).value(); }
    Result<std::uint64_t> try_counter(const std::string& name) const {
        return detail::get<std::uint64_t>([&](std::uint64_t* v) { return tp_producer_counter(get(), name.c_str(), v); });
    }
    /// Standalone: a new epoch (new files, seq from 0).
    std::uint64_t bump_epoch() { return try_bump_epoch().value(); }
    Result<std::uint64_t> try_bump_epoch() { return read_u64(tp_producer_bump_epoch); }
    /// Standalone: the current epoch's directory.
    std::string epoch_dir() const { return try_epoch_dir().value(); }
    Result<std::string> try_epoch_dir() const {
        return detail::try_read_string([&](char* b, std::size_t c, std::size_t* l) {
            return tp_producer_epoch_dir(get(), b, c, l);
        });
    }
    /// Clean close (also done on destruction).

    // -- signals and waiting (issue 18) --
    /// Runs do_work() until at least `n` consumers have mapped the current epoch (their
    /// mapped-epoch counters on this media driver, docs/roles.md) and the descriptor stream
    /// is connected; returns how many. Throws Error(Timeout) after `timeout`.
    std::size_t wait_for_consumers(std::size_t n, std::chrono::milliseconds timeout) {
        return try_wait_for_consumers(n, timeout).value();
    }
    Result<std::size_t> try_wait_for_consumers(std::size_t n, std::chrono::milliseconds timeout) {
        std::size_t mapped = 0;
        tp_status s = tp_producer_wait_for_consumers(get(), n, detail::ms(timeout), &mapped);
        if (s != TP_OK) return detail::error_of(s);
        return mapped;
    }
    /// Consumers that have mapped the current epoch now.
    std::size_t mapped_consumers() const {
        std::size_t n = 0;
        detail::check(tp_producer_mapped_consumers(get(), &n));
        return n;
    }
    /// Whether the media driver is lost (claims and do_work throw Error(MediaDriverLost)).
    bool media_driver_lost() const {
        bool b = false;
        detail::check(tp_producer_media_driver_lost(get(), &b));
        return b;
    }

    void close() { try_close().value(); }
    Result<void> try_close() {
        if (open_) open_->orphan();
        return detail::status(tp_producer_close(get()));
    }
    /// Replaces the data source's attributes (bumps and returns `meta_version`).
    std::uint32_t set_meta(const std::vector<MetaAttribute>& attrs) { return try_set_meta(attrs).value(); }
    Result<std::uint32_t> try_set_meta(const std::vector<MetaAttribute>& attrs) {
        std::vector<tp_meta_attribute> c;
        c.reserve(attrs.size());
        for (const auto& a : attrs)
            c.push_back({a.key.c_str(), a.format.c_str(), reinterpret_cast<const std::uint8_t*>(a.value.data()),
                         a.value.size()});
        return detail::get<std::uint32_t>(
            [&](std::uint32_t* v) { return tp_producer_set_meta(get(), c.data(), c.size(), v); });
    }
    /// Queues a metadata blob (copied) for the current `meta_version`.
    void publish_meta_blob(std::uint32_t blob_type, std::span<const std::byte> data) {
        try_publish_meta_blob(blob_type, data).value();
    }
    Result<void> try_publish_meta_blob(std::uint32_t blob_type, std::span<const std::byte> data) {
        return detail::status(tp_producer_publish_meta_blob(
            get(), blob_type, reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
    }
    /// Progress followed, driver mode, active, consumers.
    ProducerInfo info() const { return try_info().value(); }
    Result<ProducerInfo> try_info() const {
        return detail::get<ProducerInfo>([&](ProducerInfo* i) { return tp_producer_get_info(get(), i); });
    }
    tp_producer* get() const noexcept { return h_.get(); }

private:
    friend class Claim;
    explicit Producer(tp_producer* h) noexcept : h_(h) {}
    Result<std::uint64_t> read_u64(tp_status (*f)(tp_producer*, std::uint64_t*)) const {
        return detail::get<std::uint64_t>([&](std::uint64_t* v) { return f(get(), v); });
    }
    detail::Handle<tp_producer, tp_producer_free> h_;
    Claim* open_ = nullptr;
};

inline Claim::Claim(tp_producer* p, tp_claim c, Dtype dtype, Producer* owner) noexcept
    : p_(p), c_(c), dtype_(dtype), owner_(owner) {
    if (owner_) owner_->open_ = this;
}
inline void Claim::adopt(Claim& from) noexcept {
    from.owner_ = nullptr;
    if (owner_ && owner_->open_ == &from) owner_->open_ = p_ ? this : nullptr;
}
inline void Claim::release() noexcept {
    if (owner_ && owner_->open_ == this) owner_->open_ = nullptr;
    owner_ = nullptr;
}

/**
 * A strided N-d view of a tensor (the fallback of std::mdspan): element (i, j, ...) is at
 * `data()[i * stride(0) + j * stride(1) + ...]`, strides in elements.
 */
template <class T>
class NdView {
public:
    NdView(T* data, std::span<const std::size_t> shape, std::span<const std::size_t> byte_strides)
        : data_(data), rank_(shape.size()) {
        if (shape.size() > TP_MAX_DIMS || byte_strides.size() != shape.size())
            throw Error(Status::InvalidArgument, "NdView: 1 to 8 dimensions, as many strides");
        for (std::size_t i = 0; i < rank_; ++i) {
            if (byte_strides[i] % sizeof(T) != 0)
                throw Error(Status::InvalidArgument, "NdView: a stride is not a multiple of the element size");
            shape_[i] = shape[i];
            strides_[i] = byte_strides[i] / sizeof(T);
        }
    }
    std::size_t rank() const noexcept { return rank_; }
    std::size_t extent(std::size_t i) const noexcept { return shape_[i]; }
    /// Stride of dimension `i`, in elements.
    std::size_t stride(std::size_t i) const noexcept { return strides_[i]; }
    std::span<const std::size_t> shape() const noexcept { return {shape_.data(), rank_}; }
    T* data() const noexcept { return data_; }
    /// The element at the indices (one per dimension; unchecked, like std::mdspan).
    template <class... I>
    T& operator()(I... idx) const noexcept {
        std::size_t off = 0, k = 0;
        ((off += static_cast<std::size_t>(idx) * strides_[k++]), ...);
        return data_[off];
    }

private:
    T* data_;
    std::size_t rank_;
    std::array<std::size_t, TP_MAX_DIMS> shape_{};
    std::array<std::size_t, TP_MAX_DIMS> strides_{};
};

/**
 * A frame in the producer's shared memory, valid only inside the poll handler. Read it in
 * place, then recheck(): only if it returns true were the bytes read the committed frame.
 */
class Frame {
public:
    explicit Frame(const tp_frame_view& v) noexcept : v_(&v) {}
    /// Not copyable nor movable: a Frame is a view valid only inside the handler.
    Frame(const Frame&) = delete;
    Frame& operator=(const Frame&) = delete;
    std::uint64_t seq() const noexcept { return v_->seq; }
    std::uint64_t epoch() const noexcept { return v_->epoch; }
    std::uint32_t stream_id() const noexcept { return v_->stream_id; }
    Dtype dtype() const noexcept { return static_cast<Dtype>(v_->dtype); }
    MajorOrder major_order() const noexcept { return static_cast<MajorOrder>(v_->major_order); }
    /// Dimension sizes.
    std::span<const std::size_t> shape() const noexcept { return {v_->shape, v_->ndims}; }
    /// Byte strides per dimension.
    std::span<const std::size_t> strides() const noexcept { return {v_->strides, v_->ndims}; }
    /// The payload in place (racy until recheck() after reading).
    std::span<const std::byte> bytes() const noexcept { return {reinterpret_cast<const std::byte*>(v_->data), v_->len}; }
    /// The payload as elements of T; T must match the dtype (dtype_accepts):
    /// `values<std::int16_t>()` on a u16 frame is Error(InvalidArgument).
    template <class T>
    std::span<const T> values() const {
        return try_values<T>().value();
    }
    template <class T>
    Result<std::span<const T>> try_values() const {
        static_assert(std::is_trivially_copyable_v<T>);
        if (!dtype_accepts<T>(dtype()) || v_->len % sizeof(T) != 0)
            return Error(Status::InvalidArgument,
                         "values: the element type does not match the frame's dtype " + std::string(dtype_name(dtype())));
        return std::span<const T>{reinterpret_cast<const T*>(v_->data), v_->len / sizeof(T)};
    }
    /// A strided N-d view over the payload (shape and strides of the frame; T checked as in
    /// values()).
    template <class T>
    NdView<const T> ndview() const {
        (void)values<T>();
        return NdView<const T>(reinterpret_cast<const T*>(v_->data), shape(), strides());
    }
#if defined(__cpp_lib_mdspan)
    /// The payload as a `std::mdspan` of rank `Rank` with the frame's strides.
    template <class T, std::size_t Rank>
    std::mdspan<const T, std::dextents<std::size_t, Rank>, std::layout_stride> mdspan() const {
        (void)values<T>();
        if (v_->ndims != Rank) throw Error(Status::InvalidArgument, "mdspan: rank differs from the frame's");
        std::array<std::size_t, Rank> ext{}, st{};
        for (std::size_t i = 0; i < Rank; ++i) {
            ext[i] = v_->shape[i];
            st[i] = v_->strides[i] / sizeof(T);
        }
        using M = std::layout_stride::mapping<std::dextents<std::size_t, Rank>>;
        return {reinterpret_cast<const T*>(v_->data), M(std::dextents<std::size_t, Rank>(ext), st)};
    }
#endif
    /// TraceLink trace id of the frame's descriptor (0: none).
    std::uint64_t trace_id() const {
        return detail::get<std::uint64_t>([&](std::uint64_t* t) { return tp_frame_trace_id(v_, t); }).value();
    }
    /// The descriptor's publish timestamp (0: not sent).
    std::uint64_t publish_timestamp_ns() const {
        return detail::get<std::uint64_t>([&](std::uint64_t* t) { return tp_frame_publish_timestamp_ns(v_, t); })
            .value();
    }
    /// Capture time (producer's CLOCK_MONOTONIC).
    std::uint64_t timestamp_ns() const noexcept { return v_->timestamp_ns; }
    std::uint32_t meta_version() const noexcept { return v_->meta_version; }
    /// True if the slot still holds this committed frame: what was read before is valid.
    bool recheck() const noexcept { return tp_frame_recheck(v_) == TP_OK; }
    /// Copies the payload and rechecks; throws Error(Late) if it was overwritten meanwhile.
    std::size_t copy_to(std::span<std::byte> out) const { return try_copy_to(out).value(); }
    Result<std::size_t> try_copy_to(std::span<std::byte> out) const {
        std::size_t n = 0;
        tp_status s = tp_frame_copy_to(v_, reinterpret_cast<std::uint8_t*>(out.data()), out.size(), &n);
        if (s != TP_OK) return detail::error_of(s);
        return n;
    }
    const tp_frame_view& raw() const noexcept { return *v_; }

private:
    const tp_frame_view* v_;
};

namespace detail {
/// Carries a C++ callable through the C handler's `void*`; the first exception it throws is
/// kept (later frames of the cycle are skipped) for the caller to rethrow.
template <class Fn>
struct FrameCallback {
    Fn* f;
    std::exception_ptr ex;
    static void call(const tp_frame_view* v, void* user) noexcept {
        auto* s = static_cast<FrameCallback*>(user);
        if (s->ex) return;
        try {
            (*s->f)(Frame(*v));
        } catch (...) {
            s->ex = std::current_exception();
        }
    }
};
}  // namespace detail

/// What a consumer event reports (tp_consumer_event_kind).
enum class EventKind : std::uint32_t {
    Mapped = TP_EVENT_MAPPED,
    Unmapped = TP_EVENT_UNMAPPED,
    EpochChanged = TP_EVENT_EPOCH_CHANGED,
    FallbackActive = TP_EVENT_FALLBACK_ACTIVE,
    FallbackInactive = TP_EVENT_FALLBACK_INACTIVE,
    MediaDriverLost = TP_EVENT_MEDIA_DRIVER_LOST,
};
/// Why a mapping was dropped (tp_unmap_reason).
enum class UnmapReason : std::uint32_t {
    None = TP_UNMAP_NONE,
    Stale = TP_UNMAP_STALE,
    SuperblockChanged = TP_UNMAP_SUPERBLOCK_CHANGED,
    RegionDead = TP_UNMAP_REGION_DEAD,
    Revoked = TP_UNMAP_REVOKED,
    Other = TP_UNMAP_OTHER,
};
/// A consumer state change (Consumer::next_event).
struct ConsumerEvent {
    EventKind kind;
    /// Epoch mapped (Mapped, EpochChanged: the new one) or unmapped (Unmapped); 0 otherwise.
    std::uint64_t epoch = 0;
    /// EpochChanged: the epoch that was mapped.
    std::uint64_t from_epoch = 0;
    /// Unmapped: why.
    UnmapReason reason = UnmapReason::None;
};
/// Frames delivered by one poll and the work done (frames included).
struct Polled {
    std::size_t frames = 0;
    std::size_t work = 0;
};

/// A progress report on a frame still being written (poll_progress), valid only inside the
/// handler. COMPLETE does not mean committed: wait for the frame.
class Progress {
public:
    enum class State : std::uint32_t {
        Unknown = TP_PROGRESS_UNKNOWN, Started = TP_PROGRESS_STARTED,
        Progress = TP_PROGRESS_PROGRESS, Complete = TP_PROGRESS_COMPLETE,
    };
    explicit Progress(const tp_progress_view& v) noexcept : v_(&v) {}
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;
    std::uint64_t seq() const noexcept { return v_->seq; }
    std::uint64_t epoch() const noexcept { return v_->epoch; }
    State state() const noexcept { return static_cast<State>(v_->state); }
    std::uint64_t bytes_filled() const noexcept { return v_->bytes_filled; }
    std::uint64_t values_len() const noexcept { return v_->values_len; }
    /// The readable prefix (empty when the report is informational only); racy until recheck().
    std::span<const std::byte> prefix() const noexcept {
        return {reinterpret_cast<const std::byte*>(v_->prefix), v_->prefix_len};
    }
    /// True while the slot still belongs to the reported frame.
    bool recheck() const noexcept { return tp_progress_recheck(v_) == TP_OK; }
    const tp_progress_view& raw() const noexcept { return *v_; }

private:
    const tp_progress_view* v_;
};

/// Every consumer counter (one documented field each) and `drops[TP_DROP_*]` per cause.
using ConsumerCountersAll = tp_consumer_counters_all;
/// What a consumer reports about itself.
using ConsumerInfo = tp_consumer_info;
/// The name of a drop cause (`TP_DROP_LATE` -> `"late"`), as `counter("drops.<name>")` takes it.
inline std::string_view drop_cause_name(std::uint32_t cause) noexcept { return tp_drop_cause_name(cause); }

/// Consumer counters and status (C structs).
using ConsumerCounters = tp_consumer_counters;
using ConsumerStatus = tp_consumer_status;

/// A consumer of one data source; poll() hands each accepted frame to a callable.
class Consumer {
public:
    Consumer(const Context& ctx, const ConsumerOptions& options) : Consumer(try_create(ctx, options).value()) {}
    /// The constructor without throwing.
    static Result<Consumer> try_create(const Context& ctx, const ConsumerOptions& options) {
        tp_consumer_options o = options.to_c();
        tp_consumer* h = nullptr;
        tp_status s = tp_consumer_new(ctx.get(), &o, &h);
        if (s != TP_OK) return detail::error_of(s);
        Consumer c;
        c.h_ = detail::Handle<tp_consumer, tp_consumer_free>(h);
        return c;
    }
    /// One duty cycle: `f(const Frame&)` for each accepted frame (at most `limit`); returns the
    /// work done. An exception from `f` skips the rest of the cycle's frames and is rethrown.
    template <class F>
    std::size_t poll(F&& f, std::size_t limit = 16) {
        return try_poll(std::forward<F>(f), limit).value();
    }
    /// poll() without throwing on a library error (exceptions from `f` still propagate).
    template <class F>
    Result<std::size_t> try_poll(F&& f, std::size_t limit = 16) {
        detail::FrameCallback<std::remove_reference_t<F>> st{&f, nullptr};
        std::size_t work = 0;
        tp_status s = tp_consumer_poll(get(), st.call, &st, limit, &work);
        if (st.ex) std::rethrow_exception(st.ex);
        if (s != TP_OK) return detail::error_of(s);
        return work;
    }
    /// Polls (frames go to `f`) until the regions are mapped; throws Error(Timeout) naming
    /// the last mapping error after `timeout`.
    template <class F>
    void wait_mapped(std::chrono::milliseconds timeout, F&& f) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (state() != ConsumerState::Mapped) {
            if (std::chrono::steady_clock::now() >= deadline) {
                std::string why = mapping_error();
                throw Error(Status::Timeout, "consumer not mapped within " + std::to_string(timeout.count()) +
                                                 " ms" + (why.empty() ? std::string(": no announce") : ": " + why));
            }
            if (poll(f) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    void wait_mapped(std::chrono::milliseconds timeout) {
        wait_mapped(timeout, [](const Frame&) {});
    }
    ConsumerStatus status() const {
        ConsumerStatus s{};
        detail::check(tp_consumer_get_status(get(), &s));
        return s;
    }
    ConsumerState state() const { return static_cast<ConsumerState>(status().state); }
    ConsumerCounters counters() const {
        ConsumerCounters c{};
        detail::check(tp_consumer_get_counters(get(), &c));
        return c;
    }
    /// Any counter by name (`"accepted"`, `"drops.late"`, ...).
    std::uint64_t counter(const std::string& name) const {
        std::uint64_t v = 0;
        detail::check(tp_consumer_counter(get(), name.c_str(), &v));
        return v;
    }
    /// Why announced regions could not be mapped ("" if they could).
    std::string mapping_error() const {
        return detail::read_string([&](char* b, std::size_t c, std::size_t* l) {
            return tp_consumer_mapping_error(get(), b, c, l);
        });
    }
    /// The last announce, region or mapping refused: reason ("" if none), epoch and
    /// wall-clock time (ns since the Unix epoch; both 0 if none).
    struct Rejection {
        std::string reason;
        std::uint64_t epoch = 0;
        std::uint64_t at_unix_ns = 0;
    };
    Rejection last_rejection() const {
        Rejection r;
        r.reason = detail::read_string([&](char* b, std::size_t c, std::size_t* l) {
            return tp_consumer_last_rejection(get(), b, c, l, &r.epoch, &r.at_unix_ns);
        });
        return r;
    }

    // -- signals and waiting (issue 18) --
    /// One duty cycle that says how many frames reached `f` (poll() returns the work done).
    template <class F>
    Polled poll_frames(F&& f, std::size_t limit = 16) {
        return try_poll_frames(std::forward<F>(f), limit).value();
    }
    template <class F>
    Result<Polled> try_poll_frames(F&& f, std::size_t limit = 16) {
        detail::FrameCallback<std::remove_reference_t<F>> st{&f, nullptr};
        Polled p;
        tp_status s = tp_consumer_poll_frames(get(), st.call, &st, limit, &p.frames, &p.work);
        if (st.ex) std::rethrow_exception(st.ex);
        if (s != TP_OK) return detail::error_of(s);
        return p;
    }
    /// Polls until at least one frame reached `f` or `timeout` passed; returns the frames
    /// delivered (0: timed out). Backs off to sleeps of at most 1 ms between idle polls.
    template <class F>
    std::size_t poll_wait(F&& f, std::chrono::milliseconds timeout, std::size_t limit = 16) {
        return try_poll_wait(std::forward<F>(f), timeout, limit).value();
    }
    template <class F>
    Result<std::size_t> try_poll_wait(F&& f, std::chrono::milliseconds timeout, std::size_t limit = 16) {
        detail::FrameCallback<std::remove_reference_t<F>> st{&f, nullptr};
        std::size_t frames = 0;
        tp_status s = tp_consumer_poll_wait(get(), st.call, &st, limit, detail::ms(timeout), &frames);
        if (st.ex) std::rethrow_exception(st.ex);
        if (s != TP_OK) return detail::error_of(s);
        return frames;
    }
    /// The oldest state change not yet read (every poll records them; 64 kept at most).
    std::optional<ConsumerEvent> next_event() {
        tp_consumer_event e{};
        bool got = false;
        detail::check(tp_consumer_next_event(get(), &e, &got));
        if (!got) return std::nullopt;
        return ConsumerEvent{static_cast<EventKind>(e.kind), e.epoch, e.from_epoch,
                             static_cast<UnmapReason>(e.reason)};
    }
    /// Events dropped because 64 waited unread.
    std::uint64_t events_lost() const {
        std::uint64_t n = 0;
        detail::check(tp_consumer_events_lost(get(), &n));
        return n;
    }
    /// Whether the media driver is lost (polls throw Error(MediaDriverLost)).
    bool media_driver_lost() const {
        bool b = false;
        detail::check(tp_consumer_media_driver_lost(get(), &b));
        return b;
    }
    // --- issue 18: progress, metadata, every counter, try_ forms --------------------------
    /// poll() with a progress handler: `on_progress(const Progress&)` for each FrameProgress
    /// report (ConsumerOptions::progress), `on_frame(const Frame&)` for each accepted frame.
    template <class F, class P>
    std::size_t poll_progress(F&& on_frame, P&& on_progress, std::size_t limit = 16) {
        return try_poll_progress(std::forward<F>(on_frame), std::forward<P>(on_progress), limit).value();
    }
    template <class F, class P>
    Result<std::size_t> try_poll_progress(F&& on_frame, P&& on_progress, std::size_t limit = 16) {
        using Fn = std::remove_reference_t<F>;
        using Pn = std::remove_reference_t<P>;
        struct State {
            Fn* f;
            Pn* p;
            std::exception_ptr ex;
        } st{&on_frame, &on_progress, nullptr};
        auto frame = [](const tp_frame_view* v, void* user) noexcept {
            auto* s = static_cast<State*>(user);
            if (s->ex) return;
            try {
                (*s->f)(Frame(*v));
            } catch (...) {
                s->ex = std::current_exception();
            }
        };
        auto progress = [](const tp_progress_view* v, void* user) noexcept {
            auto* s = static_cast<State*>(user);
            if (s->ex) return;
            try {
                (*s->p)(Progress(*v));
            } catch (...) {
                s->ex = std::current_exception();
            }
        };
        std::size_t work = 0;
        tp_status s = tp_consumer_poll_progress(get(), frame, progress, &st, limit, &work);
        if (st.ex) std::rethrow_exception(st.ex);
        if (s != TP_OK) return detail::error_of(s);
        return work;
    }
    Result<ConsumerStatus> try_status() const {
        return detail::get<ConsumerStatus>([&](ConsumerStatus* s) { return tp_consumer_get_status(get(), s); });
    }
    Result<ConsumerCounters> try_counters() const {
        return detail::get<ConsumerCounters>([&](ConsumerCounters* c) { return tp_consumer_get_counters(get(), c); });
    }
    Result<std::uint64_t> try_counter(const std::string& name) const {
        return detail::get<std::uint64_t>([&](std::uint64_t* v) { return tp_consumer_counter(get(), name.c_str(), v); });
    }
    /// Every counter, one documented field each, and the drops per cause (`drops[TP_DROP_UNMAPPED]`).
    ConsumerCountersAll counters_all() const { return try_counters_all().value(); }
    Result<ConsumerCountersAll> try_counters_all() const {
        return detail::get<ConsumerCountersAll>(
            [&](ConsumerCountersAll* c) { return tp_consumer_get_counters_all(get(), c); });
    }
    Result<std::string> try_mapping_error() const {
        return detail::try_read_string([&](char* b, std::size_t c, std::size_t* l) {
            return tp_consumer_mapping_error(get(), b, c, l);
        });
    }
    /// Outages, per-consumer streams, effective mode, join time.
    ConsumerInfo info() const { return try_info().value(); }
    Result<ConsumerInfo> try_info() const {
        return detail::get<ConsumerInfo>([&](ConsumerInfo* i) { return tp_consumer_get_info(get(), i); });
    }
    /// The data source's metadata (DataSourceMeta), once received.
    struct Meta {
        std::uint32_t version = 0;
        std::vector<MetaAttribute> attributes;
    };
    std::optional<Meta> meta() const { return try_meta().value(); }
    Result<std::optional<Meta>> try_meta() const {
        Meta m;
        std::size_t n = 0;
        tp_status s = tp_consumer_meta(get(), &m.version, &n);
        if (s == TP_ERR_STATE) return std::optional<Meta>{};
        if (s != TP_OK) return detail::error_of(s);
        for (std::size_t i = 0; i < n; ++i) {
            tp_meta_attribute a{};
            s = tp_consumer_meta_attribute(get(), i, &a);
            if (s != TP_OK) return detail::error_of(s);
            m.attributes.push_back({a.key, a.format, std::string(reinterpret_cast<const char*>(a.value), a.value_len)});
        }
        return std::optional<Meta>(std::move(m));
    }
    /// The data source's name (DataSourceAnnounce; "" before one arrived).
    std::string source_name() const { return try_source_name().value(); }
    Result<std::string> try_source_name() const {
        return detail::try_read_string([&](char* b, std::size_t c, std::size_t* l) {
            return tp_consumer_source_name(get(), b, c, l);
        });
    }
    /// The last meta blob reassembled and verified (copied), once one arrived.
    struct MetaBlob {
        std::uint32_t meta_version = 0;
        std::uint32_t blob_type = 0;
        std::vector<std::byte> data;
    };
    std::optional<MetaBlob> meta_blob() const { return try_meta_blob().value(); }
    Result<std::optional<MetaBlob>> try_meta_blob() const {
        tp_meta_blob_view v{};
        tp_status s = tp_consumer_meta_blob(get(), &v);
        if (s == TP_ERR_STATE) return std::optional<MetaBlob>{};
        if (s != TP_OK) return detail::error_of(s);
        const auto* b = reinterpret_cast<const std::byte*>(v.data);
        return std::optional<MetaBlob>(MetaBlob{v.meta_version, v.blob_type, std::vector<std::byte>(b, b + v.len)});
    }

    /// The per-consumer descriptor stream assigned by the last ConsumerConfig (channel,
    /// stream id), if any.
    std::optional<std::pair<std::string, std::int32_t>> descriptor_assignment() const {
        std::int32_t id = 0;
        std::string ch = detail::read_string([&](char* b, std::size_t c, std::size_t* l) {
            return tp_consumer_descriptor_assignment(get(), b, c, l, &id);
        });
        if (ch.empty() && id == 0) return std::nullopt;
        return std::make_pair(std::move(ch), id);
    }
    /// Why the last meta blob was discarded (a `tp_blob_discard`; TP_BLOB_DISCARD_NONE if none).
    std::uint32_t last_blob_discard() const {
        return detail::get<std::uint32_t>([&](std::uint32_t* d) { return tp_consumer_last_blob_discard(get(), d); })
            .value();
    }

    tp_consumer* get() const noexcept { return h_.get(); }

private:
    Consumer() = default;
    detail::Handle<tp_consumer, tp_consumer_free> h_;
};

/// An SHM driver running on its own thread in this process.
class Driver {
public:
    /// Starts a driver configured by TOML text (Driver Model §17 keys).
    static Driver start(const Context& ctx, const std::string& config_toml) {
        tp_driver* h = nullptr;
        detail::check(tp_driver_start(ctx.get(), config_toml.c_str(), nullptr, &h));
        return Driver(h);
    }
    /// Starts a driver configured by a file (empty: the defaults).
    static Driver start_file(const Context& ctx, const std::string& path) {
        tp_driver* h = nullptr;
        detail::check(tp_driver_start(ctx.get(), nullptr, detail::c_str_or_null(path), &h));
        return Driver(h);
    }
    /// Where producers and consumers reach it.
    DriverEndpoints endpoints() const {
        tp_driver_endpoints e{};
        detail::check(tp_driver_endpoints_of(get(), &e));
        return DriverEndpoints(e);
    }
    /// Its `shm.base_dir`.
    std::string base_dir() const {
        const char* s = nullptr;
        detail::check(tp_driver_base_dir(get(), &s));
        return s;
    }
    bool running() const {
        bool b = false;
        detail::check(tp_driver_is_running(get(), &b));
        return b;
    }
    /// Clean shutdown within `timeout` (Error(Timeout) if it had to stop without it).
    void stop(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        detail::check(tp_driver_stop(get(), detail::ms(timeout)));
    }
    // issue 18: the non-throwing forms
    static Result<Driver> try_start(const Context& ctx, const std::string& config_toml) {
        tp_driver* h = nullptr;
        tp_status s = tp_driver_start(ctx.get(), config_toml.c_str(), nullptr, &h);
        if (s != TP_OK) return detail::error_of(s);
        return Driver(h);
    }
    static Result<Driver> try_start_file(const Context& ctx, const std::string& path) {
        tp_driver* h = nullptr;
        tp_status s = tp_driver_start(ctx.get(), nullptr, detail::c_str_or_null(path), &h);
        if (s != TP_OK) return detail::error_of(s);
        return Driver(h);
    }
    Result<DriverEndpoints> try_endpoints() const {
        tp_driver_endpoints e{};
        tp_status s = tp_driver_endpoints_of(get(), &e);
        if (s != TP_OK) return detail::error_of(s);
        return DriverEndpoints(e);
    }
    Result<bool> try_running() const {
        return detail::get<bool>([&](bool* b) { return tp_driver_is_running(get(), b); });
    }
    Result<void> try_stop(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        return detail::status(tp_driver_stop(get(), detail::ms(timeout)));
    }
    tp_driver* get() const noexcept { return h_.get(); }

private:
    explicit Driver(tp_driver* h) : h_(h) {}
    detail::Handle<tp_driver, tp_driver_free> h_;
};

/// The supervisor (issue 15, docs/roles.md "Supervisor") on a context's Aeron connection:
/// call `do_work()` from one thread; closed when destroyed.
class Supervisor {
public:
    using Counters = tp_supervisor_counters;
    /// From TOML text with a `[supervisor]` table (empty: the defaults).
    static Supervisor create(const Context& ctx, const std::string& config_toml) {
        tp_supervisor* h = nullptr;
        detail::check(tp_supervisor_create(ctx.get(), detail::c_str_or_null(config_toml), nullptr, &h));
        return Supervisor(h);
    }
    /// From a configuration file (empty: the defaults).
    static Supervisor create_file(const Context& ctx, const std::string& path) {
        tp_supervisor* h = nullptr;
        detail::check(tp_supervisor_create(ctx.get(), nullptr, detail::c_str_or_null(path), &h));
        return Supervisor(h);
    }
    /// One duty cycle; the work done (0: idle).
    std::uint32_t do_work() {
        std::uint32_t work = 0;
        detail::check(tp_supervisor_do_work(get(), &work));
        return work;
    }
    /// A snapshot of its counters.
    Counters counters() const {
        Counters c{};
        detail::check(tp_supervisor_get_counters(get(), &c));
        return c;
    }
    // issue 18: the non-throwing forms
    static Result<Supervisor> try_create(const Context& ctx, const std::string& config_toml) {
        tp_supervisor* h = nullptr;
        tp_status s = tp_supervisor_create(ctx.get(), detail::c_str_or_null(config_toml), nullptr, &h);
        if (s != TP_OK) return detail::error_of(s);
        return Supervisor(h);
    }
    static Result<Supervisor> try_create_file(const Context& ctx, const std::string& path) {
        tp_supervisor* h = nullptr;
        tp_status s = tp_supervisor_create(ctx.get(), nullptr, detail::c_str_or_null(path), &h);
        if (s != TP_OK) return detail::error_of(s);
        return Supervisor(h);
    }
    Result<std::uint32_t> try_do_work() {
        return detail::get<std::uint32_t>([&](std::uint32_t* w) { return tp_supervisor_do_work(get(), w); });
    }
    Result<Counters> try_counters() const {
        return detail::get<Counters>([&](Counters* c) { return tp_supervisor_get_counters(get(), c); });
    }
    tp_supervisor* get() const noexcept { return h_.get(); }

private:
    explicit Supervisor(tp_supervisor* h) : h_(h) {}
    detail::Handle<tp_supervisor, tp_supervisor_close> h_;
};

/// The rate limiter (issue 17, docs/roles.md "Rate limiter") on a context's Aeron
/// connection: one source consumer and one driver-attached destination producer per mapping.
/// Call `do_work()` from one thread; closed (destinations detached) when destroyed.
class RateLimiter {
public:
    using Counters = tp_ratelimiter_counters;
    /// From TOML text with `[rate_limiter]` and `[[mappings]]`, attaching through `driver`.
    static RateLimiter create(const Context& ctx, const std::string& config_toml, const DriverEndpoints& driver) {
        const tp_driver_endpoints e = driver.to_c();
        tp_ratelimiter* h = nullptr;
        detail::check(tp_ratelimiter_create(ctx.get(), config_toml.c_str(), nullptr, &e, &h));
        return RateLimiter(h);
    }
    /// From a configuration file; the driver endpoints are the file's `driver_*` keys.
    static RateLimiter create_file(const Context& ctx, const std::string& path) {
        tp_ratelimiter* h = nullptr;
        detail::check(tp_ratelimiter_create(ctx.get(), nullptr, path.c_str(), nullptr, &h));
        return RateLimiter(h);
    }
    /// One duty cycle; the work done (0: idle).
    std::uint32_t do_work() {
        std::uint32_t work = 0;
        detail::check(tp_ratelimiter_do_work(get(), &work));
        return work;
    }
    /// Number of mappings.
    std::size_t mappings() const {
        std::size_t n = 0;
        detail::check(tp_ratelimiter_mapping_count(get(), &n));
        return n;
    }
    /// A snapshot of mapping `index`'s counters.
    Counters counters(std::size_t index) const {
        Counters c{};
        detail::check(tp_ratelimiter_get_counters(get(), index, &c));
        return c;
    }
    // issue 18: the non-throwing forms
    static Result<RateLimiter> try_create(const Context& ctx, const std::string& config_toml,
                                          const DriverEndpoints& driver) {
        const tp_driver_endpoints e = driver.to_c();
        tp_ratelimiter* h = nullptr;
        tp_status s = tp_ratelimiter_create(ctx.get(), config_toml.c_str(), nullptr, &e, &h);
        if (s != TP_OK) return detail::error_of(s);
        return RateLimiter(h);
    }
    static Result<RateLimiter> try_create_file(const Context& ctx, const std::string& path) {
        tp_ratelimiter* h = nullptr;
        tp_status s = tp_ratelimiter_create(ctx.get(), nullptr, path.c_str(), nullptr, &h);
        if (s != TP_OK) return detail::error_of(s);
        return RateLimiter(h);
    }
    Result<std::uint32_t> try_do_work() {
        return detail::get<std::uint32_t>([&](std::uint32_t* w) { return tp_ratelimiter_do_work(get(), w); });
    }
    Result<std::size_t> try_mappings() const {
        return detail::get<std::size_t>([&](std::size_t* n) { return tp_ratelimiter_mapping_count(get(), n); });
    }
    Result<Counters> try_counters(std::size_t index) const {
        return detail::get<Counters>([&](Counters* c) { return tp_ratelimiter_get_counters(get(), index, c); });
    }
    tp_ratelimiter* get() const noexcept { return h_.get(); }

private:
    explicit RateLimiter(tp_ratelimiter* h) : h_(h) {}
    detail::Handle<tp_ratelimiter, tp_ratelimiter_close> h_;
};

/// Which half of the bridge an instance runs.
enum class BridgeSide : std::uint32_t {
    Sender = TP_BRIDGE_SENDER,
    Receiver = TP_BRIDGE_RECEIVER,
    Both = TP_BRIDGE_BOTH,
};

/// How a bridge reaches its host (builder style; every field has the C API's default).
class BridgeOptions {
public:
    BridgeOptions() { detail::check(tp_bridge_options_init(&raw_)); }
    /// Which half to run (default both).
    BridgeOptions& side(BridgeSide s) { raw_.side = static_cast<std::uint32_t>(s); return *this; }
    /// `shm.base_dir` of this host's SHM driver (absolute): the destinations' files.
    BridgeOptions& shm_base_dir(std::string dir) { base_dir_ = std::move(dir); return *this; }
    /// Directory the sources' files may lie in (default: `shm_base_dir`).
    BridgeOptions& allowed_base_dir(std::string dir) { allowed_dir_ = std::move(dir); return *this; }
    /// Where this host's SHM driver listens.
    BridgeOptions& driver(DriverEndpoints endpoints) { driver_ = std::move(endpoints); return *this; }
    /// The C struct; its strings point into this object.
    tp_bridge_options to_c() const noexcept {
        tp_bridge_options o = raw_;
        o.shm_base_dir = detail::c_str_or_null(base_dir_);
        o.allowed_base_dir = detail::c_str_or_null(allowed_dir_);
        o.driver = driver_.to_c();
        return o;
    }

private:
    tp_bridge_options raw_{};
    std::string base_dir_, allowed_dir_;
    DriverEndpoints driver_;
};

/// The Aeron UDP bridge (issue 16, docs/bridge.md) on a context's Aeron connection: the
/// sender half reads mapped source streams and sends their frames in chunks, the receiver
/// half re-materializes them into driver-attached destination streams. Call `do_work()` from
/// one thread; closed (destinations detached) when destroyed.
class Bridge {
public:
    using Counters = tp_bridge_counters;
    using Mapping = tp_bridge_mapping;
    /// From TOML text with `[bridge]` and `[[mappings]]`.
    static Bridge create(const Context& ctx, const std::string& config_toml, const BridgeOptions& opts = {}) {
        const tp_bridge_options o = opts.to_c();
        tp_bridge* h = nullptr;
        detail::check(tp_bridge_create(ctx.get(), config_toml.c_str(), nullptr, &o, &h));
        return Bridge(h);
    }
    /// From a configuration file.
    static Bridge create_file(const Context& ctx, const std::string& path, const BridgeOptions& opts = {}) {
        const tp_bridge_options o = opts.to_c();
        tp_bridge* h = nullptr;
        detail::check(tp_bridge_create(ctx.get(), nullptr, path.c_str(), &o, &h));
        return Bridge(h);
    }
    /// One duty cycle; the work done (0: idle).
    std::uint32_t do_work() {
        std::uint32_t work = 0;
        detail::check(tp_bridge_do_work(get(), &work));
        return work;
    }
    /// The number of mappings.
    std::size_t mappings() const {
        std::size_t n = 0;
        detail::check(tp_bridge_mapping_count(get(), &n));
        return n;
    }
    /// Mapping `index`'s stream ids (the destination as granted); throws
    /// Error(InvalidArgument) past the mappings.
    Mapping mapping(std::size_t index) const {
        Mapping m{};
        detail::check(tp_bridge_get_mapping(get(), index, &m));
        return m;
    }
    /// A snapshot of its counters (both sides, every mapping).
    Counters counters() const {
        Counters c{};
        detail::check(tp_bridge_get_counters(get(), &c));
        return c;
    }
    // issue 18: the non-throwing forms
    static Result<Bridge> try_create(const Context& ctx, const std::string& config_toml, const BridgeOptions& opts = {}) {
        const tp_bridge_options o = opts.to_c();
        tp_bridge* h = nullptr;
        tp_status s = tp_bridge_create(ctx.get(), config_toml.c_str(), nullptr, &o, &h);
        if (s != TP_OK) return detail::error_of(s);
        return Bridge(h);
    }
    static Result<Bridge> try_create_file(const Context& ctx, const std::string& path, const BridgeOptions& opts = {}) {
        const tp_bridge_options o = opts.to_c();
        tp_bridge* h = nullptr;
        tp_status s = tp_bridge_create(ctx.get(), nullptr, path.c_str(), &o, &h);
        if (s != TP_OK) return detail::error_of(s);
        return Bridge(h);
    }
    Result<std::uint32_t> try_do_work() {
        return detail::get<std::uint32_t>([&](std::uint32_t* w) { return tp_bridge_do_work(get(), w); });
    }
    Result<std::size_t> try_mappings() const {
        return detail::get<std::size_t>([&](std::size_t* n) { return tp_bridge_mapping_count(get(), n); });
    }
    Result<Mapping> try_mapping(std::size_t index) const {
        return detail::get<Mapping>([&](Mapping* m) { return tp_bridge_get_mapping(get(), index, m); });
    }
    Result<Counters> try_counters() const {
        return detail::get<Counters>([&](Counters* c) { return tp_bridge_get_counters(get(), c); });
    }
    tp_bridge* get() const noexcept { return h_.get(); }

private:
    explicit Bridge(tp_bridge* h) : h_(h) {}
    detail::Handle<tp_bridge, tp_bridge_close> h_;
};

/// A region file summary.
using RegionInfo = tp_region_info;

/// Summarises a header ring or payload pool file (path or `shm:file?path=...`), read-only;
/// throws Error(RegionInvalid) naming the failed rule. `allowed_dir` empty: the file's dir.
inline RegionInfo inspect(const std::string& target, const std::string& allowed_dir = {}) {
    RegionInfo info{};
    detail::check(tp_region_inspect(target.c_str(), detail::c_str_or_null(allowed_dir), &info));
    return info;
}
/// inspect() without throwing.
inline Result<RegionInfo> try_inspect(const std::string& target, const std::string& allowed_dir = {}) {
    return detail::get<RegionInfo>(
        [&](RegionInfo* info) { return tp_region_inspect(target.c_str(), detail::c_str_or_null(allowed_dir), info); });
}

/// The Rust roles' idle strategies (`"backoff:10,10,1us,200us"`, `"sleep:1ms"`, `"busy-spin"`).
class IdleStrategy {
public:
    explicit IdleStrategy(const std::string& spec = "backoff") {
        tp_idle* h = nullptr;
        detail::check(tp_idle_new(spec.c_str(), &h));
        h_ = detail::Handle<tp_idle, tp_idle_free>(h);
    }
    /// Idles after a cycle that did `work` (0 backs off; more resets).
    void idle(std::size_t work) noexcept { (void)tp_idle_work(h_.get(), work); }
    /// The constructor without throwing.
    static Result<IdleStrategy> try_create(const std::string& spec) {
        tp_idle* h = nullptr;
        tp_status s = tp_idle_new(spec.c_str(), &h);
        if (s != TP_OK) return detail::error_of(s);
        IdleStrategy i(nullptr);
        i.h_ = detail::Handle<tp_idle, tp_idle_free>(h);
        return i;
    }

private:
    explicit IdleStrategy(std::nullptr_t) noexcept {}
    detail::Handle<tp_idle, tp_idle_free> h_;
};

/**
 * A producer's or consumer's duty cycle on its own thread (Aeron's AgentRunner; calling
 * do_work()/poll() yourself is the AgentInvoker model). While it runs, the Producer or
 * Consumer belongs to it: use it from other threads only inside with() (or while holding
 * a lock()), which waits until the runner is between cycles. The consumer handler runs on
 * the runner's thread; its first exception is kept (see rethrow()), later frames skipped.
 * Destroying the Runner stops and joins the thread; destroy it before its Producer/Consumer.
 */
class Runner {
public:
    /// Drives `producer.do_work()`; `idle` as tp_idle_new (`"sleep:100us"` default).
    static Runner start(Producer& producer, const std::string& idle = "sleep:100us") {
        Runner r;
        tp_runner* h = nullptr;
        detail::check(tp_runner_start_producer(producer.get(), detail::c_str_or_null(idle), &h));
        r.h_ = detail::Handle<tp_runner, tp_runner_free>(h);
        return r;
    }
    /// Drives `consumer.poll(f, limit)`; `f(const Frame&)` runs on the runner's thread.
    template <class F>
    static Runner start(Consumer& consumer, F&& f, std::size_t limit = 16,
                        const std::string& idle = "sleep:100us") {
        Runner r;
        auto cb = std::make_unique<Callback>();
        cb->f = std::function<void(const Frame&)>(std::forward<F>(f));
        auto trampoline = [](const tp_frame_view* v, void* user) noexcept {
            auto* c = static_cast<Callback*>(user);
            if (c->failed.load(std::memory_order_acquire)) return;
            // the runner's lock lives in the Rust library; this C++ one, taken by with() and
            // lock() too, makes the same order visible to ThreadSanitizer
            std::lock_guard<std::mutex> turn(c->turn);
            try {
                c->f(Frame(*v));
            } catch (...) {
                std::lock_guard<std::mutex> g(c->m);
                c->ex = std::current_exception();
                c->failed.store(true, std::memory_order_release);
            }
        };
        tp_runner* h = nullptr;
        detail::check(tp_runner_start_consumer(consumer.get(), trampoline, cb.get(), limit,
                                               detail::c_str_or_null(idle), &h));
        r.cb_ = std::move(cb);
        r.h_ = detail::Handle<tp_runner, tp_runner_free>(h);
        return r;
    }
    /// Holds the runner between cycles (RAII; same thread for lock and unlock).
    class Lock {
    public:
        Lock(tp_runner* r, std::mutex* turn) : r_(r) {
            detail::check(tp_runner_lock(r_));
            if (turn) turn_ = std::unique_lock<std::mutex>(*turn);
        }
        ~Lock() {
            if (turn_.owns_lock()) turn_.unlock();
            (void)tp_runner_unlock(r_);
        }
        Lock(const Lock&) = delete;
        Lock& operator=(const Lock&) = delete;

    private:
        tp_runner* r_;
        std::unique_lock<std::mutex> turn_;
    };
    [[nodiscard]] Lock lock() const { return Lock(get(), cb_ ? &cb_->turn : nullptr); }
    /// Runs `f()` while the runner is held between cycles; returns what `f` returns. What
    /// the consumer handler wrote is visible here (and to ThreadSanitizer).
    template <class F>
    decltype(auto) with(F&& f) const {
        Lock l(get(), cb_ ? &cb_->turn : nullptr);
        return std::forward<F>(f)();
    }
    /// Duty cycles run, and how many failed.
    std::uint64_t cycles() const { return counts().first; }
    std::uint64_t errors() const { return counts().second; }
    /// The last failed cycle as an Error (code Ok and empty message if none failed).
    Error last_error() const {
        int status = 0;
        std::string text = detail::read_string([&](char* b, std::size_t c, std::size_t* l) {
            return tp_runner_last_error(get(), &status, b, c, l);
        });
        return Error(static_cast<Status>(status), text);
    }
    /// Rethrows the first exception the consumer handler threw, if any (and clears it).
    void rethrow() {
        if (!cb_) return;
        std::exception_ptr ex;
        {
            std::lock_guard<std::mutex> g(cb_->m);
            ex = std::exchange(cb_->ex, nullptr);
            cb_->failed.store(false, std::memory_order_release);
        }
        if (ex) std::rethrow_exception(ex);
    }
    /// Stops and joins the thread (also done on destruction).
    void stop() noexcept {
        h_.reset();
        cb_.reset();
    }
    tp_runner* get() const noexcept { return h_.get(); }
    Runner(Runner&&) noexcept = default;
    Runner& operator=(Runner&& o) noexcept {
        if (this != &o) {
            stop();  // the old thread is joined before its callback goes
            h_ = std::move(o.h_);
            cb_ = std::move(o.cb_);
        }
        return *this;
    }
    ~Runner() { stop(); }

private:
    struct Callback {
        std::function<void(const Frame&)> f;
        // the handler's thread sets these, rethrow() takes them: a C++ mutex, so that
        // ThreadSanitizer sees the order (the runner's own lock is in the Rust library)
        std::atomic<bool> failed{false};
        std::mutex m;
        std::exception_ptr ex;
        // held around each handler call and by with()/lock()
        std::mutex turn;
    };
    Runner() = default;
    std::pair<std::uint64_t, std::uint64_t> counts() const {
        std::uint64_t c = 0, e = 0;
        detail::check(tp_runner_counts(get(), &c, &e));
        return {c, e};
    }
    // declared before h_: destroyed after the thread is joined
    std::unique_ptr<Callback> cb_;
    detail::Handle<tp_runner, tp_runner_free> h_;
};

// --- issue 18: logging hook, driver admin ---------------------------------------------------

/// Severity of a library log event.
enum class LogLevel : std::uint32_t {
    Off = TP_LOG_OFF, Error = TP_LOG_ERROR, Warn = TP_LOG_WARN, Info = TP_LOG_INFO,
    Debug = TP_LOG_DEBUG, Trace = TP_LOG_TRACE,
};
/// Receives the library's log events: level, target (`"tensorpool::consumer"`), message.
/// Called on the thread that logged; an exception it throws is swallowed.
using Logger = std::function<void(LogLevel, std::string_view target, std::string_view message)>;

namespace detail {
struct LoggerSlot {
    std::mutex m;
    std::shared_ptr<const Logger> f;
};
inline LoggerSlot& logger_slot() {
    static LoggerSlot slot;
    return slot;
}
inline void log_trampoline(std::uint32_t level, const char* target, const char* message, void*) noexcept {
    std::shared_ptr<const Logger> f;
    {
        std::lock_guard<std::mutex> lock(logger_slot().m);
        f = logger_slot().f;
    }
    if (!f) return;
    try {
        (*f)(static_cast<LogLevel>(level), target, message);
    } catch (...) {
    }
}
}  // namespace detail

/// Routes the library's log events at `max_level` and above into `logger` (an empty
/// function removes it; then RUST_LOG, if set, prints them on stderr). Process-wide.
inline Result<void> try_set_logger(Logger logger, LogLevel max_level = LogLevel::Info) {
    const bool on = static_cast<bool>(logger) && max_level != LogLevel::Off;
    {
        std::lock_guard<std::mutex> lock(detail::logger_slot().m);
        detail::logger_slot().f = on ? std::make_shared<const Logger>(std::move(logger)) : nullptr;
    }
    return detail::status(tp_set_log_callback(on ? &detail::log_trampoline : nullptr, nullptr,
                                              on ? static_cast<std::uint32_t>(max_level) : 0));
}
inline void set_logger(Logger logger, LogLevel max_level = LogLevel::Info) {
    try_set_logger(std::move(logger), max_level).value();
}
/// Removes the logger.
inline void clear_logger() { (void)try_set_logger(nullptr, LogLevel::Off); }
/// Logs `message` through the library's logger (target `"tensorpool_ffi"`).
inline void log(LogLevel level, const std::string& message) {
    detail::check(tp_log(static_cast<std::uint32_t>(level), message.c_str()));
}

/// What driver_query asks.
enum class AdminQuery : std::uint32_t { Status = TP_ADMIN_STATUS, Leases = TP_ADMIN_LEASES, Streams = TP_ADMIN_STREAMS };
/// Why a driver is asked to shut down.
enum class ShutdownReason : std::uint32_t {
    Normal = TP_SHUTDOWN_NORMAL, Admin = TP_SHUTDOWN_ADMIN, Error = TP_SHUTDOWN_ERROR,
};

/// Asks the SHM driver listening at `driver` and returns its answer as JSON text.
inline Result<std::string> try_driver_query(const Context& ctx, const DriverEndpoints& driver, AdminQuery query,
                                            std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const tp_driver_endpoints e = driver.to_c();
    char* json = nullptr;
    tp_status s = tp_driver_query(ctx.get(), &e, static_cast<std::uint32_t>(query), detail::ms(timeout), &json);
    if (s != TP_OK) return detail::error_of(s);
    std::string out(json);
    (void)tp_string_free(json);
    return out;
}
inline std::string driver_query(const Context& ctx, const DriverEndpoints& driver, AdminQuery query,
                                std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return try_driver_query(ctx, driver, query, timeout).value();
}
/// Sends the authenticated shutdown request (the driver does not answer).
inline Result<void> try_request_driver_shutdown(const Context& ctx, const DriverEndpoints& driver,
                                                const std::string& token, ShutdownReason reason = ShutdownReason::Admin,
                                                const std::string& message = {},
                                                std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const tp_driver_endpoints e = driver.to_c();
    return detail::status(tp_driver_request_shutdown(ctx.get(), &e, token.c_str(), static_cast<std::uint32_t>(reason),
                                                     message.c_str(), detail::ms(timeout)));
}
inline void request_driver_shutdown(const Context& ctx, const DriverEndpoints& driver, const std::string& token,
                                    ShutdownReason reason = ShutdownReason::Admin, const std::string& message = {},
                                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    try_request_driver_shutdown(ctx, driver, token, reason, message, timeout).value();
}

// --- discovery client (issue 20, docs/discovery.md) -----------------------------------------

/// A discovery query: where to ask (empty / 0: the defaults, `tp_discovery_request`) and what
/// to look for (every filter optional, AND-ed).
struct DiscoveryQuery {
    std::string request_channel;
    std::int32_t request_stream_id = 0;
    std::string response_channel;
    std::int32_t response_stream_id = 0;
    /// Only this data-source name (byte-exact; empty: any).
    std::string name;
    /// Only streams carrying all these tags.
    std::vector<std::string> tags;
    std::optional<std::uint32_t> stream_id;
    std::optional<std::uint32_t> producer_id;
    std::optional<std::uint64_t> data_source_id;
    /// How long to wait for the answer (0: 5 s).
    std::chrono::milliseconds timeout{0};
};

/// One payload pool of a stream found (informational).
struct DiscoveredPool {
    std::uint16_t pool_id = 0;
    std::uint32_t pool_nslots = 0;
    std::uint32_t stride_bytes = 0;
    std::string region_uri;
};

/// One stream found: advisory. Attach through the driver it names (`driver_control_channel`,
/// `driver_control_stream_id`), never map from it.
struct DiscoveredStream {
    std::uint32_t stream_id = 0;
    std::uint32_t producer_id = 0;
    std::uint64_t epoch = 0;
    std::uint32_t layout_version = 0;
    std::uint32_t header_nslots = 0;
    std::string header_region_uri;
    std::string data_source_name;
    std::optional<std::uint64_t> data_source_id;
    std::string driver_instance_id;
    std::string driver_control_channel;
    std::uint32_t driver_control_stream_id = 0;
    std::vector<std::string> tags;
    std::vector<DiscoveredPool> pools;
};

/// Asks a discovery provider (embedded in `tp driver`, or `tp discovery serve`) over the
/// context's Aeron connection; the streams found, copied out of the C results.
inline Result<std::vector<DiscoveredStream>> try_discover(const Context& ctx, const DiscoveryQuery& q) {
    std::vector<const char*> tags;
    tags.reserve(q.tags.size());
    for (const auto& t : q.tags) tags.push_back(t.c_str());
    tp_discovery_request r{};
    tp_status s = tp_discovery_request_init(&r);
    if (s != TP_OK) return detail::error_of(s);
    r.request_channel = detail::c_str_or_null(q.request_channel);
    r.request_stream_id = q.request_stream_id;
    r.response_channel = detail::c_str_or_null(q.response_channel);
    r.response_stream_id = q.response_stream_id;
    r.name = detail::c_str_or_null(q.name);
    r.tags = tags.empty() ? nullptr : tags.data();
    r.tag_count = tags.size();
    r.has_stream_id = q.stream_id.has_value();
    r.stream_id = q.stream_id.value_or(0);
    r.has_producer_id = q.producer_id.has_value();
    r.producer_id = q.producer_id.value_or(0);
    r.has_data_source_id = q.data_source_id.has_value();
    r.data_source_id = q.data_source_id.value_or(0);
    r.timeout_ms = detail::ms(q.timeout);
    tp_discovery_results* h = nullptr;
    s = tp_discovery_query(ctx.get(), &r, &h);
    if (s != TP_OK) return detail::error_of(s);
    detail::Handle<tp_discovery_results, tp_discovery_results_close> results(h);
    std::size_t n = 0;
    s = tp_discovery_results_count(h, &n);
    if (s != TP_OK) return detail::error_of(s);
    std::vector<DiscoveredStream> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        tp_discovery_stream c{};
        s = tp_discovery_results_get(h, i, &c);
        if (s != TP_OK) return detail::error_of(s);
        DiscoveredStream d;
        d.stream_id = c.stream_id;
        d.producer_id = c.producer_id;
        d.epoch = c.epoch;
        d.layout_version = c.layout_version;
        d.header_nslots = c.header_nslots;
        d.header_region_uri = c.header_region_uri;
        d.data_source_name = c.data_source_name;
        if (c.has_data_source_id) d.data_source_id = c.data_source_id;
        d.driver_instance_id = c.driver_instance_id;
        d.driver_control_channel = c.driver_control_channel;
        d.driver_control_stream_id = c.driver_control_stream_id;
        for (std::size_t t = 0; t < c.tag_count; ++t) {
            const char* tag = nullptr;
            s = tp_discovery_results_tag(h, i, t, &tag);
            if (s != TP_OK) return detail::error_of(s);
            d.tags.emplace_back(tag);
        }
        for (std::size_t p = 0; p < c.pool_count; ++p) {
            tp_discovery_pool cp{};
            s = tp_discovery_results_pool(h, i, p, &cp);
            if (s != TP_OK) return detail::error_of(s);
            d.pools.push_back(DiscoveredPool{cp.pool_id, cp.pool_nslots, cp.stride_bytes, cp.region_uri});
        }
        out.push_back(std::move(d));
    }
    return out;
}
/// As try_discover; throws the Error (Timeout: no provider answered; State: it answered ERROR).
inline std::vector<DiscoveredStream> discover(const Context& ctx, const DiscoveryQuery& q) {
    return try_discover(ctx, q).value();
}

/// The discovery provider (issue 20, docs/discovery.md) on a context's Aeron connection: what
/// `tp discovery serve` runs, in-process. Call `do_work()` from one thread; closed when
/// destroyed.
class DiscoveryProvider {
public:
    using Counters = tp_discovery_provider_counters;
    /// From TOML text with a `[discovery]` table (empty: the defaults).
    static DiscoveryProvider create(const Context& ctx, const std::string& config_toml) {
        return try_create(ctx, config_toml).value();
    }
    /// From a configuration file (empty: the defaults).
    static DiscoveryProvider create_file(const Context& ctx, const std::string& path) {
        return try_create_file(ctx, path).value();
    }
    static Result<DiscoveryProvider> try_create(const Context& ctx, const std::string& config_toml) {
        tp_discovery_provider* h = nullptr;
        tp_status s = tp_discovery_provider_create(ctx.get(), detail::c_str_or_null(config_toml), nullptr, &h);
        if (s != TP_OK) return detail::error_of(s);
        return DiscoveryProvider(h);
    }
    static Result<DiscoveryProvider> try_create_file(const Context& ctx, const std::string& path) {
        tp_discovery_provider* h = nullptr;
        tp_status s = tp_discovery_provider_create(ctx.get(), nullptr, detail::c_str_or_null(path), &h);
        if (s != TP_OK) return detail::error_of(s);
        return DiscoveryProvider(h);
    }
    /// One duty cycle; the work done (0: idle).
    std::uint32_t do_work() { return try_do_work().value(); }
    Result<std::uint32_t> try_do_work() {
        return detail::get<std::uint32_t>([&](std::uint32_t* w) { return tp_discovery_provider_do_work(get(), w); });
    }
    /// A snapshot of its counters and its registry's.
    Counters counters() const { return try_counters().value(); }
    Result<Counters> try_counters() const {
        return detail::get<Counters>([&](Counters* c) { return tp_discovery_provider_get_counters(get(), c); });
    }
    tp_discovery_provider* get() const noexcept { return h_.get(); }

private:
    explicit DiscoveryProvider(tp_discovery_provider* h) : h_(h) {}
    detail::Handle<tp_discovery_provider, tp_discovery_provider_close> h_;
};

}  // namespace tensorpool
