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

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>

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

/**
 * Either a value or an Error: the non-throwing alternative for hot paths
 * (C++20 has no std::expected). `value()` throws the error if there is one.
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
    /// Starts an embedded media driver (in `aeron_dir`, or a fresh private directory).
    static Context embedded(const std::string& aeron_dir = {}) {
        tp_context* h = nullptr;
        detail::check(tp_context_new_embedded(detail::c_str_or_null(aeron_dir), &h));
        return Context(h);
    }
    /// Connects to the media driver running in `aeron_dir`.
    static Context connect(const std::string& aeron_dir,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        tp_context* h = nullptr;
        detail::check(tp_context_connect(aeron_dir.c_str(), detail::ms(timeout), &h));
        return Context(h);
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
class TensorSpec {
public:
    /// A contiguous tensor.
    TensorSpec(Dtype dtype, std::span<const std::size_t> shape, MajorOrder order = MajorOrder::Row)
        : TensorSpec(dtype, order, shape, nullptr) {}
    TensorSpec(Dtype dtype, std::initializer_list<std::size_t> shape, MajorOrder order = MajorOrder::Row)
        : TensorSpec(dtype, std::span<const std::size_t>(shape.begin(), shape.size()), order) {}
    /// A tensor with explicit byte strides (0 entries inferred); as many strides as dims.
    static TensorSpec strided(Dtype dtype, MajorOrder order, std::span<const std::size_t> shape,
                              std::span<const std::size_t> strides) {
        if (strides.size() != shape.size())
            throw Error(Status::InvalidArgument, "as many strides as dimensions are needed");
        return TensorSpec(dtype, order, shape, strides.data());
    }
    /// Payload bytes the tensor spans.
    std::size_t len_bytes() const noexcept { return len_; }
    Dtype dtype() const noexcept { return dtype_; }
    const tp_tensor_spec* get() const noexcept { return h_.get(); }

private:
    TensorSpec(Dtype dtype, MajorOrder order, std::span<const std::size_t> shape, const std::size_t* strides)
        : dtype_(dtype) {
        tp_tensor_spec* h = nullptr;
        detail::check(tp_tensor_spec_new(static_cast<std::uint32_t>(dtype), static_cast<std::uint32_t>(order),
                                         shape.size(), shape.data(), strides, &h));
        h_ = detail::Handle<tp_tensor_spec, tp_tensor_spec_free>(h);
        detail::check(tp_tensor_spec_len_bytes(h, &len_));
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
    /// The C struct; its strings point into this object.
    tp_producer_options to_c() const noexcept {
        tp_producer_options o = raw_;
        o.shm_base_dir = detail::c_str_or_null(base_dir_);
        o.channel = detail::c_str_or_null(channel_);
        o.name = detail::c_str_or_null(name_);
        o.driver = driver_.to_c();
        return o;
    }

private:
    tp_producer_options raw_{};
    std::string base_dir_, channel_, name_;
    DriverEndpoints driver_;
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
    tp_consumer_options to_c() const noexcept {
        tp_consumer_options o = raw_;
        o.allowed_base_dir = detail::c_str_or_null(base_dir_);
        o.channel = detail::c_str_or_null(channel_);
        o.driver = driver_.to_c();
        return o;
    }

private:
    tp_consumer_options raw_{};
    std::string base_dir_, channel_;
    DriverEndpoints driver_;
};

class Producer;

/**
 * A claimed slot: write the tensor in place through bytes() or as<T>(), then commit().
 * Destroying an uncommitted claim aborts it. Move-only; at most one per producer.
 */
class [[nodiscard]] Claim {
public:
    Claim(Claim&& o) noexcept : p_(std::exchange(o.p_, nullptr)), c_(o.c_) {}
    Claim& operator=(Claim&& o) noexcept {
        if (this != &o) {
            abort();
            p_ = std::exchange(o.p_, nullptr);
            c_ = o.c_;
        }
        return *this;
    }
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;
    ~Claim() { abort(); }

    /// Sequence of the frame being written.
    std::uint64_t seq() const noexcept { return c_.seq; }
    /// The payload slot in shared memory (it holds what an earlier frame left: write it all).
    std::span<std::byte> bytes() const noexcept { return {reinterpret_cast<std::byte*>(c_.data), c_.len}; }
    /// The slot as elements of T (slots are 64-byte aligned; the length must be a multiple).
    template <class T>
    std::span<T> as() const {
        static_assert(std::is_trivially_copyable_v<T>);
        if (c_.len % sizeof(T) != 0) throw Error(Status::InvalidArgument, "payload length is not a multiple of the element size");
        return {reinterpret_cast<T*>(c_.data), c_.len / sizeof(T)};
    }
    /// Commits (seqlock commit + FrameDescriptor); returns the sequence.
    std::uint64_t commit() { return try_commit().value(); }
    /// Commits without throwing.
    Result<std::uint64_t> try_commit() {
        if (!p_) return Error(Status::State, "commit: the claim was already committed or aborted");
        std::uint64_t seq = 0;
        tp_status s = tp_producer_commit(std::exchange(p_, nullptr), &seq);
        if (s != TP_OK) return detail::error_of(s);
        return seq;
    }
    /// Aborts (no descriptor; the slot stays in progress). Idempotent.
    void abort() noexcept {
        if (p_) (void)tp_producer_abort(std::exchange(p_, nullptr));
    }
    /// Whether the claim is still open.
    bool is_open() const noexcept { return p_ != nullptr; }

private:
    friend class Producer;
    Claim(tp_producer* p, tp_claim c) noexcept : p_(p), c_(c) {}
    tp_producer* p_;
    tp_claim c_;
};

/// The most used producer counters.
using ProducerCounters = tp_producer_counters;

/// A producer of one data source: claim -> write in place -> commit; do_work() between frames.
class Producer {
public:
    Producer(const Context& ctx, const ProducerOptions& options) {
        tp_producer_options o = options.to_c();
        tp_producer* h = nullptr;
        detail::check(tp_producer_new(ctx.get(), &o, &h));
        h_ = detail::Handle<tp_producer, tp_producer_free>(h);
    }
    /// Claims the next slot for `spec` (throws on failure).
    Claim claim(const TensorSpec& spec) { return try_claim(spec).value(); }
    /// Claims without throwing.
    Result<Claim> try_claim(const TensorSpec& spec) {
        tp_claim c{};
        tp_status s = tp_producer_claim(get(), spec.get(), &c);
        if (s != TP_OK) return detail::error_of(s);
        return Claim(get(), c);
    }
    /// Copies `payload` into the next slot and commits it.
    std::uint64_t offer(const TensorSpec& spec, std::span<const std::byte> payload) {
        std::uint64_t seq = 0;
        detail::check(tp_producer_offer(get(), spec.get(), reinterpret_cast<const std::uint8_t*>(payload.data()),
                                        payload.size(), &seq));
        return seq;
    }
    /// One duty cycle (announces, QoS, hellos, keepalives); returns the work done.
    std::size_t do_work(std::uint64_t now_ns = 0) {
        std::size_t w = 0;
        detail::check(tp_producer_do_work(get(), now_ns, &w));
        return w;
    }
    std::uint64_t epoch() const { return read_u64(tp_producer_epoch); }
    std::uint64_t next_seq() const { return read_u64(tp_producer_next_seq); }
    ProducerCounters counters() const {
        ProducerCounters c{};
        detail::check(tp_producer_get_counters(get(), &c));
        return c;
    }
    /// Any counter by name (`"committed"`, `"hellos"`, ...).
    std::uint64_t counter(const std::string& name) const {
        std::uint64_t v = 0;
        detail::check(tp_producer_counter(get(), name.c_str(), &v));
        return v;
    }
    /// Standalone: a new epoch (new files, seq from 0).
    std::uint64_t bump_epoch() { return read_u64(tp_producer_bump_epoch); }
    /// Standalone: the current epoch's directory.
    std::string epoch_dir() const {
        return detail::read_string([&](char* b, std::size_t c, std::size_t* l) {
            return tp_producer_epoch_dir(get(), b, c, l);
        });
    }
    /// Clean close (also done on destruction).
    void close() { detail::check(tp_producer_close(get())); }
    tp_producer* get() const noexcept { return h_.get(); }

private:
    std::uint64_t read_u64(tp_status (*f)(tp_producer*, std::uint64_t*)) const {
        std::uint64_t v = 0;
        detail::check(f(get(), &v));
        return v;
    }
    detail::Handle<tp_producer, tp_producer_free> h_;
};

/**
 * A frame in the producer's shared memory, valid only inside the poll handler. Read it in
 * place, then recheck(): only if it returns true were the bytes read the committed frame.
 */
class Frame {
public:
    explicit Frame(const tp_frame_view& v) noexcept : v_(&v) {}
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
    /// The payload as elements of T; throws if T's size does not match the dtype's.
    template <class T>
    std::span<const T> values() const {
        static_assert(std::is_trivially_copyable_v<T>);
        if (sizeof(T) != dtype_size(dtype()) || v_->len % sizeof(T) != 0)
            throw Error(Status::InvalidArgument, "element type does not match the frame's dtype");
        return {reinterpret_cast<const T*>(v_->data), v_->len / sizeof(T)};
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

/// Consumer counters and status (C structs).
using ConsumerCounters = tp_consumer_counters;
using ConsumerStatus = tp_consumer_status;

/// A consumer of one data source; poll() hands each accepted frame to a callable.
class Consumer {
public:
    Consumer(const Context& ctx, const ConsumerOptions& options) {
        tp_consumer_options o = options.to_c();
        tp_consumer* h = nullptr;
        detail::check(tp_consumer_new(ctx.get(), &o, &h));
        h_ = detail::Handle<tp_consumer, tp_consumer_free>(h);
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
        using Fn = std::remove_reference_t<F>;
        struct State {
            Fn* f;
            std::exception_ptr ex;
        } st{&f, nullptr};
        auto trampoline = [](const tp_frame_view* v, void* user) noexcept {
            auto* s = static_cast<State*>(user);
            if (s->ex) return;
            try {
                (*s->f)(Frame(*v));
            } catch (...) {
                s->ex = std::current_exception();
            }
        };
        std::size_t work = 0;
        tp_status s = tp_consumer_poll(get(), trampoline, &st, limit, &work);
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
    tp_consumer* get() const noexcept { return h_.get(); }

private:
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

private:
    detail::Handle<tp_idle, tp_idle_free> h_;
};

}  // namespace tensorpool
