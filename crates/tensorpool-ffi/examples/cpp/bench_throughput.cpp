// Throughput benchmark, C++ side (its Rust twin: examples/bench_throughput.rs, same
// conditions). Two processes:
//   bench_throughput producer AERON_DIR SHM_DIR SECONDS   embedded media driver, flat out
//   bench_throughput consumer AERON_DIR SHM_DIR SECONDS   prints accepted frames/s
// Frames: 640 KiB (81920 x u64); the producer writes every word (seq ^ index), the consumer
// sums every byte (byte_sum: the same loop as the Rust side's, vectorized by GCC, clang
// and rustc alike), checks word 0, then rechecks. Both idle with backoff:10,10,1us,200us.
//   bench_throughput inproc SHM_DIR WORDS CYCLES    one thread: claim, write, commit,
//                                                   do_work, poll (read, recheck): ns/cycle
#include <tensorpool.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace tp = tensorpool;
using Clock = std::chrono::steady_clock;

/// The consumer's work on a frame: every byte, widened and summed. The Rust twin
/// (`byte_sum` in bench_throughput.rs) is the same loop: a u32 accumulator, which GCC, clang
/// and rustc all vectorize for the default x86-64 target (a u64 accumulator of bytes is
/// vectorized by GCC only), and no inlining, so both sides run exactly this function.
/// Frames here are 640 KiB: 255 x 655360 fits a u32.
[[gnu::noinline]] static std::uint64_t byte_sum(std::span<const std::byte> bytes) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
    const std::size_t n = bytes.size();
    std::uint32_t s = 0;
    for (std::size_t i = 0; i < n; ++i) s += p[i];
    return s;
}

/// Word 0 of a frame (the producer writes the sequence there).
static std::uint64_t first_word(std::span<const std::byte> bytes) {
    std::uint64_t w = 0;
    if (bytes.size() >= sizeof w) std::memcpy(&w, bytes.data(), sizeof w);
    return w;
}

/// Header ring slots: TP_BENCH_NSLOTS, default 64.
static std::uint32_t nslots() {
    const char* v = std::getenv("TP_BENCH_NSLOTS");
    return v ? static_cast<std::uint32_t>(std::stoul(v)) : 64;
}

static int produce(const std::string& aeron, const std::string& shm, double secs) {
    tp::Context ctx = tp::Context::embedded(aeron);
    tp::Producer producer(ctx, tp::ProducerOptions(10000).standalone(shm).header_nslots(nslots()).pool(1, 1 << 20));
    const tp::TensorSpec spec(tp::Dtype::Uint64, {81920});
    tp::IdleStrategy idle("backoff:10,10,1us,200us");
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(secs);
    std::uint64_t frames = 0;
    while (Clock::now() < end) {
        tp::Claim claim = producer.claim(spec);
        const std::uint64_t seq = claim.seq();
        std::span<std::uint64_t> words = claim.as<std::uint64_t>();
        for (std::size_t k = 0; k < words.size(); ++k) words[k] = seq ^ k;
        claim.commit();
        ++frames;
        idle.idle(producer.do_work() + 1);
    }
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("cpp producer: %llu frames in %.2f s = %.0f frames/s\n", static_cast<unsigned long long>(frames), s,
                frames / s);
    return 0;
}

static int consume(const std::string& aeron, const std::string& shm, double secs) {
    tp::Context ctx = tp::Context::connect(aeron);
    tp::Consumer consumer(ctx, tp::ConsumerOptions(10000).allowed_base_dir(shm));
    tp::IdleStrategy idle("backoff:10,10,1us,200us");
    consumer.wait_mapped(std::chrono::seconds(10));
    std::uint64_t late = 0, bad = 0, sum = 0;
    auto handler = [&](const tp::Frame& f) {
        const std::span<const std::byte> bytes = f.bytes();
        const std::uint64_t s = byte_sum(bytes);
        const bool first_ok = bytes.size() >= 8 && first_word(bytes) == f.seq();
        if (!f.recheck()) {
            ++late;
            return;
        }
        bad += first_ok ? 0 : 1;
        sum += s;
    };
    // Warm-up second, then measure.
    const auto warm = Clock::now() + std::chrono::seconds(1);
    while (Clock::now() < warm) idle.idle(consumer.poll(handler, 64));
    const std::uint64_t late0 = late;
    const tp::ConsumerCounters c0 = consumer.counters();
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(secs);
    while (Clock::now() < end) idle.idle(consumer.poll(handler, 64));
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    const tp::ConsumerCounters c = consumer.counters();
    const std::uint64_t n = c.accepted - c0.accepted;
    std::printf("cpp consumer: %llu frames in %.2f s = %.0f frames/s (%.2f GB/s), late %llu, drops %llu, "
                "gaps %llu, bad %llu (sum %llu)\n",
                static_cast<unsigned long long>(n), s, n / s, n * 655360.0 / s / 1e9,
                static_cast<unsigned long long>(late - late0),
                static_cast<unsigned long long>(c.drops_total - c0.drops_total),
                static_cast<unsigned long long>(c.drops_gap - c0.drops_gap), static_cast<unsigned long long>(bad),
                static_cast<unsigned long long>(sum % 1000));
    return bad == 0 ? 0 : 1;
}

static int inproc(const std::string& shm, std::size_t nwords, std::uint64_t cycles) {
    tp::Context ctx = tp::Context::embedded();
    tp::Producer producer(ctx, tp::ProducerOptions(10000).standalone(shm).header_nslots(64).pool(1, 1 << 20));
    tp::Consumer consumer(ctx, tp::ConsumerOptions(10000).allowed_base_dir(shm));
    const tp::TensorSpec spec(tp::Dtype::Uint64, {nwords});
    std::uint64_t sum = 0, late = 0;
    auto handler = [&](const tp::Frame& f) {
        const std::uint64_t s = byte_sum(f.bytes());
        if (f.recheck()) sum += s;
        else ++late;
    };
    auto cycle = [&] {
        tp::Claim claim = producer.claim(spec);
        const std::uint64_t seq = claim.seq();
        std::span<std::uint64_t> words = claim.as<std::uint64_t>();
        for (std::size_t k = 0; k < words.size(); ++k) words[k] = seq ^ k;
        claim.commit();
        producer.do_work();
        consumer.poll(handler, 16);
    };
    const auto warm = Clock::now() + std::chrono::seconds(1);
    while (Clock::now() < warm || consumer.counters().accepted < 1000) cycle();
    const std::uint64_t a0 = consumer.counters().accepted;
    const auto start = Clock::now();
    for (std::uint64_t i = 0; i < cycles; ++i) cycle();
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    std::printf("cpp inproc: %zu-byte frames, %llu cycles, %.0f ns/cycle, accepted %llu, late %llu (sum %llu)\n",
                nwords * 8, static_cast<unsigned long long>(cycles), ns / cycles,
                static_cast<unsigned long long>(consumer.counters().accepted - a0), static_cast<unsigned long long>(late),
                static_cast<unsigned long long>(sum % 1000));
    return 0;
}

int main(int argc, char** argv) try {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s producer|consumer AERON_DIR SHM_DIR SECONDS | inproc SHM_DIR WORDS CYCLES\n",
                     argv[0]);
        return 2;
    }
    if (std::strcmp(argv[1], "inproc") == 0) return inproc(argv[2], std::stoull(argv[3]), std::stoull(argv[4]));
    const double secs = std::stod(argv[4]);
    return std::strcmp(argv[1], "producer") == 0 ? produce(argv[2], argv[3], secs) : consume(argv[2], argv[3], secs);
} catch (const tp::Error& e) {
    std::fprintf(stderr, "bench_throughput: %s\n", e.what());
    return 1;
}
